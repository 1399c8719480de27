"""Builds an export's bundle: reads the planned entries in blocks, checks each block on its way
out (``proving``), hands the exact bytes checked to the bundle writer and stores the zip in the
database.

Entries are read block by block on their own connections (plain reads: appends never wait for an
export), and the CPU-bound work (checks, proofs, tlog-proof text, deflate) runs in a worker
thread. A check that fails stops the build with its problem (the job ends ``failed`` carrying
it), unless an administrator overrode the checks: then what failed is written down and printed
at the top of the bundle.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from http_edge.problems import IntegrityFailure
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.decisions.event_types import EVENT_DATA_MODELS, render_schema, schema_file_name
from decision_log.evidence import CheckedCheckpoint
from decision_log.exports import repository
from decision_log.exports.proving import (
    ExportedChain,
    ExportedEntry,
    OverriddenFailures,
    judge_as_stored,
    name_first_unproven,
    prove_run,
    prove_selection,
    read_run,
    read_selection,
)
from decision_log.exports.writer import BundleWriter
from decision_log.signing import LogSigner

BLOCK = 4096
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ExportOverride:
    """An administrator's instruction to export even what does not verify, and why."""

    reason: str
    requested_by: str  # the API key id


@dataclass
class ExportPlan:
    export_id: str
    chain: ExportedChain
    info: dict[str, Any]
    checkpoint: CheckedCheckpoint
    indexes: Sequence[int]
    subjects: dict[int, str] | None = None
    consistency: list[tuple[int, list[bytes], str]] = field(default_factory=list)
    attestation: dict[str, Any] | None = None
    verifier_keys: dict[str, Any] | None = None
    verification: list[str] = field(default_factory=list)
    override: ExportOverride | None = None
    failures: OverriddenFailures = field(default_factory=OverriddenFailures)


def _blocks(indexes: Sequence[int]) -> list[Sequence[int]]:
    """Runs of consecutive indexes cut at multiples of BLOCK (so a range's blocks are aligned)."""
    if isinstance(indexes, range):
        cuts = [indexes.start, *range((indexes.start // BLOCK + 1) * BLOCK, indexes.stop, BLOCK)]
        return [range(a, b) for a, b in zip(cuts, [*cuts[1:], indexes.stop], strict=True) if a < b]
    return [indexes[i : i + BLOCK] for i in range(0, len(indexes), BLOCK)]


async def _checked_block(
    engine: AsyncEngine, plan: ExportPlan, block: Sequence[int], before: bytes | None
) -> list[ExportedEntry]:
    """The block's entries, checked (or, under an override, judged and kept as stored)."""
    size, chain, checkpoint = plan.checkpoint.size, plan.chain, plan.checkpoint
    async with engine.connect() as connection:
        if plan.override is not None:
            stored = await read_selection(
                connection, chain=chain, indexes=block, size=size, neighbours=True
            )
            return await asyncio.to_thread(
                judge_as_stored,
                stored,
                chain=chain,
                checkpoint=checkpoint,
                subjects=plan.subjects,
                failures=plan.failures,
            )
        if isinstance(block, range):
            run = await read_run(
                connection,
                chain=chain,
                start=block.start,
                stop=block.stop,
                before=before,
                size=size,
            )
            try:
                return await asyncio.to_thread(prove_run, run, chain=chain, checkpoint=checkpoint)
            except IntegrityFailure as failure:
                if failure.extensions.get("check") == "inclusion":
                    await name_first_unproven(
                        connection, run=run, chain=chain, checkpoint=checkpoint
                    )
                raise
        selection = await read_selection(connection, chain=chain, indexes=block, size=size)
        return await asyncio.to_thread(
            prove_selection, selection, chain=chain, checkpoint=checkpoint, subjects=plan.subjects
        )


async def build(engine: AsyncEngine, signer: LogSigner, plan: ExportPlan) -> None:
    writer = BundleWriter(info=plan.info, checkpoint_note=plan.checkpoint.note)
    done = 0
    before: bytes | None = None  # the last leaf of the block before: the next one links to it
    for block in _blocks(plan.indexes):
        entries = await _checked_block(engine, plan, block, before)
        await asyncio.to_thread(writer.add_entries, entries)
        before = entries[-1].leaf if entries and plan.override is None else None
        done += len(block)
        async with engine.begin() as connection:
            await repository.set_progress(connection, export_id=plan.export_id, done=done)
    for old_size, hashes, old_note in plan.consistency:
        writer.add_consistency(old_size=old_size, hashes=hashes, old_note=old_note)
    if plan.attestation is not None:
        writer.add_attestation(plan.attestation)
    writer.add_file("keys/log.vkey", (signer.note_signer.verifier_key + "\n").encode())
    writer.add_file("keys/log.pub.pem", signer.key.public_key.to_pem())
    if plan.verifier_keys is not None:
        vkey = plan.verifier_keys.get("cosignature_verifier_key")
        pem = plan.verifier_keys.get("public_key_pem")
        if vkey:
            writer.add_file("keys/verifier.vkey", (vkey + "\n").encode())
        if pem:
            writer.add_file("keys/verifier.pub.pem", pem.encode())
    for event_type in sorted(EVENT_DATA_MODELS):
        writer.add_file(f"schemas/{schema_file_name(event_type)}", render_schema(event_type))
    overridden = None
    if plan.override is not None:
        overridden = plan.failures.listed
        writer.set_override(
            reason=plan.override.reason,
            requested_by=plan.override.requested_by,
            failures=plan.failures.listed,
            failures_total=plan.failures.total,
        )
    with tempfile.TemporaryFile() as out:
        await asyncio.to_thread(writer.finish, out, key=signer.key, verification=plan.verification)
        out.seek(0)
        digest, stored = hashlib.sha256(), 0
        async with engine.begin() as connection:
            for seq, chunk in enumerate(iter(lambda: out.read(CHUNK_BYTES), b"")):
                digest.update(chunk)
                stored += len(chunk)
                await repository.insert_chunk(
                    connection, export_id=plan.export_id, seq=seq, data=chunk
                )
            await repository.mark_ready(
                connection,
                export_id=plan.export_id,
                size=stored,
                sha256=digest.hexdigest(),
                overridden=overridden,
            )
