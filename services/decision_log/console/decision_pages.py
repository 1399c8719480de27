"""Searching decisions (as a page and as CSV) and one decision with its evidence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from decision_log.auth import require_role
from decision_log.boundary import ChainSlug, DecisionId
from decision_log.console import csv_export, decision_evidence, personal_fields
from decision_log.console.pages import SECURITY_HEADERS, render
from decision_log.console.routing import Session, console_router
from decision_log.console.search_form import read_search_form
from decision_log.decisions import service as decisions
from decision_log.problems import IntegrityFailure, InvalidInput
from decision_log.state import State

# The most rows one CSV download holds (pages of the largest size, each an access record).
MAX_CSV_ROWS = 10_000

router = console_router()


@router.get("/decisions")
async def search_page(request: Request, state: State, session: Session) -> Response:
    require_role(session.principal, "auditor")
    form = read_search_form(request.query_params)
    page = await decisions.search(state, session.principal, form.filters())
    return render(
        request,
        "decisions.html",
        session=session,
        form=form,
        page=page,
        next_query=None if page.next_cursor is None else form.query(cursor=page.next_cursor),
        csv_query=form.query(cursor=None, limit=None),
    )


@router.get("/decisions.csv")
async def search_csv(request: Request, state: State, session: Session) -> Response:
    """Every decision of the search (up to MAX_CSV_ROWS), read page by page through the API's
    search, each page recorded as a search is."""
    require_role(session.principal, "auditor")
    form = read_search_form(request.query_params)
    if form.cursor is not None:
        raise InvalidInput(
            "the CSV holds the whole result, from its first page", parameter="cursor"
        )
    first = await decisions.search(
        state, session.principal, form.filters(limit=decisions.MAX_PAGE, cursor=None)
    )

    async def lines() -> AsyncIterator[str]:
        page, rows = first, 0
        yield csv_export.header_line()
        while True:
            yield csv_export.rows_text(page.decisions)
            rows += len(page.decisions)
            if page.next_cursor is None or rows >= MAX_CSV_ROWS:
                return
            page = await decisions.search(
                state,
                session.principal,
                form.filters(limit=decisions.MAX_PAGE, cursor=page.next_cursor),
            )

    headers = SECURITY_HEADERS | {"Content-Disposition": 'attachment; filename="decisions.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/chains/{chain}/decisions/{decision_id:path}")
async def decision_page(
    request: Request, state: State, session: Session, chain: ChainSlug, decision_id: DecisionId
) -> Response:
    principal = session.principal
    require_role(principal, "auditor")
    # The keys offered as trust on first use are read beside the view, not after it.
    trusting = asyncio.ensure_future(decision_evidence.trusted_on_first_use(state))
    try:
        view = await decisions.view(state, principal, chain=chain, decision_id=decision_id)
    except IntegrityFailure as failure:
        trust = await trusting
        # The server does not vouch for this decision; what the store holds is shown beside
        # its finding, for the browser to check too.
        payload = await decision_evidence.refused_payload(
            state, principal, chain=chain, failure=failure
        )
        return render(
            request,
            "decision_refused.html",
            status_code=failure.status,
            session=session,
            chain=chain,
            decision_id=decision_id,
            problem=failure.body(),
            payload=payload,
            trust=trust,
        )
    except BaseException:
        await asyncio.gather(trusting, return_exceptions=True)
        raise
    trust = await trusting
    if state.verifier.configured:
        view.evidence.verifier = await decisions.latest_attestation(
            state, tenant=principal.tenant, chain=chain
        )
    return render(
        request,
        "decision.html",
        session=session,
        view=view,
        personal=await personal_fields.personal_fields(state, principal, view),
        payload=decision_evidence.view_payload(view),
        trust=trust,
    )
