"""SQL for chains, their entries, Merkle nodes and checkpoints (the read side of the ledger)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.merkle import NodeId
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_chain(
    connection: AsyncConnection, *, tenant_id: int, slug: str, description: str, root_hash: bytes
) -> int | None:
    result = await connection.execute(
        text(
            """
            INSERT INTO chains (tenant_id, slug, description, root_hash)
            VALUES (:tenant_id, :slug, :description, :root_hash)
            ON CONFLICT (tenant_id, slug) DO NOTHING RETURNING id
            """
        ),
        {"tenant_id": tenant_id, "slug": slug, "description": description, "root_hash": root_hash},
    )
    row = result.first()
    return None if row is None else int(row.id)


_CHAIN_COLUMNS = """
    c.id, c.tenant_id, c.slug, t.slug AS tenant, c.description, c.created_at, c.size, c.root_hash,
    k.size AS checkpoint_size, k.root_hash AS checkpoint_root, k.note AS checkpoint_note,
    k.signed_at AS checkpoint_signed_at,
    coalesce(p.next_idx, 0) AS projected_to, p.error AS projection_error,
    p.first_failed_at AS projection_failing_since, p.last_failed_at AS projection_last_failed_at,
    coalesce(p.attempts, 0) AS projection_attempts, p.retry_at AS projection_retry_at,
    coalesce(p.unprojectable_entries, 0) AS unprojectable_entries, p.last_unprojectable_idx
"""
# The latest checkpoint, and the decision projector's position and status (decisions/).
_CHAIN_JOINS = """
    LEFT JOIN LATERAL (
        SELECT size, root_hash, note, signed_at FROM checkpoints
        WHERE chain_id = c.id ORDER BY size DESC LIMIT 1
    ) k ON true
    LEFT JOIN projection_positions p ON p.chain_id = c.id
"""


async def chain_by_slug(connection: AsyncConnection, *, tenant_id: int, slug: str) -> Any | None:
    result = await connection.execute(
        text(
            f"SELECT {_CHAIN_COLUMNS} FROM chains c JOIN tenants t ON t.id = c.tenant_id "
            f"{_CHAIN_JOINS} WHERE c.tenant_id = :tenant_id AND c.slug = :slug"
        ),
        {"tenant_id": tenant_id, "slug": slug},
    )
    return result.first()


async def chains_of_tenant(connection: AsyncConnection, *, tenant_id: int) -> list[Any]:
    result = await connection.execute(
        text(
            f"SELECT {_CHAIN_COLUMNS} FROM chains c JOIN tenants t ON t.id = c.tenant_id "
            f"{_CHAIN_JOINS} WHERE c.tenant_id = :tenant_id ORDER BY c.slug"
        ),
        {"tenant_id": tenant_id},
    )
    return list(result)


async def all_chains(connection: AsyncConnection) -> list[Any]:
    """Every tenant's chains: what a witness follows."""
    result = await connection.execute(
        text(
            f"SELECT {_CHAIN_COLUMNS} FROM chains c JOIN tenants t ON t.id = c.tenant_id "
            f"{_CHAIN_JOINS} ORDER BY t.slug, c.slug"
        )
    )
    return list(result)


async def chain_by_names(connection: AsyncConnection, *, tenant: str, chain: str) -> Any | None:
    result = await connection.execute(
        text(
            f"SELECT {_CHAIN_COLUMNS} FROM chains c JOIN tenants t ON t.id = c.tenant_id "
            f"{_CHAIN_JOINS} WHERE t.slug = :tenant AND c.slug = :slug"
        ),
        {"tenant": tenant, "slug": chain},
    )
    return result.first()


async def chain_head(connection: AsyncConnection, *, chain_id: int) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT c.size, c.root_hash, c.slug, t.slug AS tenant FROM chains c "
            "JOIN tenants t ON t.id = c.tenant_id WHERE c.id = :chain_id"
        ),
        {"chain_id": chain_id},
    )
    return result.first()


async def latest_checkpoint_size(connection: AsyncConnection, *, chain_id: int) -> int | None:
    result = await connection.execute(
        text("SELECT max(size) AS size FROM checkpoints WHERE chain_id = :chain_id"),
        {"chain_id": chain_id},
    )
    size = result.scalar()
    return None if size is None else int(size)


