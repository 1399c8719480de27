"""Exports: resolve what to export against one checkpoint, then build the bundle as a job.

Planning happens while the request waits. The verifier is asked first (``verifier_verdict``):
an export is refused while it has an unacknowledged finding on the chain, or when there is no
verifier to ask or it does not answer. The selection is turned into entry indexes
(``selection``); the checkpoint is the latest one whose cosignature verifies now under a
registered witness's key and covers them (``evidence.latest_verified_checkpoint``), else the
latest, flagged not cosigned; consistency proofs the recipient asked for are checked; the
verifier's passing attestation at that checkpoint is embedded. Building (``builder``) checks
every entry on its way out and stores the finished zip in the database, so any replica can
serve the download. Small exports are built before the answer; large ones run in the
background, and a background export that fails ends ``failed`` with its problem.

An administrator may override every refusal, with a reason: the override is recorded on the
access log, the bundle is built from what is stored, and what failed is printed at its top.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from http_edge.problems import IntegrityFailure
from ledger.bundle import BUNDLE_FORMAT
from ledger.errors import ProofError
from ledger.leaf import format_received_at
from ledger.merkle import verify_consistency
from ledger.note import NoteVerifier
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from decision_log import VERSION, admin_actions, evidence, metrics
from decision_log.auth import require_chain, require_role
from decision_log.chains import service as chains
from decision_log.decisions.access import record_access
from decision_log.decisions.admin_records import flush_after_change
from decision_log.exports import repository
from decision_log.exports.builder import ExportOverride, ExportPlan, build
from decision_log.exports.completeness import completeness_line, producer_completeness
from decision_log.exports.proving import ExportedChain, OverriddenFailures
from decision_log.exports.schemas import ExportJob, ExportRequest
from decision_log.exports.selection import select_entries
from decision_log.exports.verifier_verdict import VerifierVerdict, ask_verifier
from decision_log.keys.service import Principal
from decision_log.problems import Conflict, InvalidInput, NotFound, Problem
from decision_log.signing import LogSigner
from decision_log.state import AppState
from decision_log.witnesses import repository as witness_rows

logger = logging.getLogger(__name__)

INLINE_ENTRIES = 10_000
EXPIRY = timedelta(days=7)


class ExportRunner:
    """Builds export bundles, in the background when they are large."""

    def __init__(self, *, engine: AsyncEngine, signer: LogSigner) -> None:
        self.engine = engine
        self.signer = signer
        self._tasks: dict[asyncio.Task[None], str] = {}

    async def run(self, plan: ExportPlan, *, reraise: bool = False) -> None:
        """Build the bundle; a failure is written on the job (and raised again if asked)."""
        try:
            await build(self.engine, self.signer, plan)
        except Problem as problem:
            logger.warning("export %s refused: %s", plan.export_id, problem.detail)
            await self._fail(plan.export_id, problem.detail, problem.body())
            if reraise:
                raise
        except Exception as error:
            logger.exception("export %s failed", plan.export_id)
            await self._fail(plan.export_id, type(error).__name__, None)
            if reraise:
                raise
        else:
            metrics.EXPORTS.labels("ready").inc()

    async def _fail(self, export_id: str, detail: str, problem: dict[str, Any] | None) -> None:
        metrics.EXPORTS.labels("failed").inc()
        async with self.engine.begin() as connection:
            await repository.mark_failed(
                connection, export_id=export_id, error=detail, problem=problem
            )

    def start(self, plan: ExportPlan) -> None:
        task = asyncio.create_task(self.run(plan))
        self._tasks[task] = plan.export_id
        task.add_done_callback(self._tasks.pop)

    async def close(self) -> None:
        """Stop building; an unfinished export says so instead of staying 'running'."""
        unfinished = dict(self._tasks)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for export_id in unfinished.values():
            await self._fail(export_id, "interrupted: the service stopped; ask for it again", None)


def job(row: Any) -> ExportJob:
    return ExportJob(
        id=row.id,
        chain=row.chain,
        status=row.status,
        selection=row.selection,
        checkpoint_size=row.checkpoint_size,
        total=row.total,
        done=row.done,
        bytes=row.bytes,
        sha256=row.sha256,
        error=row.error,
        problem=row.problem,
        override_reason=row.override_reason,
        overridden=row.overridden,
        created_at=row.created_at,
        finished_at=row.finished_at,
        expires_at=row.expires_at,
        download=f"/v1/exports/{row.id}/bundle" if row.status == "ready" else None,
    )


async def create_export(
    state: AppState,
    principal: Principal,
    *,
    chain: str,
    request: ExportRequest,
) -> ExportJob:
    require_role(principal, "auditor")
    if request.override_reason is not None:
        require_role(principal, "admin")  # besides auditor: overriding is an admin's decision
    require_chain(principal, chain)
    await record_access(
        state,
        principal,
        action="export",
        chain=chain,
        query=request.model_dump(mode="json", exclude_none=True),
    )
    plan = await plan_export(state, principal, chain=chain, request=request)
    if len(plan.indexes) <= INLINE_ENTRIES:
        await state.exports.run(plan, reraise=True)
    else:
        state.exports.start(plan)
    return await get_export(state, principal, export_id=plan.export_id)


async def get_export(state: AppState, principal: Principal, *, export_id: str) -> ExportJob:
    require_role(principal, "auditor")
    async with state.engine.connect() as connection:
        row = await repository.export_of_tenant(
            connection, tenant_id=principal.tenant_id, export_id=export_id
        )
    if row is None or not principal.may_use_chain(row.chain):
        raise NotFound(f"no export {export_id!r}")
    return job(row)


async def open_bundle(
    state: AppState, principal: Principal, *, export_id: str
) -> tuple[ExportJob, AsyncIterator[bytes]]:
    """A ready export and its bundle's bytes, chunk by chunk; the download is recorded first."""
    export = await get_export(state, principal, export_id=export_id)
    if export.status != "ready":
        raise Conflict(f"export {export_id!r} is {export.status}, not ready")
    await record_access(
        state, principal, action="export.download", chain=export.chain, query={"export": export_id}
    )
    async with state.engine.connect() as connection:
        count = await repository.chunk_count(connection, export_id=export_id)

    async def chunks() -> AsyncIterator[bytes]:
        for seq in range(count):
            async with state.engine.connect() as connection:
                yield await repository.chunk(connection, export_id=export_id, seq=seq)

    return export, chunks()


