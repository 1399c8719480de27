"""The verifier's API: per chain status, attestations, verification on demand (a full re-read
as a job), coverage of one entry; the public keys; health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from http_edge.readiness import probe_database, schema_range

from verifier import repository
from verifier.log_client import ChainName
from verifier.migrations import OLDEST_RUNNABLE_SCHEMA, migrations_dir
from verifier.problems import NotFound, Unavailable
from verifier.schemas import (
    Acknowledgement,
    Attestation,
    AttestationList,
    AttestationRef,
    ChainCompleteness,
    ChainStatus,
    ChainStatusList,
    CosignedCheckpoint,
    Coverage,
    EpochStart,
    FindingOut,
    FindingRef,
    SweepPass,
    SweepStatus,
    Verification,
    VerifierKeys,
)
from verifier.state import AppState, AuditorCaller, State

# A chain's name as the log gives it: a lowercase slug (a-z, 0-9, '-', 1 to 64 characters).
ChainSlug = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
        min_length=1,
        max_length=64,
        description="The chain's name, a lowercase slug",
    ),
]
# Indexes, sizes and ids are PostgreSQL bigints on both sides.
MAX_BIGINT = 2**63 - 1
# A page of a chain's producers: a chain gathers one per process instance as long as it lives.
MAX_SOURCES_LISTED = 1000

router = APIRouter(prefix="/v1/chains", tags=["verification"])
public = APIRouter(tags=["verifier"])


async def chain_status(state: AppState, name: ChainName) -> ChainStatus:
    row = await state.verifier.state(name)
    async with state.engine.connect() as connection:
        cosigned = await repository.latest_cosigned(connection, chain_id=row.id, epoch=row.epoch)
        findings = await repository.findings(connection, chain_id=row.id)
        epochs = await repository.epochs(connection, chain_id=row.id)
    started = next((e for e in epochs if e.epoch == row.epoch), None)
    return ChainStatus(
        tenant=name.tenant,
        chain=name.chain,
        origin=state.verifier.chain_origin(name),
        epoch=row.epoch,
        epoch_start=EpochStart(
            epoch=row.epoch,
            start_size=0 if started is None else started.start_size,
            history_replaced=False if started is None else started.history_replaced,
            after_finding=None if started is None else started.after_finding,
            started_at=None if started is None else started.started_at,
        ),
        verified_size=row.verified_size,
        root_hash=bytes(row.verified_root).hex(),
        verified_at=row.verified_at,
        entries_replayed=row.entries_replayed,
        halted=row.halted_by is not None,
        cosigned_checkpoint=None
        if cosigned is None
        else CosignedCheckpoint(
            size=cosigned.size,
            root_hash=bytes(cosigned.root_hash).hex(),
            note=f"{cosigned.checkpoint_note}{cosigned.cosignature}\n",
            cosigned_at=cosigned.cosigned_at,
        ),
        findings=[
            FindingOut(
                id=f.id,
                epoch=f.epoch,
                kind=f.kind,
                first_bad_index=f.first_bad_index,
                detail=f.detail,
                evidence=f.evidence,
                found_at=f.found_at,
                attestation=f.attestation,
                acknowledged=None
                if f.operator is None
                else Acknowledgement(
                    operator=f.operator, reason=f.reason, acknowledged_at=f.acknowledged_at
                ),
                next_epoch=None
                if f.next_epoch is None
                else EpochStart(
                    epoch=f.next_epoch,
                    start_size=f.start_size,
                    history_replaced=f.history_replaced,
                    after_finding=f.id,
                    started_at=f.acknowledged_at,
                ),
            )
            for f in findings
        ],
        sweep=SweepStatus.model_validate(await state.sweeper.status(row)),
    )


def sweep_pass(name: ChainName, row: Any) -> SweepPass:
    return SweepPass(
        chain=name.chain,
        number=row.number,
        requested=row.requested,
        state="running" if row.finished_at is None else row.result,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cursor=row.cursor,
        end=row.end_size,
        finding=None
        if row.finding_id is None
        else FindingRef(id=row.finding_id, kind=row.kind, first_bad_index=row.first_bad_index),
    )


def attestation(row: Any) -> Attestation:
    return Attestation(
        id=row.id,
        size=row.size,
        root_hash=bytes(row.root_hash).hex(),
        result=row.result,
        issued_at=row.issued_at,
        envelope=row.envelope,
    )


@router.get("", response_model=ChainStatusList, summary="Status of every chain the key may read")
async def list_statuses(state: State, caller: AuditorCaller) -> ChainStatusList:
    if caller.tenant is None:
        return ChainStatusList(chains=[])
    return ChainStatusList(
        chains=[
            await chain_status(state, ChainName(caller.tenant, chain))
            for chain in sorted(caller.chains)
        ]
    )


@router.get("/{chain}", response_model=ChainStatus, summary="Verified size, root, findings")
async def get_status(chain: ChainSlug, state: State, caller: AuditorCaller) -> ChainStatus:
    return await chain_status(state, ChainName(caller.require_chain(chain), chain))


@router.post(
    "/{chain}/verify",
    response_model=Verification,
    summary="Verify the new entries now, then attest; with full=true, re-read every entry "
    "already verified, as a job",
    responses={
        202: {
            "model": SweepPass,
            "description": "full=true: the pass re-reading the chain (the one already running, "
            "if any: one per chain at a time); poll its Location",
            "headers": {
                "Location": {
                    "schema": {"type": "string"},
                    "description": "/v1/chains/{chain}/sweeps/{number}",
                }
            },
        },
        409: {
            "description": "The chain is halted by a finding (full=true), or another "
            "verifier process advanced it first"
        },
    },
)
async def verify_now(
    chain: ChainSlug,
    state: State,
    caller: AuditorCaller,
    full: Annotated[
        bool,
        Query(
            description="Also re-read every entry verified before, from the raw leaf bytes, "
            "against the leaf hashes the verifier remembers: answered 202 with the pass"
        ),
    ] = False,
) -> Any:
    name = ChainName(caller.require_chain(chain, scope="verify"), chain)
    state.on_demand.spend(caller.identity)
    if full:
        started = await state.sweeper.request_pass(name)
        current = await state.sweeper.sweep_pass(name, int(started.number))
        return JSONResponse(
            sweep_pass(name, current).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/chains/{chain}/sweeps/{current.number}"},
        )
    await state.verifier.verify(name)
    issued = await state.verifier.current_attestation(name)
    return Verification(
        status=await chain_status(state, name),
        attestation=None if issued is None else attestation(issued),
    )


@router.get(
    "/{chain}/sweeps/{number}",
    response_model=SweepPass,
    summary="One pass re-reading the chain: running, passed, failed (with its finding) or "
    "abandoned",
)
async def get_sweep_pass(
    chain: ChainSlug,
    number: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
    state: State,
    caller: AuditorCaller,
) -> SweepPass:
    name = ChainName(caller.require_chain(chain), chain)
    return sweep_pass(name, await state.sweeper.sweep_pass(name, number))


@router.get(
    "/{chain}/attestations",
    response_model=AttestationList,
    summary="Attestations, newest first",
)
async def list_attestations(
    chain: ChainSlug,
    state: State,
    caller: AuditorCaller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_BIGINT, description="Only ids below this")
    ] = None,
) -> AttestationList:
    row = await state.verifier.state(ChainName(caller.require_chain(chain), chain))
    async with state.engine.connect() as connection:
        rows = await repository.attestations(
            connection, chain_id=row.id, limit=limit, before=before
        )
    return AttestationList(attestations=[attestation(r) for r in rows])


@router.get(
    "/{chain}/attestations/latest", response_model=Attestation, summary="The latest attestation"
)
async def latest_attestation(chain: ChainSlug, state: State, caller: AuditorCaller) -> Attestation:
    row = await state.verifier.state(ChainName(caller.require_chain(chain), chain))
    async with state.engine.connect() as connection:
        latest = await repository.last_attestation(connection, chain_id=row.id)
    if latest is None:
        raise NotFound(f"no attestation for chain {chain!r} yet")
    return attestation(latest)


@router.get(
    "/{chain}/entries/{index}/coverage",
    response_model=Coverage,
    summary="Whether a checkpoint this verifier cosigned covers the entry, with the proof",
    responses={
        409: {
            "description": "integrity-failure (check `inclusion`): the log's inclusion proof "
            "does not verify against the cosigned root"
        }
    },
)
async def entry_coverage(
    chain: ChainSlug,
    index: Annotated[int, Path(ge=0, le=MAX_BIGINT - 1)],
    state: State,
    caller: AuditorCaller,
) -> Coverage:
    name = ChainName(caller.require_chain(chain), chain)
    return Coverage.model_validate(await state.verifier.coverage(name, index=index))


@router.get(
    "/{chain}/completeness",
    response_model=ChainCompleteness,
    response_model_by_alias=True,
    summary="Completeness of the chain's producers, folded from the entries this verifier "
    "replayed: per source, counts, highest sequence, missing ranges, findings and silence",
)
async def chain_completeness(
    chain: ChainSlug,
    state: State,
    caller: AuditorCaller,
    source: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="Only this source")
    ] = None,
    needing_attention: Annotated[
        bool, Query(description="Only sources with a gap, a finding or a silence")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_SOURCES_LISTED, description="Sources listed")] = (
        MAX_SOURCES_LISTED
    ),
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=1024,
            description="List the sources named after this one (the previous page's next_after)",
        ),
    ] = None,
) -> ChainCompleteness:
    name = ChainName(caller.require_chain(chain), chain)
    row = await state.verifier.state(name)
    async with state.engine.connect() as connection:
        figures = await state.verifier.completeness(
            connection,
            row,
            now=state.verifier.now(),
            source=source,
            needing_attention=needing_attention,
            limit=limit,
            after=after,
        )
        latest = await repository.last_attestation(connection, chain_id=row.id)
    return ChainCompleteness.model_validate(
        {
            **figures,
            "tenant": name.tenant,
            "chain": name.chain,
            "verifier": state.signer.name,
            "verified_size": int(row.verified_size),
            "attestation": None
            if latest is None
            else AttestationRef(
                id=latest.id, size=latest.size, result=latest.result, issued_at=latest.issued_at
            ),
        }
    )


@public.get("/v1/keys", response_model=VerifierKeys, summary="The verifier's public keys")
async def public_keys(state: State) -> VerifierKeys:
    return VerifierKeys(
        **state.signer.public_keys(), log_verifier_key=state.settings.log_verifier_key
    )


@public.get("/livez", tags=["health"], summary="The process is up (the store is not consulted)")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@public.get("/healthz", tags=["health"], summary="The process is up: the same as /livez")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@public.get(
    "/readyz",
    tags=["health"],
    summary="Whether the verifier should be sent traffic",
    description=(
        "503 only while it shuts down, when its store's schema is older than this release "
        "runs on, or when the store has not answered for longer than "
        "AUDIT_TRAIL_VERIFIER_READINESS_OUTAGE_SECONDS."
    ),
)
async def readyz(state: State) -> dict[str, Any]:
    probe = await probe_database(
        state.readiness,
        state.engine,
        version_table="verifier.alembic_version",
        revisions=schema_range(str(migrations_dir()), OLDEST_RUNNABLE_SCHEMA),
    )
    if not probe.verdict.ready:
        raise Unavailable(probe.verdict.reason)
    if probe.fit is None:
        return {"status": "ready", "database": probe.verdict.reason}
    return {"status": "ready", "schema": probe.schema, "schema_fit": probe.fit.value}
