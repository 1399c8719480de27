"""Rendering console pages: Jinja2 with autoescape, and the headers every console answer has.

Producers' events reach these pages, and an admin may read them, so an injected script would
be a privilege escalation: templates escape everything, event data enters a page as text or as
JSON in a ``<script type="application/json">`` block (``tojson`` escapes ``<``, ``>`` and ``&``),
and the Content-Security-Policy allows no inline script or style at all.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from decision_log.problems import InvalidInput, NotFound, Problem, UnsupportedMediaType

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=PackageLoader("decision_log.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
# Event data shown as text: escaped like any other text (``tojson`` is for script blocks only).
templates.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    html = templates.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def problem_page(request: Request, problem: Problem, **context: Any) -> HTMLResponse:
    """A problem (RFC 9457) as a page: its type, title, status and detail, with its status."""
    return render(
        request,
        "problem.html",
        status_code=problem.status,
        problem=problem.body(),
        **context,
    )


STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
_STATIC = resources.files("decision_log.console").joinpath("static")
STATIC_FILES = {
    entry.name: (entry.read_bytes(), STATIC_TYPES[suffix])
    for entry in _STATIC.iterdir()
    if entry.is_file() and (suffix := "." + entry.name.rpartition(".")[2]) in STATIC_TYPES
}


def static_file(name: str) -> Response:
    """A file shipped in the package: the console needs nothing from another origin."""
    found = STATIC_FILES.get(name)
    if found is None:
        raise NotFound(f"no console file {name!r}")
    body, media_type = found
    headers = SECURITY_HEADERS | {"Cache-Control": "public, max-age=3600"}
    return Response(body, media_type=media_type, headers=headers)


MAX_FORM_FIELDS = 50


async def form_fields(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the request guard caps its size), each field
    once; anything else is a 4xx problem."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("send the form as application/x-www-form-urlencoded")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form is not valid UTF-8 form data") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInput(f"form field {name!r} is given more than once", parameter=name)
        fields[name] = value
    return fields


ModelT = TypeVar("ModelT", bound=BaseModel)


def checked(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """The fields as the API's model checks them; the first error becomes the problem."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "form"
        raise InvalidInput(f"{name}: {first['msg']}", parameter=name) from None


def printable(value: str, *, name: str, max_length: int = 1000) -> str:
    """Text of a form or query field: no control characters (a NUL never reaches PostgreSQL)."""
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", parameter=name)
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 0x7F for c in value):
        raise InvalidInput(f"{name} holds a control character", parameter=name)
    return value
