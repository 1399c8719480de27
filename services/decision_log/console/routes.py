"""The console's pages under /console/, kept out of the OpenAPI document.

Each page is its session plus calls of the services the API calls (``decisions.service`` and
the others), so a page reads exactly what the API reads and is recorded in the access chain
exactly as the API's read is. Problems show as pages with the problem's status; a request
without a live session is sent to sign in.
"""

from __future__ import annotations

from fastapi import APIRouter

from decision_log.console import (
    chain_pages,
    decision_pages,
    export_pages,
    session_pages,
    subject_pages,
)

router = APIRouter()
for pages in (session_pages, chain_pages, decision_pages, export_pages, subject_pages):
    router.include_router(pages.router)
