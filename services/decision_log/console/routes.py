"""The console's pages under /console/, kept out of the OpenAPI document.

Each page is its session plus calls of the services the API calls (``decisions.service`` and
the others), so a page reads exactly what the API reads and is recorded in the access chain
exactly as the API's read is. Problems show as pages with the problem's status; a request
without a live session is sent to sign in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from decision_log.auth import require_chain, require_role, tenant_caller
from decision_log.boundary import ChainSlug, DecisionId, ExportId, HoldId
from decision_log.chains import service as chains
from decision_log.console import (
    access_log,
    bundle_report,
    csrf,
    csv_export,
    decision_evidence,
    export_form,
    overview,
    personal_fields,
    sessions,
)
from decision_log.console.pages import (
    SECURITY_HEADERS,
    checked,
    form_fields,
    printable,
    problem_page,
    render,
    static_file,
)
from decision_log.console.search_form import read_search_form
from decision_log.console.sessions import SESSION_COOKIE, ConsoleSession
from decision_log.decisions import service as decisions
from decision_log.decisions.projector import ACCESS_CHAIN
from decision_log.exports import service as exports
from decision_log.limits import MAX_BIGINT
from decision_log.privacy import actions as privacy
from decision_log.privacy.schemas import ErasureIn, ErasureOut, Hold, HoldIn, SubjectIn
from decision_log.problems import (
    Forbidden,
    IntegrityFailure,
    InvalidInput,
    Problem,
    Unauthenticated,
)
from decision_log.state import State

PREFIX = "/console"
SIGN_IN = f"{PREFIX}/sign-in"
# The most rows one CSV download holds (pages of the largest size, each an access record).
MAX_CSV_ROWS = 10_000


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class ConsoleRoute(APIRoute):
    """Answers a problem with a page showing it, and a missing session with the sign-in page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return RedirectResponse(SIGN_IN, status_code=303, headers=SECURITY_HEADERS)
            except RequestValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first.get("loc", ())) or "request"
                return problem_page(request, InvalidInput(f"{where}: {first.get('msg')}"))
            except Problem as problem:
                return problem_page(request, problem)

        return console_handler


router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)


async def signed_in(request: Request, state: State) -> ConsoleSession:
    try:
        return await sessions.current_session(state, request.cookies.get(SESSION_COOKIE))
    except Unauthenticated:
        raise SignInRequired from None


Session = Annotated[ConsoleSession, Depends(signed_in)]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/static/{name}")
async def console_static(name: str) -> Response:
    return static_file(name)


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


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


