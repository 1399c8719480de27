"""Per-chain ingest settings as an admin reads and changes them; every change is recorded in the
chain itself."""

from __future__ import annotations

from dataclasses import asdict

from decision_log import admin_actions
from decision_log.chains import service as chains
from decision_log.decisions.admin_records import flush_after_change
from decision_log.ingest import repository
from decision_log.ingest.schemas import IngestSettings, IngestSettingsIn
from decision_log.keys.service import Principal
from decision_log.privacy.actions import record
from decision_log.state import AppState

INGEST_CONFIGURED = "dev.audit-trail.chain.ingest-configured.v1"


async def chain_settings(state: AppState, principal: Principal, chain: str) -> IngestSettings:
    async with state.engine.connect() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
    settings = await state.ingest.for_chain(int(row.id))
    return IngestSettings(**asdict(settings))


async def set_chain_settings(
    state: AppState, principal: Principal, chain: str, request: IngestSettingsIn
) -> IngestSettings:
    """Save a chain's settings and record the change in the chain (who, and the new values)."""
    async with state.engine.begin() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        await repository.save_settings(
            connection,
            chain_id=int(row.id),
            max_event_bytes=request.max_event_bytes,
            oversize=request.oversize,
            genai_content=request.genai_content,
            genai_subject_attribute=request.genai_subject_attribute,
        )
        settings = IngestSettings(**request.model_dump())
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=admin_actions.api_actor(principal),
            action="chain.configure",
            target={"chain": chain},
            changes=settings.model_dump(mode="json"),
            at=state.clock(),
        )
    state.ingest.forget(int(row.id))
    await flush_after_change(state, tenant_id=principal.tenant_id)
    await record(
        state,
        principal,
        chain,
        INGEST_CONFIGURED,
        chain,
        {**settings.model_dump(), "by": principal.key_id},
        state.clock(),
    )
    return settings
