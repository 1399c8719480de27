"""Personal data API: pseudonym lookup, erasure, retention, legal holds, a decrypted view."""

from __future__ import annotations

from fastapi import APIRouter

from decision_log.auth import require_chain, require_role
from decision_log.boundary import ChainSlug, EntryIndex, HoldId
from decision_log.privacy import actions
from decision_log.privacy.schemas import (
    DisposalIn,
    DisposalOut,
    ErasureIn,
    ErasureOut,
    Hold,
    HoldIn,
    PseudonymOut,
    RetentionIn,
    RetentionOut,
    RevealedEvent,
    SubjectIn,
)
from decision_log.problems import Forbidden
from decision_log.state import Caller, State

router = APIRouter(tags=["personal data"])


@router.post(
    "/v1/subjects/pseudonym",
    response_model=PseudonymOut,
    summary="The pseudonym under which a data subject's records are kept (auditor, admin)",
)
async def lookup_pseudonym(body: SubjectIn, state: State, principal: Caller) -> PseudonymOut:
    if not principal.roles & {"auditor", "admin"}:
        raise Forbidden("this operation needs an auditor or admin key")
    return PseudonymOut(
        pseudonym=state.personal_data.pseudonym(tenant=principal.tenant, subject=body.subject)
    )


@router.post(
    "/v1/subjects/erase",
    response_model=ErasureOut,
    summary="Erase a data subject: destroy its key, record the erasure (admin)",
    responses={409: {"description": "Refused: retention floor or legal hold (says until when)"}},
)
async def erase(body: ErasureIn, state: State, principal: Caller) -> ErasureOut:
    require_role(principal, "admin")
    return await actions.erase_subject(state, principal, body)


@router.put(
    "/v1/chains/{chain}/retention",
    response_model=RetentionOut,
    summary="Set a chain's retention period, at least 183 days (admin)",
)
async def set_retention(
    chain: ChainSlug, body: RetentionIn, state: State, principal: Caller
) -> RetentionOut:
    require_role(principal, "admin")
    require_chain(principal, chain)
    days = await actions.set_retention(state, principal, chain, body.days)
    return RetentionOut(chain=chain, days=days)


@router.post(
    "/v1/chains/{chain}/dispose",
    response_model=DisposalOut,
    summary="Dispose of expired records' personal content by destroying keys (admin)",
    responses={409: {"description": "Refused: retention floor or legal hold (says until when)"}},
)
async def dispose(
    chain: ChainSlug, body: DisposalIn, state: State, principal: Caller
) -> DisposalOut:
    require_role(principal, "admin")
    require_chain(principal, chain)
    return await actions.dispose(state, principal, chain, body)


@router.get("/v1/chains/{chain}/legal-holds", response_model=list[Hold], summary="Legal holds")
async def list_holds(chain: ChainSlug, state: State, principal: Caller) -> list[Hold]:
    if not principal.roles & {"auditor", "admin"}:
        raise Forbidden("this operation needs an auditor or admin key")
    require_chain(principal, chain)
    return await actions.list_holds(state, principal, chain)


@router.post(
    "/v1/chains/{chain}/legal-holds",
    response_model=Hold,
    status_code=201,
    summary="Put a chain under a legal hold (admin)",
)
async def set_hold(chain: ChainSlug, body: HoldIn, state: State, principal: Caller) -> Hold:
    require_role(principal, "admin")
    require_chain(principal, chain)
    return await actions.set_hold(state, principal, chain, body.reason)


@router.post(
    "/v1/chains/{chain}/legal-holds/{hold_id}/lift",
    response_model=Hold,
    summary="Lift a legal hold (admin)",
)
async def lift_hold(
    chain: ChainSlug, hold_id: HoldId, body: HoldIn, state: State, principal: Caller
) -> Hold:
    require_role(principal, "admin")
    require_chain(principal, chain)
    return await actions.lift_hold(state, principal, chain, hold_id, body.reason)


@router.get(
    "/v1/chains/{chain}/entries/{index}/event",
    response_model=RevealedEvent,
    summary="One entry's event with personal fields opened for keys with the personal-data role",
)
async def revealed_event(
    chain: ChainSlug, index: EntryIndex, state: State, principal: Caller
) -> RevealedEvent:
    require_role(principal, "auditor")
    require_chain(principal, chain)
    return await actions.reveal_entry(state, principal, chain, index)
