"""Builds an export's bundle: reads the planned entries in blocks, proves each against the
plan's checkpoint, hands them to the bundle writer and stores the zip in the database.

Entries are read block by block on their own connections (plain reads: appends never wait for an
export), and the CPU-bound work (proofs, tlog-proof text, deflate) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.merkle import (
    assemble_proof,
    inclusion_proof_plan,
    leaf_hash,
    plan_node_ids,
    range_inclusion_proofs,
    range_proof_node_ids,
    range_subtrees,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.chains import repository as chain_rows
from decision_log.decisions.event_types import EVENT_DATA_MODELS, render_schema, schema_file_name
from decision_log.exports import repository
from decision_log.exports.writer import BundleWriter
from decision_log.problems import Conflict
from decision_log.signing import LogSigner

BLOCK = 4096
CHUNK_BYTES = 1 << 20


@dataclass
class ExportPlan:
    export_id: str
    chain_id: int
    info: dict[str, Any]
    checkpoint_note: str
    indexes: Sequence[int]
    consistency: list[tuple[int, list[bytes], str]] = field(default_factory=list)
    attestation: dict[str, Any] | None = None
    verifier_keys: dict[str, str] | None = None
    verification: list[str] = field(default_factory=list)


def _blocks(indexes: Sequence[int]) -> list[Sequence[int]]:
    """Runs of consecutive indexes cut at multiples of BLOCK (so a range's blocks are aligned)."""
    if isinstance(indexes, range):
        cuts = [indexes.start, *range((indexes.start // BLOCK + 1) * BLOCK, indexes.stop, BLOCK)]
        return [range(a, b) for a, b in zip(cuts, [*cuts[1:], indexes.stop], strict=True) if a < b]
    return [indexes[i : i + BLOCK] for i in range(0, len(indexes), BLOCK)]


async def _block_proofs(
    engine: AsyncEngine, *, chain_id: int, block: Sequence[int], size: int
) -> list[tuple[int, bytes, Sequence[bytes]]]:
    """The entries of one block with their inclusion proofs against the tree of `size`."""
    async with engine.connect() as connection:
        if isinstance(block, range):
            rows = await chain_rows.entries_range(
                connection, chain_id=chain_id, start=block.start, stop=block.stop
            )
            entries = [(int(r.idx), bytes(r.leaf), bytes(r.leaf_hash)) for r in rows]
        else:
            entries = await repository.entries_at(connection, chain_id=chain_id, indexes=block)
        if [index for index, _, _ in entries] != list(block):
            raise Conflict("the store is missing entries that the checkpoint covers")
        for index, leaf, stored in entries:
            if leaf_hash(leaf) != stored:
                raise Conflict(f"entry {index} no longer hashes to its stored leaf hash")
        if isinstance(block, range):
            known = range_subtrees(block.start, [h for _, _, h in entries])
            wanted = range_proof_node_ids(block.start, block.stop, size) - known.keys()
            known.update(
                await chain_rows.merkle_nodes(connection, chain_id=chain_id, node_ids=wanted)
            )
            proofs = [p for _, p in range_inclusion_proofs(block.start, block.stop, size, known)]
            return [
                (index, leaf, proof)
                for (index, leaf, _), proof in zip(entries, proofs, strict=True)
            ]
        plans = [inclusion_proof_plan(index, size) for index in block]
        nodes = await chain_rows.merkle_nodes(
            connection, chain_id=chain_id, node_ids=plan_node_ids(n for plan in plans for n in plan)
        )
        return [
            (index, leaf, assemble_proof(plan, nodes))
            for (index, leaf, _), plan in zip(entries, plans, strict=True)
        ]


async def build(engine: AsyncEngine, signer: LogSigner, plan: ExportPlan) -> None:
    size = int(plan.info["checkpoint"]["size"])
    writer = BundleWriter(info=plan.info, checkpoint_note=plan.checkpoint_note)
    done = 0
    for block in _blocks(plan.indexes):
        entries = await _block_proofs(engine, chain_id=plan.chain_id, block=block, size=size)
        await asyncio.to_thread(writer.add_entries, entries)
        done += len(entries)
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
                connection, export_id=plan.export_id, size=stored, sha256=digest.hexdigest()
            )
