"""SQL for export jobs, their stored bundles, and the entry lookups a selection needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_JOB_COLUMNS = (
    "x.id, c.slug AS chain, x.status, x.selection, x.checkpoint_size, x.total, x.done, x.bytes, "
    "x.sha256, x.error, x.problem, x.override_reason, x.overridden, x.created_at, "
    "x.finished_at, x.expires_at"
)


async def insert_export(
    connection: AsyncConnection,
    *,
    export_id: str,
    tenant_id: int,
    chain_id: int,
    requested_by: str,
    selection: dict[str, Any],
    checkpoint_size: int,
    total: int,
    expires_at: datetime,
    override_reason: str | None,
) -> None:
    await connection.execute(
        text(
            "INSERT INTO exports (id, tenant_id, chain_id, requested_by, selection, status, "
            "checkpoint_size, total, expires_at, override_reason) VALUES (:id, :tenant_id, "
            ":chain_id, :requested_by, CAST(:selection AS jsonb), 'running', :checkpoint_size, "
            ":total, :expires_at, :override_reason)"
        ),
        {
            "id": export_id,
            "tenant_id": tenant_id,
            "chain_id": chain_id,
            "requested_by": requested_by,
            "selection": orjson.dumps(selection).decode(),
            "checkpoint_size": checkpoint_size,
            "total": total,
            "expires_at": expires_at,
            "override_reason": override_reason,
        },
    )


async def set_progress(connection: AsyncConnection, *, export_id: str, done: int) -> None:
    await connection.execute(
        text("UPDATE exports SET done = :done WHERE id = :id"), {"id": export_id, "done": done}
    )


async def insert_chunk(
    connection: AsyncConnection, *, export_id: str, seq: int, data: bytes
) -> None:
    await connection.execute(
        text("INSERT INTO export_chunks (export_id, seq, data) VALUES (:id, :seq, :data)"),
        {"id": export_id, "seq": seq, "data": data},
    )


async def mark_ready(
    connection: AsyncConnection,
    *,
    export_id: str,
    size: int,
    sha256: str,
    overridden: list[dict[str, Any]] | None,
) -> None:
    await connection.execute(
        text(
            "UPDATE exports SET status = 'ready', done = total, bytes = :bytes, sha256 = :sha256, "
            "overridden = CAST(:overridden AS jsonb), finished_at = now() WHERE id = :id"
        ),
        {
            "id": export_id,
            "bytes": size,
            "sha256": sha256,
            "overridden": None if overridden is None else orjson.dumps(overridden).decode(),
        },
    )


async def mark_failed(
    connection: AsyncConnection, *, export_id: str, error: str, problem: dict[str, Any] | None
) -> None:
    await connection.execute(
        text(
            "UPDATE exports SET status = 'failed', error = :error, "
            "problem = CAST(:problem AS jsonb), finished_at = now() "
            "WHERE id = :id AND status = 'running'"
        ),
        {
            "id": export_id,
            "error": error,
            "problem": None if problem is None else orjson.dumps(problem).decode(),
        },
    )


async def delete_expired(connection: AsyncConnection) -> None:
    await connection.execute(text("DELETE FROM exports WHERE expires_at < now()"))


async def export_of_tenant(
    connection: AsyncConnection, *, tenant_id: int, export_id: str
) -> Any | None:
    result = await connection.execute(
        text(
            f"SELECT {_JOB_COLUMNS} FROM exports x JOIN chains c ON c.id = x.chain_id "
            "WHERE x.id = :id AND x.tenant_id = :tenant_id AND x.expires_at >= now()"
        ),
        {"id": export_id, "tenant_id": tenant_id},
    )
    return result.first()


async def exports_of_tenant(connection: AsyncConnection, *, tenant_id: int) -> list[Any]:
    result = await connection.execute(
        text(
            f"SELECT {_JOB_COLUMNS} FROM exports x JOIN chains c ON c.id = x.chain_id "
            "WHERE x.tenant_id = :tenant_id AND x.expires_at >= now() "
            "ORDER BY x.created_at DESC LIMIT 100"
        ),
        {"tenant_id": tenant_id},
    )
    return list(result)


async def chunk_count(connection: AsyncConnection, *, export_id: str) -> int:
    result = await connection.execute(
        text("SELECT count(*) FROM export_chunks WHERE export_id = :id"), {"id": export_id}
    )
    return int(result.scalar_one())


async def chunk(connection: AsyncConnection, *, export_id: str, seq: int) -> bytes:
    result = await connection.execute(
        text("SELECT data FROM export_chunks WHERE export_id = :id AND seq = :seq"),
        {"id": export_id, "seq": seq},
    )
    return bytes(result.scalar_one())


async def index_range_received(
    connection: AsyncConnection,
    *,
    chain_id: int,
    since: datetime | None,
    until: datetime | None,
    below: int,
) -> tuple[int, int] | None:
    """[first, last + 1) of the entries received in [since, until), among the first `below`."""
    result = await connection.execute(
        text(
            "SELECT min(idx) AS first, max(idx) AS last FROM entries WHERE chain_id = :chain_id "
            "AND idx < :below AND (CAST(:since AS timestamptz) IS NULL OR received_at >= :since) "
            "AND (CAST(:until AS timestamptz) IS NULL OR received_at < :until)"
        ),
        {"chain_id": chain_id, "since": since, "until": until, "below": below},
    )
    row = result.one()
    return None if row.first is None else (int(row.first), int(row.last) + 1)


@dataclass(frozen=True, slots=True)
class DecisionTimeline:
    """What the read model says of one decision: its timeline's entry indexes, in order, and
    the entries its row says it was recorded at and last changed by."""

    indexes: list[int]
    decision_idx: int | None
    last_idx: int | None


async def decision_timelines(
    connection: AsyncConnection, *, chain_id: int, decision_ids: Sequence[str]
) -> dict[str, DecisionTimeline]:
    """The read model's timelines and rows of the decisions it knows among ``decision_ids``
    (a decision with a row and no timeline, or the other way round, is listed too)."""
    result = await connection.execute(
        text(
            "SELECT decision_id, t.indexes, d.decision_idx, d.last_idx FROM ("
            "SELECT decision_id, array_agg(idx ORDER BY idx) AS indexes FROM decision_events "
            "WHERE chain_id = :chain_id AND decision_id = ANY(CAST(:ids AS text[])) "
            "GROUP BY decision_id) t FULL JOIN ("
            "SELECT decision_id, decision_idx, last_idx FROM decisions "
            "WHERE chain_id = :chain_id AND decision_id = ANY(CAST(:ids AS text[]))) d "
            "USING (decision_id)"
        ),
        {"chain_id": chain_id, "ids": list(decision_ids)},
    )
    return {
        row.decision_id: DecisionTimeline(
            indexes=[int(i) for i in row.indexes or ()],
            decision_idx=None if row.decision_idx is None else int(row.decision_idx),
            last_idx=None if row.last_idx is None else int(row.last_idx),
        )
        for row in result
    }


async def entries_at(
    connection: AsyncConnection, *, chain_id: int, indexes: Sequence[int]
) -> list[tuple[int, bytes, bytes]]:
    result = await connection.execute(
        text(
            "SELECT idx, leaf, leaf_hash FROM entries WHERE chain_id = :chain_id "
            "AND idx = ANY(CAST(:indexes AS bigint[])) ORDER BY idx"
        ),
        {"chain_id": chain_id, "indexes": list(indexes)},
    )
    return [(int(r.idx), bytes(r.leaf), bytes(r.leaf_hash)) for r in result]


async def entries_between(
    connection: AsyncConnection, *, chain_id: int, start: int, stop: int
) -> list[Any]:
    """Entries [start, stop) in index order, as (index, leaf, stored leaf hash) records.

    Read by the driver itself on the pooled connection: an export reads every entry of its
    range, and SQLAlchemy's processing of each row would cost more than all the checks made
    of it.
    """
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    rows: list[Any] = await driver.fetch(
        "SELECT idx, leaf, leaf_hash FROM entries WHERE chain_id = $1 AND idx >= $2 "
        "AND idx < $3 ORDER BY idx",
        chain_id,
        start,
        stop,
    )
    return rows
