"""The API's docs at /docs: Swagger UI from files shipped with the package (FastAPI's default
page loads them from a CDN, and is blank offline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from decision_log.console.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def api_docs(request: Request) -> Response:
    return render(request, "api_docs.html")