async def list_exports(state: AppState, principal: Principal) -> list[ExportJob]:
    require_role(principal, "auditor")
    async with state.engine.connect() as connection:
        rows = await repository.exports_of_tenant(connection, tenant_id=principal.tenant_id)
    return [job(row) for row in rows if principal.may_use_chain(row.chain)]


async def plan_export(
    state: AppState,
    principal: Principal,
    *,
    chain: str,
    request: ExportRequest,
) -> ExportPlan:
    override = (
        None
        if request.override_reason is None
        else ExportOverride(reason=request.override_reason, requested_by=principal.key_id)
    )
    failures = OverriddenFailures()

    def refuse(problem: Problem) -> None:
        """Stop the export, or under an override write the failure down and go on."""
        if override is None:
            raise problem
        failures.add(problem)

    verdict = await ask_verifier(state.verifier, tenant=principal.tenant, chain=chain)
    if verdict.refusal is not None:
        refuse(verdict.refusal)
    origin = state.signer.chain_origin(tenant=principal.tenant, chain=chain)
    log_verifier = state.signer.note_signer.verifier
    async with state.engine.begin() as connection:
        await repository.delete_expired(connection)
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        latest = await evidence.latest_checkpoint(
            connection, chain_row=row, origin=origin, log_verifier=log_verifier
        )
        if latest is None:
            raise NotFound(f"chain {chain!r} has no checkpoint yet")
        selection = await select_entries(
            connection, chain_id=row.id, chain=chain, request=request, latest=latest.size
        )
        for mismatch in selection.mismatches:
            refuse(mismatch)
        needed = selection.indexes[-1] + 1 if len(selection.indexes) else 0
        checkpoint = (
            await evidence.latest_verified_checkpoint(
                connection,
                chain_id=row.id,
                origin=origin,
                log_verifier=log_verifier,
                covering=needed,
            )
            or latest
        )
        consistency = await _consistency_proofs(
            connection,
            chain_id=row.id,
            sizes=request.consistency_from,
            checkpoint=checkpoint,
            origin=origin,
            log_verifier=log_verifier,
            refuse=refuse,
        )
        export_id = "exp_" + secrets.token_urlsafe(12)
        await repository.insert_export(
            connection,
            export_id=export_id,
            tenant_id=principal.tenant_id,
            chain_id=row.id,
            requested_by=principal.key_id,
            selection=selection.described,
            checkpoint_size=checkpoint.size,
            total=len(selection.indexes),
            expires_at=state.clock() + EXPIRY,
            override_reason=None if override is None else override.reason,
        )
        if override is not None:
            await admin_actions.note(
                connection,
                tenant_id=principal.tenant_id,
                actor=admin_actions.api_actor(principal),
                action="export.override",
                target={"chain": chain, "export": export_id},
                reason=override.reason,
                at=state.clock(),
            )
    if override is not None:
        await flush_after_change(state, tenant_id=principal.tenant_id)
    attestation, predicate = verdict.attestation_for(checkpoint, origin=origin)
    lines = _verification_lines(verdict, checkpoint, attested=attestation is not None)
    producers = producer_completeness(
        predicate, verifier=None if verdict.keys is None else verdict.keys.get("name")
    )
    lines.append(completeness_line(producers))
    if attestation is None and override is not None:
        attestation = verdict.latest_attestation()
        if attestation is not None:
            lines.append(
                "the verifier's latest attestation is included as it is: it does not vouch for "
                "this checkpoint"
            )
    lines.append(
        "each entry was checked on its way into the bundle: its leaf hash, index and link, "
        "and its inclusion proof against the checkpoint"
        + ("" if override is None else "; under the override, what failed is listed at the top")
    )
    keys = verdict.keys
    info = _bundle_info(
        state,
        principal,
        chain=chain,
        origin=origin,
        selection=selection.described,
        checkpoint=checkpoint,
        consistency_from=[old_size for old_size, _, _ in consistency],
        verifier_keys=keys,
        attested=attestation is not None,
        acknowledged_findings=verdict.acknowledged_findings(
            size=checkpoint.size, predicate=predicate
        ),
    )
    info["producers"] = producers
    return ExportPlan(
        export_id=export_id,
        chain=ExportedChain(chain_id=int(row.id), tenant=principal.tenant, chain=chain),
        info=info,
        checkpoint=checkpoint,
        indexes=selection.indexes,
        subjects=selection.subjects,
        consistency=consistency,
        attestation=attestation,
        verifier_keys=keys,
        verification=lines,
        override=override,
        failures=failures,
    )


