"""Admin API for a tenant's API keys."""

from __future__ import annotations

from fastapi import APIRouter

from decision_log.auth import require_role
from decision_log.boundary import KeyId
from decision_log.keys import service
from decision_log.keys.schemas import KeyCreate, KeyCreated, KeyInfo, KeyUpdate
from decision_log.state import Caller, State

router = APIRouter(tags=["keys"])


@router.get("/v1/keys", response_model=list[KeyInfo], summary="The tenant's API keys (admin)")
async def list_keys(state: State, principal: Caller) -> list[KeyInfo]:
    require_role(principal, "admin")
    async with state.engine.connect() as connection:
        return await service.list_keys(connection, tenant_id=principal.tenant_id, caller=principal)


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=KeyCreated,
    summary="Create an API key (admin); the secret is in this answer only",
)
async def create_key(body: KeyCreate, state: State, principal: Caller) -> KeyCreated:
    require_role(principal, "admin")
    async with state.engine.begin() as connection:
        return await service.create_key(
            connection,
            tenant_id=principal.tenant_id,
            request=body,
            now=state.clock(),
            caller=principal,
        )


@router.post(
    "/v1/keys/{key_id}/revoke",
    response_model=KeyInfo,
    summary="Revoke an API key at once, in every worker (admin)",
)
async def revoke_key(key_id: KeyId, state: State, principal: Caller) -> KeyInfo:
    require_role(principal, "admin")
    async with state.engine.begin() as connection:
        return await service.revoke_key(
            connection,
            tenant_id=principal.tenant_id,
            key_id=key_id,
            now=state.clock(),
            caller=principal,
        )


@router.patch("/v1/keys/{key_id}", response_model=KeyInfo, summary="Set a key's expiry (admin)")
async def update_key(key_id: KeyId, body: KeyUpdate, state: State, principal: Caller) -> KeyInfo:
    require_role(principal, "admin")
    async with state.engine.begin() as connection:
        return await service.set_key_expiry(
            connection,
            tenant_id=principal.tenant_id,
            key_id=key_id,
            expires_at=body.expires_at,
            now=state.clock(),
            caller=principal,
        )
