"""``/docs`` of both services: Swagger UI from files shipped with the package.

FastAPI's default page loads Swagger UI from a CDN, so it is blank on a machine without the
internet, and it would run another origin's code beside the API keys a user types in. These
pages load only this package's files, under the same strict policy as the console.
"""

from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from http_edge.problems import NotFound

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
STATIC_FILES = {
    entry.name: (entry.read_bytes(), MEDIA_TYPES[suffix])
    for entry in resources.files("http_edge.api_docs").joinpath("static").iterdir()
    if entry.is_file() and (suffix := "." + entry.name.rpartition(".")[2]) in MEDIA_TYPES
}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API docs · {title}</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<script src="/docs/static/swagger-ui-bundle.js" defer></script>
<script src="/docs/static/api-docs.js" defer></script>
</head>
<body>
<main id="swagger-ui"></main>
</body>
</html>
"""


def api_docs_router(title: str) -> APIRouter:
    """``/docs`` and its files, for a service called ``title``; kept out of the OpenAPI
    document."""
    router = APIRouter(include_in_schema=False)
    page = PAGE.format(title=html.escape(title))

    @router.get("/docs")
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS | {"Cache-Control": "no-store"})

    @router.get("/docs/static/{name}")
    async def api_docs_file(name: str) -> Response:
        found = STATIC_FILES.get(name)
        if found is None:
            raise NotFound(f"no file {name!r} in the API docs")
        body, media_type = found
        return Response(
            body, media_type=media_type, headers=HEADERS | {"Cache-Control": "public, max-age=3600"}
        )

    return router
