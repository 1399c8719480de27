"""Chains: creation, the read API of a monitor (heads, checkpoints, entries, proofs)."""

from __future__ import annotations

import base64
from binascii import b2a_base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ledger.errors import ProofError
from ledger.leaf import LEAF_FRAME_HEADER, LEAF_FRAME_MISSING, NDJSON_MISSING_PREFIX, LeafPrefix
from ledger.merkle import (
    EMPTY_ROOT,
    NodeId,
    assemble_proof,
    consistency_proof_plan,
    fold_subtrees,
    inclusion_proof_plan,
    leaf_hash,
    perfect_subtrees,
    plan_node_ids,
    verify_consistency,
    verify_inclusion,
)
from ledger.note import Checkpoint
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from decision_log.chains import repository
from decision_log.chains.schemas import (
    ChainInfo,
    ChainProjection,
    CheckpointInfo,
    ConsistencyProof,
    Entry,
    EntryPage,
    InclusionProof,
)
from decision_log.db import driver_connection
from decision_log.decisions.projector import ACCESS_CHAIN
from decision_log.events.appender import ChainRef
from decision_log.evidence import stored_entry_problems
from decision_log.problems import Conflict, IntegrityFailure, InvalidInput, NotFound
from decision_log.signing import LogSigner
from decision_log.slugs import check_slug
from decision_log.witnesses import repository as witness_rows

MAX_PAGE = 1000


async def create_chain(
    connection: AsyncConnection,
    *,
    signer: LogSigner,
    tenant_id: int,
    tenant: str,
    slug: str,
    description: str = "",
) -> int:
    """Create a chain and sign its size-0 checkpoint in the same transaction."""
    check_slug(slug, field="chain")
    chain_id = await repository.insert_chain(
        connection, tenant_id=tenant_id, slug=slug, description=description, root_hash=EMPTY_ROOT
    )
    if chain_id is None:
        raise Conflict(f"chain {slug!r} already exists")
    await sign_checkpoint(
        connection,
        signer=signer,
        chain_id=chain_id,
        tenant=tenant,
        chain=slug,
        size=0,
        root=EMPTY_ROOT,
    )
    return chain_id


async def sign_checkpoint(
    connection: AsyncConnection,
    *,
    signer: LogSigner,
    chain_id: int,
    tenant: str,
    chain: str,
    size: int,
    root: bytes,
) -> None:
    checkpoint = Checkpoint(
        origin=signer.chain_origin(tenant=tenant, chain=chain), size=size, root_hash=root
    )
    await repository.insert_checkpoint(
        connection,
        chain_id=chain_id,
        size=size,
        root_hash=root,
        note=signer.sign_checkpoint(checkpoint),
    )


async def checkpoint_if_grown(
    connection: AsyncConnection, *, signer: LogSigner, chain_id: int
) -> int | None:
    """Sign a checkpoint for the chain's committed head unless one exists for that size already.

    An unchanged tree is never signed again, so witnesses see one checkpoint per size.
    """
    head = await repository.chain_head(connection, chain_id=chain_id)
    if head is None:
        return None
    latest = await repository.latest_checkpoint_size(connection, chain_id=chain_id)
    if latest is not None and head.size <= latest:
        return None
    await sign_checkpoint(
        connection,
        signer=signer,
        chain_id=chain_id,
        tenant=head.tenant,
        chain=head.slug,
        size=int(head.size),
        root=bytes(head.root_hash),
    )
    return int(head.size)


