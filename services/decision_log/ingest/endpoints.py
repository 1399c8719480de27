"""A chain's ingest settings: the event size limit and what happens beyond it, GenAI content."""

from __future__ import annotations

from fastapi import APIRouter

from decision_log.auth import require_chain, require_role
from decision_log.boundary import ChainSlug
from decision_log.ingest import service
from decision_log.ingest.schemas import IngestSettings, IngestSettingsIn
from decision_log.problems import Forbidden
from decision_log.state import Caller, State

router = APIRouter(tags=["ingest"])


@router.get(
    "/v1/chains/{chain}/ingest",
    response_model=IngestSettings,
    summary="A chain's ingest settings (auditor, admin)",
)
async def get_ingest_settings(chain: ChainSlug, state: State, principal: Caller) -> IngestSettings:
    if not principal.roles & {"auditor", "admin"}:
        raise Forbidden("this operation needs an auditor or admin key")
    require_chain(principal, chain)
    return await service.chain_settings(state, principal, chain)


@router.put(
    "/v1/chains/{chain}/ingest",
    response_model=IngestSettings,
    summary="Set a chain's event size limit, what an over-limit body becomes, and how GenAI "
    "message content is kept (admin); recorded in the chain",
)
async def set_ingest_settings(
    chain: ChainSlug, body: IngestSettingsIn, state: State, principal: Caller
) -> IngestSettings:
    require_role(principal, "admin")
    require_chain(principal, chain)
    return await service.set_chain_settings(state, principal, chain, body)
