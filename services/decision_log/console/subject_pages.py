"""Data subjects: pseudonyms, erasure, legal holds."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from decision_log.auth import require_chain, require_role
from decision_log.boundary import ChainSlug, HoldId
from decision_log.chains import service as chains
from decision_log.console import csrf
from decision_log.console.pages import checked, form_fields, printable, render
from decision_log.console.routing import Session, console_router
from decision_log.console.sessions import ConsoleSession
from decision_log.decisions.projector import ACCESS_CHAIN
from decision_log.privacy import actions as privacy
from decision_log.privacy.schemas import ErasureIn, ErasureOut, Hold, HoldIn, SubjectIn
from decision_log.problems import Forbidden
from decision_log.state import State

router = console_router()


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