class ChainDirectory:
    """(tenant, chain) -> chain row id, cached: chains are never renamed or deleted."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._refs: dict[tuple[int, str], ChainRef] = {}

    async def resolve(self, *, tenant_id: int, tenant: str, chain: str) -> ChainRef:
        ref = self._refs.get((tenant_id, chain))
        if ref is not None:
            return ref
        async with self._engine.connect() as connection:
            row = await repository.chain_by_slug(connection, tenant_id=tenant_id, slug=chain)
        if row is None:
            raise NotFound(f"no chain {chain!r}")
        ref = ChainRef(
            chain_id=int(row.id),
            tenant=tenant,
            chain=chain,
            leaf_prefix=LeafPrefix.for_chain(tenant=tenant, chain=chain),
        )
        self._refs[(tenant_id, chain)] = ref
        return ref


def chain_info(row: Any, *, signer: LogSigner) -> ChainInfo:
    checkpoint = None
    if row.checkpoint_size is not None:
        checkpoint = CheckpointInfo(
            size=row.checkpoint_size,
            root_hash=bytes(row.checkpoint_root).hex(),
            note=row.checkpoint_note,
            signed_at=row.checkpoint_signed_at,
        )
    projection = None
    if row.slug != ACCESS_CHAIN:
        projection = ChainProjection(
            next_index=row.projected_to,
            behind=max(0, row.size - row.projected_to),
            error=row.projection_error,
            failing_since=row.projection_failing_since,
            last_failed_at=row.projection_last_failed_at,
            attempts=row.projection_attempts,
            retry_at=row.projection_retry_at,
            unprojectable_entries=row.unprojectable_entries,
            last_unprojectable_index=row.last_unprojectable_idx,
        )
    return ChainInfo(
        tenant=row.tenant,
        chain=row.slug,
        origin=signer.chain_origin(tenant=row.tenant, chain=row.slug),
        description=row.description,
        created_at=row.created_at,
        size=row.size,
        root_hash=bytes(row.root_hash).hex(),
        checkpoint=checkpoint,
        projection=projection,
    )


async def get_chain(connection: AsyncConnection, *, tenant_id: int, chain: str) -> Any:
    row = await repository.chain_by_slug(connection, tenant_id=tenant_id, slug=chain)
    if row is None:
        raise NotFound(f"no chain {chain!r}")
    return row


async def list_chains(connection: AsyncConnection, *, tenant_id: int) -> list[Any]:
    return await repository.chains_of_tenant(connection, tenant_id=tenant_id)


async def get_chain_by_names(connection: AsyncConnection, *, tenant: str, chain: str) -> Any:
    row = await repository.chain_by_names(connection, tenant=tenant, chain=chain)
    if row is None:
        raise NotFound(f"no chain {tenant}/{chain}")
    return row


async def all_chains(connection: AsyncConnection) -> list[Any]:
    return await repository.all_chains(connection)


async def checkpoint_note(connection: AsyncConnection, *, row: Any) -> str:
    """The latest checkpoint as a signed note, with every witness cosignature stored for it."""
    size, _, note = latest_checkpoint(row)
    cosigned, _ = await cosigned_note(connection, chain_id=row.id, size=size, note=note)
    return cosigned


async def cosigned_note(
    connection: AsyncConnection, *, chain_id: int, size: int, note: str
) -> tuple[str, list[Any]]:
    """A stored checkpoint's signed note with the witness cosignatures stored for it appended,
    and those cosignatures (witness name, signature line, time)."""
    cosignatures = await witness_rows.cosignature_lines(connection, chain_id=chain_id, size=size)
    return note + "".join(line.signature_line + "\n" for line in cosignatures), cosignatures


def latest_checkpoint(row: Any) -> tuple[int, bytes, str]:
    if row.checkpoint_size is None:
        raise NotFound(f"chain {row.slug!r} has no checkpoint yet")
    return int(row.checkpoint_size), bytes(row.checkpoint_root), str(row.checkpoint_note)


async def read_entries(
    connection: AsyncConnection, *, row: Any, start: int, limit: int
) -> EntryPage:
    """A page of entries as stored, each flagged beside its bytes where it does not check out
    (``evidence.stored_entry_problems``); an index missing from the store is listed as missing,
    never skipped."""
    if start < 0:
        raise InvalidInput("start must be 0 or more", parameter="start")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", parameter="limit")
    stop = min(start + limit, int(row.size))
    if start >= stop:
        return EntryPage(entries=[], next_start=None)
    # One row more before the page: the predecessor the first entry links to.
    rows = await repository.entries_range(
        connection, chain_id=row.id, start=max(start - 1, 0), stop=stop
    )
    return EntryPage(
        entries=list(flagged_entries(rows, row=row, start=start, stop=stop)),
        next_start=stop if stop < int(row.size) else None,
    )


def flagged_entries(rows: list[Any], *, row: Any, start: int, stop: int) -> Iterator[Entry]:
    """Entries [start, stop) from ``rows`` (which may begin with the entry before start)."""
    prefix = LeafPrefix.for_chain(tenant=row.tenant, chain=row.slug)
    by_index = {int(r.idx): r for r in rows}
    for index in range(start, stop):
        stored = by_index.get(index)
        if stored is None:
            yield Entry(index=index, leaf=None, leaf_hash=None, problems=["missing"])
            continue
        before = by_index.get(index - 1)
        problems = stored_entry_problems(
            index=index,
            leaf=bytes(stored.leaf),
            stored_hash=bytes(stored.leaf_hash),
            previous_stored_hash=None if before is None else bytes(before.leaf_hash),
            tenant_json=prefix.tenant_json,
            chain_json=prefix.chain_json,
        )
        yield entry(stored, problems=problems or None)


async def read_entry(connection: AsyncConnection, *, row: Any, index: int) -> Entry:
    if not 0 <= index < int(row.size):
        raise NotFound(f"chain {row.slug!r} has no entry {index} (size {row.size})")
    rows = await repository.entries_range(
        connection, chain_id=row.id, start=max(index - 1, 0), stop=index + 1
    )
    found = next(flagged_entries(rows, row=row, start=index, stop=index + 1))
    if found.leaf is None:
        raise IntegrityFailure(
            f"entry {index} is missing from the store, though the chain has {row.size} entries",
            check="missing",
            index=index,
        )
    return found


async def stream_entries(
    engine: AsyncEngine,
    *,
    chain_id: int,
    start: int,
    end: int,
    page: int = 5000,
    leaf_frames: bool = False,
) -> AsyncIterator[bytes]:
    """Entries [start, end) as NDJSON lines or as leaf frames (`ledger.leaf.LEAF_FRAMES`), read
    in index-ordered pages on one connection.

    An entry missing from the store is never skipped in silence: NDJSON carries an in-band
    record ``{"integrity_failure": {"index", "check": "missing"}}`` where it should be, and leaf
    frames a frame of length ``LEAF_FRAME_MISSING`` with no leaf (``ledger.leaf``). NDJSON lines
    of entries whose leaf does not hash to the stored hash carry ``"problems": ["leaf-hash"]``.
    """
    pack = LEAF_FRAME_HEADER.pack
    async with driver_connection(engine) as connection:
        statement = await connection.prepare(
            "SELECT idx, leaf, leaf_hash FROM entries WHERE chain_id = $1 AND idx >= $2 "
            "AND idx < $3 ORDER BY idx"
        )
        position = start
        while position < end:
            stop = min(position + page, end)
            rows = await statement.fetch(chain_id, position, stop)
            if leaf_frames:
                if len(rows) == stop - position:
                    yield b"".join(pack(idx, len(leaf)) + leaf for idx, leaf, _ in rows)
                else:
                    yield b"".join(_frames_with_holes(rows, position, stop))
            else:
                yield b"".join(_ndjson_lines(rows, position, stop))
            position = stop


def _frames_with_holes(rows: list[Any], start: int, stop: int) -> Iterator[bytes]:
    pack = LEAF_FRAME_HEADER.pack
    expected = start
    for idx, leaf, _ in rows:
        while expected < idx:
            yield pack(expected, LEAF_FRAME_MISSING)
            expected += 1
        yield pack(idx, len(leaf)) + leaf
        expected = idx + 1
    while expected < stop:
        yield pack(expected, LEAF_FRAME_MISSING)
        expected += 1


def _ndjson_lines(rows: list[Any], start: int, stop: int) -> Iterator[bytes]:
    expected = start
    for idx, leaf, stored in rows:
        while expected < idx:
            yield _missing_record(expected)
            expected += 1
        flag = b',"problems":["leaf-hash"]' if leaf_hash(leaf) != stored else b""
        yield b'{"index":%d,"leaf":"%s","leaf_hash":"%s"%s}\n' % (
            idx,
            b2a_base64(leaf, newline=False),
            stored.hex().encode(),
            flag,
        )
        expected = idx + 1
    while expected < stop:
        yield _missing_record(expected)
        expected += 1


def _missing_record(index: int) -> bytes:
    return NDJSON_MISSING_PREFIX + b'{"index":%d,"check":"missing"}}\n' % index


def entry(row: Any, *, problems: list[str] | None = None) -> Entry:
    return Entry(
        index=row.idx,
        leaf=base64.b64encode(bytes(row.leaf)).decode(),
        leaf_hash=bytes(row.leaf_hash).hex(),
        problems=problems,
    )


async def inclusion_proof(
    connection: AsyncConnection, *, row: Any, index: int, tree_size: int | None
) -> InclusionProof:
    """The proof as the stored Merkle data gives it, with what does not check out beside it:
    ``leaf-hash`` if the entry's bytes do not hash to its stored hash, ``inclusion`` if the
    proof does not lead to the root of the tree it is for."""
    checkpoint_size, checkpoint_root, _ = latest_checkpoint(row)
    size = checkpoint_size if tree_size is None else tree_size
    if not 1 <= size <= checkpoint_size:
        raise InvalidInput(
            f"tree_size must be between 1 and the latest checkpoint's size ({checkpoint_size})",
            parameter="tree_size",
        )
    if not 0 <= index < size:
        raise InvalidInput(f"index must be between 0 and {size - 1}", parameter="index")
    plan = inclusion_proof_plan(index, size)
    wanted = plan_node_ids(plan) | {(0, index)}
    nodes = await stored_nodes(connection, chain_id=row.id, node_ids=wanted)
    root = checkpoint_root if size == checkpoint_size else await _root_at(connection, row, size)
    hashes = assemble_proof(plan, nodes)
    problems = []
    stored = await repository.entries_range(
        connection, chain_id=row.id, start=index, stop=index + 1
    )
    if stored and leaf_hash(bytes(stored[0].leaf)) != nodes[(0, index)]:
        problems.append("leaf-hash")
    try:
        verify_inclusion(
            leaf_hash=nodes[(0, index)], index=index, size=size, proof=hashes, root=root
        )
    except ProofError:
        problems.append("inclusion")
    return InclusionProof(
        index=index,
        tree_size=size,
        leaf_hash=nodes[(0, index)].hex(),
        root_hash=root.hex(),
        hashes=[h.hex() for h in hashes],
        problems=problems or None,
    )


async def consistency_proof(
    connection: AsyncConnection, *, row: Any, old_size: int, new_size: int | None
) -> ConsistencyProof:
    """The proof as the stored Merkle data gives it; ``consistency`` beside it if it does not
    prove the newer root extends the older."""
    checkpoint_size, checkpoint_root, _ = latest_checkpoint(row)
    size = checkpoint_size if new_size is None else new_size
    if not 1 <= size <= checkpoint_size:
        raise InvalidInput(
            f"to must be between 1 and the latest checkpoint's size ({checkpoint_size})",
            parameter="to",
        )
    if not 1 <= old_size <= size:
        raise InvalidInput(
            f"from must be between 1 and to ({size}); every tree extends the empty one, "
            "so no proof is needed from 0",
            parameter="from",
        )
    hashes = await consistency_hashes(connection, chain_id=row.id, old_size=old_size, new_size=size)
    new_root = checkpoint_root if size == checkpoint_size else await _root_at(connection, row, size)
    old_root = await _root_at(connection, row, old_size)
    try:
        verify_consistency(
            old_size=old_size, new_size=size, proof=hashes, old_root=old_root, new_root=new_root
        )
        problems = None
    except ProofError:
        problems = ["consistency"]
    return ConsistencyProof(
        from_size=old_size,
        to_size=size,
        from_root=old_root.hex(),
        to_root=new_root.hex(),
        hashes=[h.hex() for h in hashes],
        problems=problems,
    )


async def consistency_hashes(
    connection: AsyncConnection, *, chain_id: int, old_size: int, new_size: int
) -> list[bytes]:
    """The RFC 6962 consistency proof from old_size to new_size, from stored subtrees."""
    plan = consistency_proof_plan(old_size, new_size)
    nodes = await stored_nodes(connection, chain_id=chain_id, node_ids=plan_node_ids(plan))
    return assemble_proof(plan, nodes)


async def stored_nodes(
    connection: AsyncConnection, *, chain_id: int, node_ids: set[NodeId]
) -> dict[NodeId, bytes]:
    """The stored subtree hashes asked for; one that is not stored is an integrity failure
    (an entry or a Merkle node removed from under a checkpoint that covers it), not a 500."""
    nodes = await repository.merkle_nodes(connection, chain_id=chain_id, node_ids=node_ids)
    absent = sorted(node_ids - nodes.keys())
    if absent:
        level, index = absent[0]
        first = index << level  # the first entry under the missing subtree
        raise IntegrityFailure(
            f"the store lacks the Merkle subtree of level {level} at {index} (entries from "
            f"{first}), which a checkpoint covers",
            check="missing",
            index=first,
        )
    return nodes


async def _root_at(connection: AsyncConnection, row: Any, size: int) -> bytes:
    """The root of the first ``size`` entries, from O(log n) stored perfect subtrees."""
    subtrees = perfect_subtrees(0, size)
    nodes = await stored_nodes(connection, chain_id=row.id, node_ids=set(subtrees))
    return fold_subtrees([nodes[node] for node in subtrees])