async def insert_checkpoint(
    connection: AsyncConnection, *, chain_id: int, size: int, root_hash: bytes, note: str
) -> None:
    # A checkpoint for a size is signed once; another process racing to sign the same size
    # produces the same bytes (Ed25519 is deterministic, RFC 8032 section 5.1.6) and is dropped.
    await connection.execute(
        text(
            "INSERT INTO checkpoints (chain_id, size, root_hash, note) "
            "VALUES (:chain_id, :size, :root_hash, :note) ON CONFLICT DO NOTHING"
        ),
        {"chain_id": chain_id, "size": size, "root_hash": root_hash, "note": note},
    )


async def chains_behind_checkpoint(connection: AsyncConnection) -> list[int]:
    result = await connection.execute(
        text(
            """
            SELECT c.id FROM chains c
            WHERE c.size > coalesce(
                (SELECT max(size) FROM checkpoints k WHERE k.chain_id = c.id), -1)
            """
        )
    )
    return [int(row.id) for row in result]


async def checkpoint_lag_seconds(connection: AsyncConnection) -> float:
    """How long the chain that has waited longest for a checkpoint of its committed entries has
    waited, since its latest checkpoint was signed (0 when every chain is checkpointed)."""
    result = await connection.execute(
        text(
            """
            SELECT coalesce(max(extract(epoch FROM now() - k.signed_at)), 0) AS lag
              FROM chains c
              JOIN LATERAL (
                  SELECT size, signed_at FROM checkpoints WHERE chain_id = c.id
                   ORDER BY size DESC LIMIT 1
              ) k ON true
             WHERE c.size > k.size
            """
        )
    )
    return float(result.scalar_one())


async def cosignature_lag_seconds(connection: AsyncConnection) -> float:
    """Since when, at most, a chain has had checkpoints no witness cosigned: for every chain,
    the age of its first checkpoint above its newest cosigned one (0 if all are cosigned)."""
    result = await connection.execute(
        text(
            """
            SELECT coalesce(max(extract(epoch FROM now() - k.signed_at)), 0) AS lag
              FROM chains c
              JOIN LATERAL (
                  SELECT signed_at FROM checkpoints k
                   WHERE k.chain_id = c.id AND k.size > 0
                     AND k.size > coalesce(
                         (SELECT max(size) FROM cosignatures s WHERE s.chain_id = c.id), 0)
                   ORDER BY k.size LIMIT 1
              ) k ON true
            """
        )
    )
    return float(result.scalar_one())


async def entries_range(
    connection: AsyncConnection, *, chain_id: int, start: int, stop: int
) -> list[Any]:
    result = await connection.execute(
        text(
            "SELECT idx, leaf, leaf_hash FROM entries WHERE chain_id = :chain_id "
            "AND idx >= :start AND idx < :stop ORDER BY idx"
        ),
        {"chain_id": chain_id, "start": start, "stop": stop},
    )
    return list(result)


async def leaves_at(
    connection: AsyncConnection, *, chain_id: int, indexes: list[int]
) -> dict[int, bytes]:
    """The leaf bytes of the entries at ``indexes`` that are stored."""
    if not indexes:
        return {}
    result = await connection.execute(
        text(
            "SELECT idx, leaf FROM entries WHERE chain_id = :chain_id "
            "AND idx = ANY(CAST(:indexes AS bigint[]))"
        ),
        {"chain_id": chain_id, "indexes": indexes},
    )
    return {int(row.idx): bytes(row.leaf) for row in result}


async def merkle_nodes(
    connection: AsyncConnection, *, chain_id: int, node_ids: Iterable[NodeId]
) -> dict[NodeId, bytes]:
    """Perfect-subtree hashes by (level, index): level 0 from entries, others from merkle_nodes."""
    leaves = [index for level, index in node_ids if level == 0]
    inner = [(level, index) for level, index in node_ids if level > 0]
    result = await connection.execute(
        text(
            """
            SELECT 0 AS level, idx, leaf_hash AS hash FROM entries
             WHERE chain_id = :chain_id AND idx = ANY(CAST(:leaves AS bigint[]))
            UNION ALL
            SELECT k.level, k.idx, m.hash
              FROM unnest(CAST(:levels AS smallint[]), CAST(:indexes AS bigint[])) AS k(level, idx)
              CROSS JOIN LATERAL (
                  SELECT hash FROM merkle_nodes
                   WHERE chain_id = :chain_id AND level = k.level AND idx = k.idx
              ) m
            """
        ),
        {
            "chain_id": chain_id,
            "leaves": leaves,
            "levels": [level for level, _ in inner],
            "indexes": [index for _, index in inner],
        },
    )
    return {(int(row.level), int(row.idx)): bytes(row.hash) for row in result}
