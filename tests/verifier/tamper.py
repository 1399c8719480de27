"""What an insider with superuser access to the log's PostgreSQL can do, with the append-only
triggers switched off for the session (``session_replication_role = replica``)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from decision_log.signing import LogSigner
from ledger.canonical import canonicalize
from ledger.leaf import Leaf, build_leaf
from ledger.merkle import MerkleFrontier, leaf_hash
from ledger.note import Checkpoint


@asynccontextmanager
async def superuser(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        # Triggers (the append-only guards among them) do not fire for a replica session;
        # only a superuser may set this.
        await connection.execute("SET session_replication_role = replica")
        async with connection.transaction():
            yield connection
    finally:
        await connection.close()


async def chain_id(connection: asyncpg.Connection, tenant: str, chain: str) -> int:
    value = await connection.fetchval(
        "SELECT c.id FROM chains c JOIN tenants t ON t.id = c.tenant_id "
        "WHERE t.slug = $1 AND c.slug = $2",
        tenant,
        chain,
    )
    assert value is not None
    return int(value)


async def leaf_at(connection: asyncpg.Connection, chain: int, index: int) -> bytes:
    return bytes(
        await connection.fetchval(
            "SELECT leaf FROM entries WHERE chain_id = $1 AND idx = $2", chain, index
        )
    )


async def change_one_byte(connection: asyncpg.Connection, chain: int, index: int) -> None:
    """Flip one byte of the event's data, leaving the stored leaf hash and tree alone."""
    leaf = await leaf_at(connection, chain, index)
    changed = leaf.replace(b'"declined"', b'"declinee"', 1)
    assert len(changed) == len(leaf) and changed != leaf
    await connection.execute(
        "UPDATE entries SET leaf = $3 WHERE chain_id = $1 AND idx = $2", chain, index, changed
    )


async def delete_entry(connection: asyncpg.Connection, chain: int, index: int) -> None:
    await connection.execute("DELETE FROM entries WHERE chain_id = $1 AND idx = $2", chain, index)


async def swap_entries(connection: asyncpg.Connection, chain: int, first: int, second: int) -> None:
    await connection.execute(
        """
        UPDATE entries e SET leaf = o.leaf, leaf_hash = o.leaf_hash
          FROM entries o
         WHERE e.chain_id = $1 AND o.chain_id = $1
           AND ((e.idx = $2 AND o.idx = $3) OR (e.idx = $3 AND o.idx = $2))
        """,
        chain,
        first,
        second,
    )


async def insert_forged(
    connection: asyncpg.Connection, chain: int, index: int, *, tenant: str, name: str
) -> None:
    """Shift entries from `index` up by one and put a well-formed forged entry in the gap."""
    await connection.execute(
        "UPDATE entries SET idx = idx + 1000000 WHERE chain_id = $1 AND idx >= $2", chain, index
    )
    await connection.execute(
        "UPDATE entries SET idx = idx - 999999 WHERE chain_id = $1 AND idx >= 1000000", chain
    )
    before = Leaf.parse(await leaf_at(connection, chain, index - 1))
    event = {**before.event, "id": "forged", "data": {"decision": "approved"}}
    leaf = build_leaf(
        tenant=tenant,
        chain=name,
        index=index,
        received_at=before.received_at,
        prev=leaf_hash(await leaf_at(connection, chain, index - 1)),
        event_json=canonicalize(event),
    )
    await connection.execute(
        "INSERT INTO entries (chain_id, idx, received_at, source, event_id, event_type, "
        "content_digest, leaf, leaf_hash) SELECT chain_id, $2, received_at, source, 'forged', "
        "event_type, content_digest, $3, $4 FROM entries WHERE chain_id = $1 AND idx = $5",
        chain,
        index,
        leaf,
        leaf_hash(leaf),
        index - 1,
    )


