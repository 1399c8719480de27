"""The overview of the tenant's chains and the access log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from decision_log.auth import require_role
from decision_log.console import access_log, overview
from decision_log.console.pages import SECURITY_HEADERS, render
from decision_log.console.routing import PREFIX, Session, console_router
from decision_log.limits import MAX_BIGINT
from decision_log.state import State

router = console_router()


@router.get("/")
async def overview_page(request: Request, state: State, session: Session) -> Response:
    if not session.principal.roles & {"auditor", "admin"}:
        # A personal-data key reads no chain: its page is the data subjects'.
        return RedirectResponse(f"{PREFIX}/subjects", status_code=303, headers=SECURITY_HEADERS)
    overviews = await overview.chain_overviews(state, session.principal)
    return render(request, "overview.html", session=session, overviews=overviews)


@router.get("/access-log")
async def access_log_page(
    request: Request,
    state: State,
    session: Session,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> Response:
    require_role(session.principal, "auditor")  # as the API's reads of a chain's entries
    page = await access_log.access_page(state, session.principal, before=before)
    return render(request, "access_log.html", session=session, page=page, before=before)
