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
import contextlib
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
    StoredRun,
    StoredSelection,
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


async def _read_block(
    engine: AsyncEngine, plan: ExportPlan, block: Sequence[int], before: bytes | None
) -> StoredRun | StoredSelection:
    """The block's entries as stored, with what their checks need from around them."""
    size, chain = plan.checkpoint.size, plan.chain
    async with engine.connect() as connection:
        if plan.override is not None:
            return await read_selection(
                connection, chain=chain, indexes=block, size=size, neighbours=True
            )
        if isinstance(block, range):
            return await read_run(
                connection,
                chain=chain,
                start=block.start,
                stop=block.stop,
                before=before,
                size=size,
            )
        return await read_selection(connection, chain=chain, indexes=block, size=size)


def _check_block(plan: ExportPlan, stored: StoredRun | StoredSelection) -> list[ExportedEntry]:
    """The block's entries, checked (under an override: judged, and kept as stored)."""
    chain, checkpoint = plan.chain, plan.checkpoint
    if isinstance(stored, StoredRun):
        return prove_run(stored, chain=chain, checkpoint=checkpoint)
    if plan.override is not None:
        return judge_as_stored(
            stored,
            chain=chain,
            checkpoint=checkpoint,
            subjects=plan.subjects,
            failures=plan.failures,
        )
    return prove_selection(stored, chain=chain, checkpoint=checkpoint, subjects=plan.subjects)


async def _checked_block(
    engine: AsyncEngine, plan: ExportPlan, stored: StoredRun | StoredSelection
) -> list[ExportedEntry]:
    try:
        return await asyncio.to_thread(_check_block, plan, stored)
    except IntegrityFailure as failure:
        if isinstance(stored, StoredRun) and failure.extensions.get("check") == "inclusion":
            # The run failed as a whole: find the entry at fault.
            async with engine.connect() as connection:
                await name_first_unproven(
                    connection, run=stored, chain=plan.chain, checkpoint=plan.checkpoint
                )
        raise


def _last_leaf(stored: StoredRun | StoredSelection, block: Sequence[int]) -> bytes | None:
    """The leaf the next run links to: the last of this one, if the store had it."""
    if not isinstance(stored, StoredRun) or not stored.entries:
        return None
    last = stored.entries[-1]
    return last.leaf if last.index == block[-1] else None


async def build(engine: AsyncEngine, signer: LogSigner, plan: ExportPlan) -> None:
    writer = BundleWriter(info=plan.info, checkpoint_note=plan.checkpoint.note)
    await _add_entries(engine, plan, writer)
    _add_files(writer, plan, signer)
    await _store(engine, plan, writer, signer)


async def _add_entries(engine: AsyncEngine, plan: ExportPlan, writer: BundleWriter) -> None:
    """Every planned entry, block by block, checked on its way into the writer."""
    blocks = _blocks(plan.indexes)
    done = 0
    reading: asyncio.Task[StoredRun | StoredSelection] | None = None
    if blocks:
        reading = asyncio.create_task(_read_block(engine, plan, blocks[0], None))
    try:
        for number, block in enumerate(blocks):
            assert reading is not None
            stored = await reading
            # The next block is read while this one is checked and written: PostgreSQL works
            # on it meanwhile, and the checks run in a worker thread.
            reading = None
            if number + 1 < len(blocks):
                reading = asyncio.create_task(
                    _read_block(engine, plan, blocks[number + 1], _last_leaf(stored, block))
                )
            entries = await _checked_block(engine, plan, stored)
            await asyncio.to_thread(writer.add_entries, entries)
            done += len(block)
            async with engine.begin() as connection:
                await repository.set_progress(connection, export_id=plan.export_id, done=done)
    finally:
        if reading is not None:  # a check failed: the block read ahead is not needed
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading


def _add_files(writer: BundleWriter, plan: ExportPlan, signer: LogSigner) -> None:
    """Consistency proofs, the attestation, keys, schemas and the override, if any."""
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
    if plan.override is not None:
        writer.set_override(
            reason=plan.override.reason,
            requested_by=plan.override.requested_by,
            failures=plan.failures.listed,
            failures_total=plan.failures.total,
        )


async def _store(
    engine: AsyncEngine, plan: ExportPlan, writer: BundleWriter, signer: LogSigner
) -> None:
    """Finish the zip and store it in the database, in chunks; the job is then ready."""
    with tempfile.TemporaryFile() as out:
        await asyncio.to_thread(writer.finish, out, key=signer.key, verification=plan.verification)
        out.seek(0)
        digest, size = hashlib.sha256(), 0
        async with engine.begin() as connection:
            for seq, chunk in enumerate(iter(lambda: out.read(CHUNK_BYTES), b"")):
                digest.update(chunk)
                size += len(chunk)
                await repository.insert_chunk(
                    connection, export_id=plan.export_id, seq=seq, data=chunk
                )
            await repository.mark_ready(
                connection,
                export_id=plan.export_id,
                size=size,
                sha256=digest.hexdigest(),
                overridden=None if plan.override is None else plan.failures.listed,
            )