async def _rebuild_tree_and_checkpoints(
    connection: asyncpg.Connection,
    chain: int,
    signer: LogSigner,
    *,
    origin: str,
    checkpoint_sizes: list[int],
) -> None:
    """Recompute every Merkle node and the head from the entries, and re-sign checkpoints of
    the given sizes with the log's real key: what a full insider rewrite looks like."""
    rows = await connection.fetch(
        "SELECT idx, leaf_hash, received_at FROM entries WHERE chain_id = $1 ORDER BY idx", chain
    )
    frontier = MerkleFrontier()
    nodes: list[tuple[int, int, int, bytes]] = []
    roots: dict[int, bytes] = {0: frontier.root()}
    for row in rows:
        for (level, index), value in frontier.append(bytes(row["leaf_hash"])):
            nodes.append((chain, level, index, value))
        roots[frontier.size] = frontier.root()
    await connection.execute("DELETE FROM merkle_nodes WHERE chain_id = $1", chain)
    await connection.copy_records_to_table(
        "merkle_nodes", records=nodes, columns=("chain_id", "level", "idx", "hash")
    )
    await connection.execute(
        "DELETE FROM cosignatures WHERE chain_id = $1 AND size = ANY($2::bigint[])",
        chain,
        checkpoint_sizes,
    )
    await connection.execute(
        "DELETE FROM checkpoints WHERE chain_id = $1 AND (size = ANY($2::bigint[]) OR size > $3)",
        chain,
        checkpoint_sizes,
        frontier.size,
    )
    for size in checkpoint_sizes:
        note = signer.sign_checkpoint(Checkpoint(origin=origin, size=size, root_hash=roots[size]))
        await connection.execute(
            "INSERT INTO checkpoints (chain_id, size, root_hash, note) VALUES ($1, $2, $3, $4)",
            chain,
            size,
            roots[size],
            note,
        )
    await connection.execute(
        "UPDATE chains SET size = $2, last_leaf_hash = $3, frontier = $4, root_hash = $5, "
        "last_received_at = $6 WHERE id = $1",
        chain,
        frontier.size,
        bytes(rows[-1]["leaf_hash"]),
        frontier.to_bytes(),
        frontier.root(),
        rows[-1]["received_at"],
    )


async def rewrite_history(
    connection: asyncpg.Connection,
    chain: int,
    index: int,
    signer: LogSigner,
    *,
    tenant: str,
    name: str,
) -> None:
    """Change entry `index` and recompute every later leaf, link and hash, every Merkle node,
    and re-sign every checkpoint from `index` on with the log's real key."""
    await rewrite_entries(connection, chain, index, tenant=tenant, name=name)
    sizes = await connection.fetch(
        "SELECT size FROM checkpoints WHERE chain_id = $1 AND size > $2", chain, index
    )
    await _rebuild_tree_and_checkpoints(
        connection,
        chain,
        signer,
        origin=signer.chain_origin(tenant=tenant, chain=name),
        checkpoint_sizes=[int(row["size"]) for row in sizes],
    )


async def rewrite_entries(
    connection: asyncpg.Connection, chain: int, index: int, *, tenant: str, name: str
) -> None:
    """Change entry `index` and recompute every later leaf, link and stored leaf hash, as an
    insider without the log's key would: the Merkle nodes and checkpoints are left as they were.
    Every leaf keeps its received_at."""
    rows = await connection.fetch(
        "SELECT idx, leaf FROM entries WHERE chain_id = $1 AND idx >= $2 ORDER BY idx",
        chain,
        index,
    )
    prev = leaf_hash(await leaf_at(connection, chain, index - 1)) if index else bytes(32)
    for row in rows:
        old = Leaf.parse(bytes(row["leaf"]))
        event = old.event
        if row["idx"] == index:
            event = {**event, "data": {**event["data"], "output": {"decision": "approved"}}}
        leaf = build_leaf(
            tenant=tenant,
            chain=name,
            index=row["idx"],
            received_at=old.received_at,
            prev=prev,
            event_json=canonicalize(event),
        )
        prev = leaf_hash(leaf)
        await connection.execute(
            "UPDATE entries SET leaf = $3, leaf_hash = $4, content_digest = $5 "
            "WHERE chain_id = $1 AND idx = $2",
            chain,
            row["idx"],
            leaf,
            prev,
            hashlib.sha256(leaf).digest(),
        )


async def truncate_tail(
    connection: asyncpg.Connection,
    chain: int,
    keep: int,
    signer: LogSigner,
    *,
    tenant: str,
    name: str,
    resign: bool = True,
) -> None:
    """Roll the chain back to `keep` entries, with a checkpoint of that size re-signed (or,
    with `resign=False`, only the checkpoints past `keep` removed, so that the newest left is
    an older one)."""
    await connection.execute("DELETE FROM entries WHERE chain_id = $1 AND idx >= $2", chain, keep)
    await _rebuild_tree_and_checkpoints(
        connection,
        chain,
        signer,
        origin=signer.chain_origin(tenant=tenant, chain=name),
        checkpoint_sizes=[keep] if resign else [],
    )


async def replace_checkpoint_signature(connection: asyncpg.Connection, chain: int) -> int:
    """Corrupt the signature of the chain's latest checkpoint (key name and key ID kept)."""
    size, note = await connection.fetchrow(
        "SELECT size, note FROM checkpoints WHERE chain_id = $1 ORDER BY size DESC LIMIT 1", chain
    )
    text, _, signatures = note.rpartition("\n\n")
    prefix, _, encoded = signatures.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    forged = f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    await connection.execute(
        "UPDATE checkpoints SET note = $3 WHERE chain_id = $1 AND size = $2", chain, size, forged
    )
    return int(size)
