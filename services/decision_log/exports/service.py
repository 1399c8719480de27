"""Exports: resolve what to export against one checkpoint, then build the bundle as a job.

Planning happens while the request waits: the selection is turned into entry indexes, the
checkpoint is chosen (the latest cosigned one that covers them, else the latest, flagged), the
verifier is asked to verify now and for its attestation at that size. Building (`builder`)
stores the finished zip in the database, so any replica can serve the download. Small exports
are built before the answer; large ones run in the background and report progress.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ledger.bundle import BUNDLE_FORMAT
from ledger.leaf import format_received_at
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log import VERSION
from decision_log.auth import require_chain, require_role
from decision_log.chains import service as chains
from decision_log.decisions.access import record_access
from decision_log.exports import repository
from decision_log.exports.builder import ExportPlan, build
from decision_log.exports.schemas import ExportJob, ExportRequest
from decision_log.keys.service import Principal
from decision_log.problems import InvalidInput, NotFound, Problem
from decision_log.signing import LogSigner
from decision_log.state import AppState
from decision_log.verifier_client import VerifierUnavailable
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
        except Exception as error:
            logger.exception("export %s failed", plan.export_id)
            detail = str(error) if isinstance(error, Problem) else type(error).__name__
            await self._fail(plan.export_id, detail)
            if reraise:
                raise

    async def _fail(self, export_id: str, detail: str) -> None:
        async with self.engine.begin() as connection:
            await repository.mark_failed(connection, export_id=export_id, error=detail)

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
            await self._fail(export_id, "interrupted: the service stopped; ask for it again")


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


async def list_exports(state: AppState, principal: Principal) -> list[ExportJob]:
    require_role(principal, "auditor")
    async with state.engine.connect() as connection:
        rows = await repository.exports_of_tenant(connection, tenant_id=principal.tenant_id)
    return [job(row) for row in rows if principal.may_use_chain(row.chain)]


async def _verifier(
    state: AppState, *, tenant: str, chain: str, lines: list[str]
) -> tuple[str | None, dict[str, Any] | None]:
    """Ask the verifier to verify the chain now (so that it cosigns the latest checkpoint);
    return its URL for the chain and its public keys, or None where it cannot help."""
    if not state.verifier.configured:
        lines.append("no verifier is configured for this log: the bundle holds no attestation")
        return None, None
    keys = await state.verifier.keys()
    verified = (
        keys
        if isinstance(keys, VerifierUnavailable)
        else await state.verifier.verify_now(tenant=tenant, chain=chain)
    )
    for answer in (keys, verified):
        if isinstance(answer, VerifierUnavailable):
            lines.append(f"the verifier at {answer.url} did not help: {answer.reason}")
            return None, None
    assert not isinstance(keys, VerifierUnavailable)
    return state.verifier.chain_url(chain), keys


async def _attestation(
    state: AppState, *, tenant: str, chain: str, size: int
) -> dict[str, Any] | None:
    attestations = await state.verifier.attestations(tenant=tenant, chain=chain)
    if isinstance(attestations, VerifierUnavailable):
        return None
    for attestation in attestations:
        if attestation.get("size") == size and attestation.get("result") == "passed":
            envelope: dict[str, Any] = attestation["envelope"]
            return envelope
    return None


async def plan_export(
    state: AppState,
    principal: Principal,
    *,
    chain: str,
    request: ExportRequest,
) -> ExportPlan:
    lines: list[str] = []
    verifier_url, verifier_keys = await _verifier(
        state, tenant=principal.tenant, chain=chain, lines=lines
    )
    async with state.engine.begin() as connection:
        await repository.delete_expired(connection)
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        latest, latest_root, latest_note = chains.latest_checkpoint(row)
        selection: dict[str, Any] = {"kind": request.kind}
        indexes: Sequence[int]
        if request.kind == "range":
            start = request.start or 0
            end = latest if request.end is None else request.end
            if end > latest:
                raise InvalidInput(
                    f"end is beyond the latest checkpoint (size {latest}); later entries are "
                    "not checkpointed yet",
                    pointer="/end",
                )
            if start > end:
                raise InvalidInput("start must not be after end", pointer="/start")
            indexes = range(start, end)
            selection.update(start=start, end=end)
        elif request.kind == "time":
            found = await repository.index_range_received(
                connection,
                chain_id=row.id,
                since=request.since,
                until=request.until,
                below=latest,
            )
            start, end = found or (0, 0)
            indexes = range(start, end)
            selection.update(
                since=None if request.since is None else format_received_at(request.since),
                until=None if request.until is None else format_received_at(request.until),
                start=start,
                end=end,
            )
        else:
            wanted = list(dict.fromkeys(request.decision_ids or []))
            found_ids = await repository.decision_indexes(
                connection, chain_id=row.id, decision_ids=wanted
            )
            for position, decision_id in enumerate(wanted):
                if decision_id not in found_ids:
                    raise NotFound(
                        f"no decision {decision_id!r} in chain {chain!r}",
                        pointer=f"/decision_ids/{position}",
                    )
            indexes = sorted(i for ids in found_ids.values() for i in ids if i < latest)
            selection.update(decision_ids=wanted)
        needed = indexes[-1] + 1 if len(indexes) else 0  # ascending: a range, or sorted
        cosigned = await witness_rows.latest_cosigned_checkpoint(connection, chain_id=row.id)
        if cosigned is not None and needed <= int(cosigned.size):
            size, root, note = int(cosigned.size), bytes(cosigned.root_hash), str(cosigned.note)
        else:
            size, root, note = latest, latest_root, latest_note
        note, cosignatures = await chains.cosigned_note(
            connection, chain_id=row.id, size=size, note=note
        )
        if cosignatures:
            names = ", ".join(line.name for line in cosignatures)
            lines.append(f"checkpoint at size {size} is cosigned by {names}")
        else:
            lines.append(f"checkpoint at size {size} is not cosigned yet")
        consistency = []
        for position, old_size in enumerate(request.consistency_from):
            if old_size in request.consistency_from[:position]:
                continue  # asked twice, proved once
            old = await witness_rows.checkpoint_at(connection, chain_id=row.id, size=old_size)
            if old is None or not 1 <= old_size <= size:
                raise InvalidInput(
                    f"the log signed no checkpoint of size {old_size} at or below {size}",
                    pointer=f"/consistency_from/{position}",
                )
            hashes = await chains.consistency_hashes(
                connection, chain_id=row.id, old_size=old_size, new_size=size
            )
            consistency.append((old_size, hashes, str(old.note)))
        export_id = "exp_" + secrets.token_urlsafe(12)
        await repository.insert_export(
            connection,
            export_id=export_id,
            tenant_id=principal.tenant_id,
            chain_id=row.id,
            requested_by=principal.key_id,
            selection=selection,
            checkpoint_size=size,
            total=len(indexes),
            expires_at=state.clock() + EXPIRY,
        )
    attestation = None
    if verifier_url is not None:
        attestation = await _attestation(state, tenant=principal.tenant, chain=chain, size=size)
        lines.append(
            f"the verifier attests a passing check at size {size}"
            if attestation is not None
            else f"the verifier has no passing attestation at size {size}"
        )
    info = {
        "format": BUNDLE_FORMAT,
        "generator": f"audit-trail {VERSION}",
        "created_at": format_received_at(state.clock()),
        "origin": state.signer.chain_origin(tenant=principal.tenant, chain=chain),
        "tenant": principal.tenant,
        "chain": chain,
        "log": {
            "name": state.signer.origin,
            "verifier_key": state.signer.note_signer.verifier_key,
        },
        "verifier": None
        if verifier_keys is None
        else {
            "name": verifier_keys.get("name"),
            "verifier_key": verifier_keys.get("cosignature_verifier_key"),
        },
        "selection": selection,
        "checkpoint": {"size": size, "root_hash": root.hex(), "cosigned": bool(cosignatures)},
        "consistency_from": [old_size for old_size, _, _ in consistency],
        "attestation": attestation is not None,
    }
    return ExportPlan(
        export_id=export_id,
        chain_id=int(row.id),
        info=info,
        checkpoint_note=note,
        indexes=indexes,
        consistency=consistency,
        attestation=attestation,
        verifier_keys=verifier_keys,
        verification=lines,
    )