def _sign_in_page(
    request: Request, *, error: str | None = None, status_code: int = 200
) -> Response:
    token = csrf.new_token()
    response = render(
        request, "sign_in.html", status_code=status_code, csrf_token=token, error=error
    )
    response.set_cookie(
        csrf.SIGN_IN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=SIGN_IN,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/sign-in")
async def sign_in(request: Request, state: State) -> Response:
    fields = await form_fields(request)
    csrf.check_token(
        expected=request.cookies.get(csrf.SIGN_IN_CSRF_COOKIE), given=fields.get(csrf.FIELD)
    )
    api_key = printable(fields.get("api_key", ""), name="api_key", max_length=200).strip()
    try:
        principal = tenant_caller(await state.authenticator.authenticate(api_key))
        session_id, _ = await sessions.start_session(state, principal)
    except Problem as problem:
        return _sign_in_page(request, error=problem.detail, status_code=problem.status)
    response = RedirectResponse(f"{PREFIX}/", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(csrf.SIGN_IN_CSRF_COOKIE, path=SIGN_IN)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, state: State, session: Session) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    await sessions.end_session(state, session)
    response = RedirectResponse(SIGN_IN, status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


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


@router.get("/exports")
async def exports_page(request: Request, state: State, session: Session) -> Response:
    principal = session.principal
    jobs = await exports.list_exports(state, principal)
    async with state.engine.connect() as connection:
        chain_rows = await chains.list_chains(connection, tenant_id=principal.tenant_id)
    chain_names = [r.slug for r in chain_rows if principal.may_use_chain(r.slug)]
    chosen = [
        printable(value, name="decision_id")
        for value in request.query_params.getlist("decision_id")
    ]
    return render(
        request,
        "exports.html",
        session=session,
        jobs=jobs,
        chains=chain_names,
        chosen_chain=request.query_params.get("chain"),
        chosen=chosen,
    )


@router.post("/exports")
async def create_export(request: Request, state: State, session: Session) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    chain, export_request = export_form.export_request(fields)
    job = await exports.create_export(state, session.principal, chain=chain, request=export_request)
    return RedirectResponse(f"{PREFIX}/exports/{job.id}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/exports/{export_id}")
async def export_page(
    request: Request, state: State, session: Session, export_id: ExportId
) -> Response:
    job = await exports.get_export(state, session.principal, export_id=export_id)
    return render(request, "export.html", session=session, job=job)


@router.get("/exports/{export_id}/bundle")
async def export_bundle(state: State, session: Session, export_id: ExportId) -> Response:
    job, chunks = await exports.open_bundle(state, session.principal, export_id=export_id)
    headers = SECURITY_HEADERS | {
        "Content-Disposition": f'attachment; filename="{job.chain}-{export_id}.zip"'
    }
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)


@router.get("/exports/{export_id}/report")
async def export_report(state: State, session: Session, export_id: ExportId) -> Response:
    job, chunks = await exports.open_bundle(state, session.principal, export_id=export_id)
    html = await bundle_report.report_html(chunks, size=job.bytes)
    return Response(
        html, media_type="text/html; charset=utf-8", headers=bundle_report.REPORT_HEADERS
    )


@router.get("/subjects")
async def subjects_page(request: Request, state: State, session: Session) -> Response:
    return await _subjects(request, state, session)


async def _subjects(
    request: Request,
    state: State,
    session: ConsoleSession,
    *,
    pseudonym: str | None = None,
    erased: ErasureOut | None = None,
    changed_hold: Hold | None = None,
) -> Response:
    principal = session.principal
    holds: dict[str, list[Hold]] = {}
    if principal.roles & {"auditor", "admin"}:
        async with state.engine.connect() as connection:
            rows = await chains.list_chains(connection, tenant_id=principal.tenant_id)
        for row in rows:
            if principal.may_use_chain(row.slug) and row.slug != ACCESS_CHAIN:
                holds[row.slug] = await privacy.list_holds(state, principal, row.slug)
    return render(
        request,
        "subjects.html",
        session=session,
        pseudonym=pseudonym,
        erased=erased,
        changed_hold=changed_hold,
        holds=holds,
    )


@router.post("/subjects/pseudonym")
async def subject_pseudonym(request: Request, state: State, session: Session) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    principal = session.principal
    if not principal.roles & {"auditor", "admin"}:
        raise Forbidden("this operation needs an auditor or admin key")  # as the API
    subject = checked(SubjectIn, {"subject": printable(fields.get("subject", ""), name="subject")})
    pseudonym = state.personal_data.pseudonym(tenant=principal.tenant, subject=subject.subject)
    return await _subjects(request, state, session, pseudonym=pseudonym)


@router.post("/subjects/erase")
async def subject_erase(request: Request, state: State, session: Session) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    require_role(session.principal, "admin")
    body = {
        name: printable(fields[name], name=name, max_length=2000)
        for name in ("subject", "pseudonym", "reason", "override_reason")
        if fields.get(name)
    }
    erased = await privacy.erase_subject(state, session.principal, checked(ErasureIn, body))
    return await _subjects(request, state, session, erased=erased)


@router.post("/chains/{chain}/legal-holds")
async def hold_set(request: Request, state: State, session: Session, chain: ChainSlug) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    require_role(session.principal, "admin")
    require_chain(session.principal, chain)
    body = checked(HoldIn, {"reason": printable(fields.get("reason", ""), name="reason")})
    hold = await privacy.set_hold(state, session.principal, chain, body.reason)
    return await _subjects(request, state, session, changed_hold=hold)


@router.post("/chains/{chain}/legal-holds/{hold_id}/lift")
async def hold_lift(
    request: Request, state: State, session: Session, chain: ChainSlug, hold_id: HoldId
) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    require_role(session.principal, "admin")
    require_chain(session.principal, chain)
    body = checked(HoldIn, {"reason": printable(fields.get("reason", ""), name="reason")})
    hold = await privacy.lift_hold(state, session.principal, chain, hold_id, body.reason)
    return await _subjects(request, state, session, changed_hold=hold)
