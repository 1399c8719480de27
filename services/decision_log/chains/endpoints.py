"""The read API of a chain, as a monitor or third party uses it; and chain creation (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from ledger.leaf import LEAF_FRAMES

from decision_log.admin_actions import api_actor
from decision_log.auth import require_chain, require_role
from decision_log.boundary import ChainSlug, EntryIndex
from decision_log.chains import service
from decision_log.chains.schemas import (
    ChainCreate,
    ChainInfo,
    ChainList,
    ChainSources,
    ConsistencyProof,
    Entry,
    EntryPage,
    InclusionProof,
    LogKey,
    LogKeys,
    ProducerClose,
    ProducerClosed,
)
from decision_log.chains.sources import MAX_SOURCES_LISTED, close_producer, producer_sources
from decision_log.decisions.admin_records import flush_after_change
from decision_log.keys.service import Principal
from decision_log.limits import MAX_BIGINT, MAX_SOURCE_CHARS
from decision_log.problems import InvalidInput
from decision_log.state import AppState, Caller, State

NDJSON = "application/x-ndjson"
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {NDJSON: {}, LEAF_FRAMES: {}},
        "description": f"NDJSON lines {{index, leaf (base64), leaf_hash (hex)}}; or, when the "
        f"request accepts {LEAF_FRAMES}, leaf frames: per entry its index (big-endian uint64), "
        "its leaf's length (big-endian uint32) and the leaf bytes",
    }
}

router = APIRouter(tags=["chains"])
public = APIRouter(tags=["log"])


def _reader(principal: Principal, chain: str | None = None) -> None:
    require_role(principal, "auditor")
    if chain is not None:
        require_chain(principal, chain)


@router.get("/v1/chains", response_model=ChainList, summary="The tenant's chains with their heads")
async def list_chains(state: State, principal: Caller) -> ChainList:
    if "admin" not in principal.roles:
        _reader(principal)
    async with state.engine.connect() as connection:
        rows = await service.list_chains(connection, tenant_id=principal.tenant_id)
    return ChainList(
        chains=[
            service.chain_info(row, signer=state.signer)
            for row in rows
            if principal.may_use_chain(row.slug)
        ]
    )


@router.post(
    "/v1/chains", status_code=201, response_model=ChainInfo, summary="Create a chain (admin)"
)
async def create_chain(body: ChainCreate, state: State, principal: Caller) -> ChainInfo:
    require_role(principal, "admin")
    async with state.engine.begin() as connection:
        await service.create_chain(
            connection,
            signer=state.signer,
            tenant_id=principal.tenant_id,
            tenant=principal.tenant,
            slug=body.chain,
            description=body.description,
            recorded_as=api_actor(principal),
        )
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=body.chain)
    await flush_after_change(state, tenant_id=principal.tenant_id)
    return service.chain_info(row, signer=state.signer)


@router.get("/v1/chains/{chain}", response_model=ChainInfo, summary="One chain's head")
async def get_chain(chain: ChainSlug, state: State, principal: Caller) -> ChainInfo:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
    return service.chain_info(row, signer=state.signer)


@router.get(
    "/v1/chains/{chain}/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest checkpoint: a C2SP tlog-checkpoint in a C2SP signed note",
    responses={200: {"content": {"text/plain": {}}}},
)
async def get_checkpoint(chain: ChainSlug, state: State, principal: Caller) -> PlainTextResponse:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        note = await service.checkpoint_note(connection, row=row)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get(
    "/v1/chains/{chain}/entries",
    response_model=EntryPage,
    summary="Entries with their exact leaf bytes, in index order",
)
async def list_entries(
    chain: ChainSlug,
    state: State,
    principal: Caller,
    start: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> EntryPage:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        return await service.read_entries(connection, row=row, start=start, limit=limit)


@router.get(
    "/v1/chains/{chain}/entries/stream",
    response_class=StreamingResponse,
    summary="Entries [start, end) as NDJSON, one entry per line, or as leaf frames, for replaying "
    "a whole chain",
    responses=STREAM_RESPONSES,
)
async def stream_entries(
    chain: ChainSlug,
    request: Request,
    state: State,
    principal: Caller,
    start: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    end: Annotated[
        int | None, Query(ge=0, le=MAX_BIGINT, description="Default: the committed size")
    ] = None,
) -> StreamingResponse:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
    return entries_stream(state, row, start=start, end=end, accept=request.headers.get("accept"))


def entries_stream(
    state: AppState, row: Any, *, start: int, end: int | None, accept: str | None
) -> StreamingResponse:
    """NDJSON by default; leaf frames for a client that asks for them (`Accept`)."""
    if end is not None and start > end:
        raise InvalidInput(f"start ({start}) must not be after end ({end})", parameter="start")
    stop = int(row.size) if end is None else min(end, int(row.size))
    frames = LEAF_FRAMES in (accept or "")
    return StreamingResponse(
        service.stream_entries(
            state.engine, chain_id=row.id, start=start, end=stop, leaf_frames=frames
        ),
        media_type=LEAF_FRAMES if frames else NDJSON,
        headers={"X-Chain-Size": str(row.size), "Vary": "Accept"},
    )


@router.get(
    "/v1/chains/{chain}/entries/{index}",
    response_model=Entry,
    response_model_exclude_none=True,
    summary="One entry",
)
async def get_entry(chain: ChainSlug, index: EntryIndex, state: State, principal: Caller) -> Entry:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        return await service.read_entry(connection, row=row, index=index)


@router.get(
    "/v1/chains/{chain}/proof/inclusion",
    response_model=InclusionProof,
    response_model_exclude_none=True,
    summary="RFC 6962 inclusion proof of one entry in a tree of a checkpointed size",
)
async def get_inclusion_proof(
    chain: ChainSlug,
    state: State,
    principal: Caller,
    index: Annotated[int, Query(ge=0, le=MAX_BIGINT - 1)],
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_BIGINT, description="Default: latest checkpoint")
    ] = None,
) -> InclusionProof:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        return await service.inclusion_proof(connection, row=row, index=index, tree_size=tree_size)


@router.get(
    "/v1/chains/{chain}/proof/consistency",
    response_model=ConsistencyProof,
    response_model_exclude_none=True,
    summary="RFC 6962 consistency proof between two checkpointed tree sizes",
)
async def get_consistency_proof(
    chain: ChainSlug,
    state: State,
    principal: Caller,
    from_size: Annotated[int, Query(alias="from", ge=1, le=MAX_BIGINT)],
    to_size: Annotated[
        int | None, Query(alias="to", ge=1, le=MAX_BIGINT, description="Default: latest")
    ] = None,
) -> ConsistencyProof:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        row = await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        return await service.consistency_proof(
            connection, row=row, old_size=from_size, new_size=to_size
        )


@router.get(
    "/v1/chains/{chain}/sources",
    response_model=ChainSources,
    summary="The chain's producers with their counts, last event, highest sequence, open gaps "
    "and silence: the independent verifier's figures, repeated",
)
async def list_sources(
    chain: ChainSlug,
    state: State,
    principal: Caller,
    source: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_SOURCE_CHARS, description="Only this producer"),
    ] = None,
    needing_attention: Annotated[
        bool, Query(description="Only producers with a gap, a finding or a silence")
    ] = False,
    limit: Annotated[
        int, Query(ge=1, le=MAX_SOURCES_LISTED, description="Producers listed")
    ] = MAX_SOURCES_LISTED,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_SOURCE_CHARS,
            description="List the producers named after this one (the previous page's next_after)",
        ),
    ] = None,
) -> ChainSources:
    _reader(principal, chain)
    async with state.engine.connect() as connection:
        await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
    return await producer_sources(
        state.verifier,
        tenant=principal.tenant,
        chain=chain,
        source=source,
        needing_attention=needing_attention,
        limit=limit,
        after=after,
    )


@router.post(
    "/v1/chains/{chain}/sources/close",
    response_model=ProducerClosed,
    status_code=201,
    summary="Close a producer that cannot close itself (admin): its closing event, numbered "
    "after the highest the verifier saw, appended on its behalf with who and why",
    responses={
        404: {"description": "The verifier has seen no such producer in the chain"},
        409: {"description": "The producer is closed already, or numbered none of its events"},
        503: {"description": "The verifier could not check the chain or give its figures"},
    },
)
async def close_source(
    chain: ChainSlug, body: ProducerClose, state: State, principal: Caller
) -> ProducerClosed:
    require_role(principal, "admin")
    require_chain(principal, chain)
    async with state.engine.connect() as connection:
        await service.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
    return await close_producer(state, principal, chain=chain, request=body)


@public.get("/v1/log/keys", response_model=LogKeys, summary="The log's public keys (no auth)")
async def log_keys(state: State) -> LogKeys:
    return LogKeys(
        origin=state.signer.origin,
        keys=[LogKey(**key) for key in state.signer.public_keys()],
    )
