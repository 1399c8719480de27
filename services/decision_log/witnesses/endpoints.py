"""The witness API: every chain's checkpoints, entries and proofs, and posting cosignatures.

Witness keys belong to no tenant; they see every chain (by ``<tenant>/<chain>``) and can do
nothing else. The read handlers are the tenant ones' twins, resolving the chain by full name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from decision_log.admin_actions import Actor, note
from decision_log.boundary import ChainSlug, TenantSlug
from decision_log.chains import service as chains
from decision_log.chains.endpoints import STREAM_RESPONSES, entries_stream
from decision_log.chains.schemas import ChainList, ConsistencyProof, InclusionProof
from decision_log.decisions.admin_records import flush_after_change
from decision_log.limits import MAX_BIGINT
from decision_log.state import State, WitnessCaller
from decision_log.witnesses import service
from decision_log.witnesses.schemas import (
    AcknowledgementIn,
    AcknowledgementRecorded,
    CosignatureAccepted,
    CosignatureIn,
)

router = APIRouter(prefix="/v1/witness", tags=["witness"])


@router.get("/chains", response_model=ChainList, summary="Every chain of every tenant")
async def list_chains(state: State, witness: WitnessCaller) -> ChainList:
    async with state.engine.connect() as connection:
        rows = await chains.all_chains(connection)
    return ChainList(chains=[chains.chain_info(row, signer=state.signer) for row in rows])


@router.get(
    "/chains/{tenant}/{chain}/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest checkpoint with its cosignatures (a C2SP signed note)",
    responses={200: {"content": {"text/plain": {}}}},
)
async def get_checkpoint(
    tenant: TenantSlug, chain: ChainSlug, state: State, witness: WitnessCaller
) -> PlainTextResponse:
    async with state.engine.connect() as connection:
        row = await chains.get_chain_by_names(connection, tenant=tenant, chain=chain)
        note = await chains.checkpoint_note(connection, row=row)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get(
    "/chains/{tenant}/{chain}/entries/stream",
    response_class=StreamingResponse,
    summary="Entries [start, end) as NDJSON, or as leaf frames",
    responses=STREAM_RESPONSES,
)
async def stream_entries(
    tenant: TenantSlug,
    chain: ChainSlug,
    request: Request,
    state: State,
    witness: WitnessCaller,
    start: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    end: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
) -> StreamingResponse:
    async with state.engine.connect() as connection:
        row = await chains.get_chain_by_names(connection, tenant=tenant, chain=chain)
    return entries_stream(state, row, start=start, end=end, accept=request.headers.get("accept"))


@router.get(
    "/chains/{tenant}/{chain}/proof/consistency",
    response_model=ConsistencyProof,
    response_model_exclude_none=True,
    summary="RFC 6962 consistency proof between two checkpointed sizes",
)
async def get_consistency_proof(
    tenant: TenantSlug,
    chain: ChainSlug,
    state: State,
    witness: WitnessCaller,
    from_size: Annotated[int, Query(alias="from", ge=1, le=MAX_BIGINT)],
    to_size: Annotated[int | None, Query(alias="to", ge=1, le=MAX_BIGINT)] = None,
) -> ConsistencyProof:
    async with state.engine.connect() as connection:
        row = await chains.get_chain_by_names(connection, tenant=tenant, chain=chain)
        return await chains.consistency_proof(
            connection, row=row, old_size=from_size, new_size=to_size
        )


@router.get(
    "/chains/{tenant}/{chain}/proof/inclusion",
    response_model=InclusionProof,
    response_model_exclude_none=True,
    summary="RFC 6962 inclusion proof",
)
async def get_inclusion_proof(
    tenant: TenantSlug,
    chain: ChainSlug,
    state: State,
    witness: WitnessCaller,
    index: Annotated[int, Query(ge=0, le=MAX_BIGINT - 1)],
    tree_size: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> InclusionProof:
    async with state.engine.connect() as connection:
        row = await chains.get_chain_by_names(connection, tenant=tenant, chain=chain)
        return await chains.inclusion_proof(connection, row=row, index=index, tree_size=tree_size)


@router.post(
    "/chains/{tenant}/{chain}/cosignatures",
    response_model=CosignatureAccepted,
    status_code=201,
    summary="Post a cosignature (C2SP tlog-cosignature) of one of the chain's checkpoints",
)
async def post_cosignature(
    tenant: TenantSlug, chain: ChainSlug, body: CosignatureIn, state: State, witness: WitnessCaller
) -> CosignatureAccepted:
    async with state.engine.begin() as connection:
        row = await chains.get_chain_by_names(connection, tenant=tenant, chain=chain)
        stored = await service.add_cosignature(
            connection,
            witness=witness,
            chain_id=row.id,
            size=body.size,
            signature_line=body.signature,
        )
    return CosignatureAccepted(
        tenant=tenant, chain=chain, size=body.size, witness=witness.name, stored=stored
    )


@router.post(
    "/chains/{tenant}/{chain}/acknowledgements",
    response_model=AcknowledgementRecorded,
    status_code=201,
    summary="Report a finding the witness's operator acknowledged; recorded in the access log",
)
async def post_acknowledgement(
    tenant: TenantSlug,
    chain: ChainSlug,
    body: AcknowledgementIn,
    state: State,
    witness: WitnessCaller,
) -> AcknowledgementRecorded:
    """An acknowledgement restarts the witness's account of a chain (a new epoch), so the
    tenant's auditors must see it among the administrative actions: who, when, why."""
    async with state.engine.begin() as connection:
        row = await chains.get_chain_by_names(connection, tenant=tenant, chain=chain)
        tenant_id = int(row.tenant_id)
        await note(
            connection,
            tenant_id=tenant_id,
            actor=Actor(via="verifier", key_id=witness.key_id, operator=body.operator),
            action="finding.acknowledge",
            target={
                "chain": chain,
                "witness": witness.name,
                "finding_id": body.finding_id,
                "kind": body.kind,
                "first_bad_index": body.first_bad_index,
                "epoch": body.epoch,
            },
            at=state.clock(),
            reason=body.reason,
        )
    await flush_after_change(state, tenant_id=tenant_id)
    return AcknowledgementRecorded(
        tenant=tenant, chain=chain, finding_id=body.finding_id, witness=witness.name
    )