def _bundle_info(
    state: AppState,
    principal: Principal,
    *,
    chain: str,
    origin: str,
    selection: dict[str, Any],
    checkpoint: evidence.CheckedCheckpoint,
    consistency_from: list[int],
    verifier_keys: dict[str, Any] | None,
    attested: bool,
    acknowledged_findings: list[dict[str, Any]],
) -> dict[str, Any]:
    """What bundle.json says of the export (the writer adds the entries' counts and any
    override)."""
    return {
        "format": BUNDLE_FORMAT,
        "generator": f"audit-trail {VERSION}",
        "created_at": format_received_at(state.clock()),
        "origin": origin,
        "tenant": principal.tenant,
        "chain": chain,
        "log": {"name": state.signer.origin, "verifier_key": state.signer.note_signer.verifier_key},
        "verifier": None
        if verifier_keys is None
        else {
            "name": verifier_keys.get("name"),
            "verifier_key": verifier_keys.get("cosignature_verifier_key"),
        },
        "selection": selection,
        "checkpoint": {
            "size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "cosigned": checkpoint.cosigned,
        },
        "consistency_from": consistency_from,
        "attestation": attested,
        "acknowledged_findings": acknowledged_findings,
    }


def _verification_lines(
    verdict: VerifierVerdict, checkpoint: evidence.CheckedCheckpoint, *, attested: bool
) -> list[str]:
    """What report.html says was verified at export time."""
    size = checkpoint.size
    if checkpoint.cosigned:
        names = ", ".join(c.witness for c in checkpoint.cosignatures)
        lines = [f"checkpoint at size {size}: cosigned by {names} (verified at export time)"]
    else:
        lines = [
            f"checkpoint at size {size}: not cosigned (no registered witness's cosignature "
            "verifies over a checkpoint that covers the selection)"
        ]
    if verdict.refusal is not None:
        lines.append(f"overridden: {verdict.refusal.detail}")
    lines.append(
        f"the verifier attests a passing check at size {size}"
        if attested
        else f"the verifier has no passing attestation at size {size}"
    )
    return lines


async def _consistency_proofs(
    connection: AsyncConnection,
    *,
    chain_id: int,
    sizes: Sequence[int],
    checkpoint: evidence.CheckedCheckpoint,
    origin: str,
    log_verifier: NoteVerifier,
    refuse: Callable[[Problem], None],
) -> list[tuple[int, list[bytes], str]]:
    """Proofs that the checkpoint extends each earlier one asked for, each checked against the
    earlier checkpoint as the log signed it."""
    proofs = []
    for position, old_size in enumerate(sizes):
        if old_size in sizes[:position]:
            continue  # asked twice, proved once
        old = await witness_rows.checkpoint_at(connection, chain_id=chain_id, size=old_size)
        if old is None or not 1 <= old_size <= checkpoint.size:
            raise InvalidInput(
                f"the log signed no checkpoint of size {old_size} at or below {checkpoint.size}",
                pointer=f"/consistency_from/{position}",
            )
        try:
            signed = evidence.check_log_signature(
                str(old.note), log_verifier=log_verifier, origin=origin, size=old_size
            )
            hashes = await chains.consistency_hashes(
                connection, chain_id=chain_id, old_size=old_size, new_size=checkpoint.size
            )
        except IntegrityFailure as failure:
            refuse(failure)
            continue
        except ProofError as error:  # a stored node it needs is not there
            refuse(_inconsistent(old_size, checkpoint, error))
            continue
        try:
            verify_consistency(
                old_size=old_size,
                new_size=checkpoint.size,
                proof=hashes,
                old_root=signed.root_hash,
                new_root=checkpoint.root_hash,
            )
        except ProofError as error:
            refuse(_inconsistent(old_size, checkpoint, error))
        proofs.append((old_size, hashes, str(old.note)))
    return proofs


def _inconsistent(
    old_size: int, checkpoint: evidence.CheckedCheckpoint, error: ProofError
) -> IntegrityFailure:
    return IntegrityFailure(
        f"the stored tree does not prove that the checkpoint of size {checkpoint.size} extends "
        f"the one of size {old_size}: {error}",
        check="consistency",
        expected=checkpoint.root_hash.hex(),
    )
