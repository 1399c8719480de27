"""What both services' /docs must be: a page that loads only this service's own files."""

from __future__ import annotations

import re

import httpx


async def assert_docs_are_served_offline(client: httpx.AsyncClient, title: str) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<title>API docs · {title}</title>" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == [
        "/docs/static/api-docs.js",
        "/docs/static/swagger-ui-bundle.js",
        "/docs/static/swagger-ui.css",
    ]
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    assert b"/openapi.json" in (await client.get("/docs/static/api-docs.js")).content
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs/static/..%2Fapi_docs.py")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404
