"""SQL of the decision read model: the projector's reads and writes, search, one decision."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.decisions.genai import SPAN_COLUMNS, SpanNode
from decision_log.decisions.projection import DECISION_COLUMNS, DecisionRow, row_values

READ_MODEL_TABLES = (
    "decisions",
    "decision_events",
    "model_deployments",
    "projection_positions",
    "genai_spans",
)

# ---------------------------------------------------------------- projector (asyncpg, batched)


@dataclass(frozen=True, slots=True)
class ChainBehind:
    chain_id: int
    tenant_id: int
    size: int


async def chains_behind(connection: asyncpg.Connection, *, skip_slug: str) -> list[ChainBehind]:
    """Every chain with committed entries not yet projected, but those whose projection failed
    and whose retry time has not come (a failing chain is retried with backoff, not each pass)."""
    rows = await connection.fetch(
        "SELECT c.id, c.tenant_id, c.size FROM chains c "
        "LEFT JOIN projection_positions p ON p.chain_id = c.id "
        "WHERE c.slug <> $1 AND c.size > coalesce(p.next_idx, 0) "
        "AND (p.retry_at IS NULL OR p.retry_at <= now()) ORDER BY c.id",
        skip_slug,
    )
    return [ChainBehind(int(row["id"]), int(row["tenant_id"]), int(row["size"])) for row in rows]


async def projection_backlog(connection: asyncpg.Connection, *, skip_slug: str) -> tuple[int, int]:
    """(committed entries the read model lacks, chains whose projection is failing)."""
    row = await connection.fetchrow(
        "SELECT coalesce(sum(c.size - coalesce(p.next_idx, 0)), 0) AS behind, "
        "count(*) FILTER (WHERE p.error IS NOT NULL) AS failing "
        "FROM chains c LEFT JOIN projection_positions p ON p.chain_id = c.id WHERE c.slug <> $1",
        skip_slug,
    )
    assert row is not None
    return int(row["behind"]), int(row["failing"])


@dataclass(frozen=True, slots=True)
class Position:
    next_idx: int
    attempts: int  # failed attempts since the chain last made progress; 0 when it is healthy


async def lock_position(
    connection: asyncpg.Connection, *, chain_id: int, lock_timeout_ms: int
) -> Position | None:
    """The chain's projection position, locked for this transaction; None if another projector
    (another worker or replica, or a rebuild) holds it, so each chain has one projector at a time.

    ``FOR UPDATE SKIP LOCKED`` (https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE)
    makes the others move on instead of queueing behind it; the position and the rows it
    covers commit together, so an entry is projected exactly once whoever crashes.

    Projectors never wait for each other's locks, so a lock wait means something else holds
    rows of the read model (an operator's session, say): ``lock_timeout``
    (https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-LOCK-TIMEOUT), for
    this transaction only, turns that wait into this chain's failure instead of a stall of
    every chain behind it.
    """
    await connection.execute("SELECT set_config('lock_timeout', $1, true)", f"{lock_timeout_ms}ms")
    await connection.execute(
        "INSERT INTO projection_positions (chain_id) VALUES ($1) ON CONFLICT DO NOTHING", chain_id
    )
    row = await connection.fetchrow(
        "SELECT next_idx, attempts FROM projection_positions WHERE chain_id = $1 "
        "FOR UPDATE SKIP LOCKED",
        chain_id,
    )
    return None if row is None else Position(int(row["next_idx"]), int(row["attempts"]))


async def entries_from(
    connection: asyncpg.Connection,
    *,
    chain_id: int,
    start: int,
    limit: int,
    read_types: Sequence[str],
) -> list[asyncpg.Record]:
    """Committed entries from ``start`` in index order; the leaf only for types the fold reads.

    Entries are committed in index order, whole groups at a time under the chain's lock (see
    events/appender.py), so the committed entries of a chain are always a gapless prefix: reading
    ``idx >= start`` in order never skips one that commits later.
    """
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT idx, received_at, event_type, subject, "
        "CASE WHEN event_type = ANY($4::text[]) THEN leaf END AS leaf "
        "FROM entries WHERE chain_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
        chain_id,
        start,
        limit,
        list(read_types),
    )
    return rows


async def decisions_by_ids(
    connection: asyncpg.Connection, *, chain_id: int, decision_ids: Iterable[str]
) -> dict[str, DecisionRow]:
    rows = await connection.fetch(
        f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions "
        "WHERE chain_id = $1 AND decision_id = ANY($2::text[])",
        chain_id,
        list(decision_ids),
    )
    # unprojectable, the last column, comes back as a list; the row holds a tuple.
    decisions = {}
    for row in rows:
        values = list(row.values())
        values[-1] = tuple(values[-1])
        decisions[row["decision_id"]] = DecisionRow(*values)
    return decisions


# Array types for unnest, from DecisionRow's annotations ("int | None" -> bigint). A text[]
# column cannot be unnested from a two-dimensional array (its rows would differ in length), so
# unprojectable travels as one comma-separated text per row (column names hold no comma).
_PG_TYPES = {
    "int": "bigint",
    "str": "text",
    "datetime": "timestamptz",
    "float": "float8",
    "bool": "bool",
    "tuple[str, ...]": "text",
}
_COLUMN_TYPES = [_PG_TYPES[str(column.type).split(" | ")[0]] for column in fields(DecisionRow)]
assert len(_COLUMN_TYPES) == len(DECISION_COLUMNS) and DECISION_COLUMNS[-1] == "unprojectable"
_UPSERT_DECISIONS = (
    f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) "
    f"SELECT {', '.join(DECISION_COLUMNS[:-1])}, string_to_array(unprojectable, ',') "
    "FROM unnest("
    + ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_COLUMN_TYPES, start=1))
    + f") AS row_values({', '.join(DECISION_COLUMNS)}) "
    "ON CONFLICT (chain_id, decision_id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in DECISION_COLUMNS[2:])
)


async def upsert_decisions(connection: asyncpg.Connection, rows: Sequence[DecisionRow]) -> None:
    if not rows:
        return
    columns = [list(column) for column in zip(*map(row_values, rows), strict=True)]
    columns[-1] = [",".join(names) for names in columns[-1]]
    await connection.execute(_UPSERT_DECISIONS, *columns)


async def insert_timeline(
    connection: asyncpg.Connection, rows: Sequence[tuple[int, str, int, str]]
) -> None:
    if rows:
        await connection.copy_records_to_table(
            "decision_events",
            records=rows,
            columns=("chain_id", "decision_id", "idx", "event_type"),
        )


async def insert_deployments(
    connection: asyncpg.Connection, rows: Sequence[tuple[int, str, str, int]]
) -> None:
    if rows:
        await connection.copy_records_to_table(
            "model_deployments",
            records=rows,
            columns=("chain_id", "model_name", "model_version", "idx"),
        )


async def genai_spans_of_traces(
    connection: asyncpg.Connection, *, chain_id: int, trace_ids: Iterable[str]
) -> dict[tuple[str, str], SpanNode]:
    """Every GenAI span of these traces the read model holds (decisions/genai.py)."""
    rows = await connection.fetch(
        f"SELECT {', '.join(SPAN_COLUMNS)} FROM genai_spans "
        "WHERE chain_id = $1 AND trace_id = ANY($2::text[])",
        chain_id,
        list(trace_ids),
    )
    nodes = (SpanNode(*row.values()) for row in rows)
    return {node.key: node for node in nodes}


async def upsert_genai_spans(
    connection: asyncpg.Connection, *, chain_id: int, nodes: Sequence[SpanNode]
) -> None:
    if not nodes:
        return
    columns = ("chain_id", "decision_id", *SPAN_COLUMNS)
    values = [
        (chain_id, node.decision_id, *(getattr(node, c) for c in SPAN_COLUMNS)) for node in nodes
    ]
    await connection.executemany(
        f"INSERT INTO genai_spans ({', '.join(columns)}) VALUES "
        f"({', '.join(f'${n}' for n in range(1, len(columns) + 1))}) "
        "ON CONFLICT (chain_id, trace_id, span_id) DO UPDATE SET "
        "decision_span_id = EXCLUDED.decision_span_id, decision_id = EXCLUDED.decision_id",
        values,
    )


async def merge_decisions(
    connection: asyncpg.Connection, *, chain_id: int, merges: Sequence[tuple[str, str]]
) -> None:
    """A provisional GenAI decision joins the decision of the span that arrived above it: its
    timeline moves over and its row goes (the merged row is written after)."""
    for merged, into in merges:
        await connection.execute(
            "UPDATE decision_events SET decision_id = $3 WHERE chain_id = $1 AND decision_id = $2",
            chain_id,
            merged,
            into,
        )
        await connection.execute(
            "DELETE FROM decisions WHERE chain_id = $1 AND decision_id = $2", chain_id, merged
        )


async def set_position(
    connection: asyncpg.Connection, *, chain_id: int, next_idx: int, unprojectable: Sequence[int]
) -> None:
    """Move the chain's position past the entries just projected, counting those left out as
    unprojectable, and clear any failure: the chain makes progress again."""
    await connection.execute(
        "UPDATE projection_positions SET next_idx = $2, "
        "unprojectable_entries = unprojectable_entries + $3, "
        "last_unprojectable_idx = coalesce($4, last_unprojectable_idx), "
        "error = NULL, attempts = 0, first_failed_at = NULL, last_failed_at = NULL, "
        "retry_at = NULL WHERE chain_id = $1",
        chain_id,
        next_idx,
        len(unprojectable),
        max(unprojectable, default=None),
    )


async def record_failure(
    connection: asyncpg.Connection, *, chain_id: int, error: str, retry_seconds: float
) -> None:
    """Note why the chain's projection stopped at its position, and when to try again."""
    await connection.execute(
        "UPDATE projection_positions SET error = $2, attempts = attempts + 1, "
        "first_failed_at = coalesce(first_failed_at, now()), last_failed_at = now(), "
        "retry_at = now() + make_interval(secs => $3) WHERE chain_id = $1",
        chain_id,
        error,
        retry_seconds,
    )


async def truncate_read_model(connection: asyncpg.Connection) -> None:
    await connection.execute(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}")


# ---------------------------------------------------------------- reads (SQLAlchemy Core)


async def projection_status(connection: AsyncConnection, *, chain_id: int) -> Any:
    """How far the read model covers one chain: its size, its position, its failure if any."""
    result = await connection.execute(
        text(
            "SELECT c.size, coalesce(p.next_idx, 0) AS next_idx, p.error, "
            "p.first_failed_at FROM chains c "
            "LEFT JOIN projection_positions p ON p.chain_id = c.id WHERE c.id = :chain_id"
        ),
        {"chain_id": chain_id},
    )
    return result.one()


async def failing_chain_count(connection: AsyncConnection) -> int:
    """How many chains' projection is failing now (served to anyone: a count, no names)."""
    result = await connection.execute(
        text("SELECT count(*) FROM projection_positions WHERE error IS NOT NULL")
    )
    return int(result.scalar_one())


async def tenant_chains(connection: AsyncConnection, *, tenant_id: int) -> dict[int, str]:
    result = await connection.execute(
        text("SELECT id, slug FROM chains WHERE tenant_id = :tenant_id"), {"tenant_id": tenant_id}
    )
    return {int(row.id): str(row.slug) for row in result}


_SUMMARY_COLUMNS = (
    "chain_id, decision_id, decided_at, received_at, decision_idx, system_name, deployment, "
    "model_name, model_version, policy_id, policy_version, decision, score, data_subject_ref, "
    "reviewed, overridden, contested, current_decision, outcome, last_idx, unprojectable, "
    "solely_automated, legal_or_similar_effect, genai_agent, genai_provider, genai_conversation, "
    "source"
)


async def search_decisions(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    chain_ids: Sequence[int] | None,
    equal: dict[str, Any],
    flags: dict[str, bool],
    score_min: float | None,
    score_max: float | None,
    decided_from: datetime | None,
    decided_before: datetime | None,
    after: tuple[datetime, int, str] | None,
    limit: int,
) -> list[Any]:
    """A page of decisions, newest first, keyset-paginated on (decided_at, chain_id, decision_id).

    Every filter is an equality, a range or a flag that one of the indexes of migration 0003
    leads with, and each index ends in the sort key, so a page is an ordered index scan that
    stops after ``limit`` rows (see bench/auditor.py for the plans at a million rows).
    """
    statement, params = search_statement(
        tenant_id=tenant_id,
        chain_ids=chain_ids,
        equal=equal,
        flags=flags,
        score_min=score_min,
        score_max=score_max,
        decided_from=decided_from,
        decided_before=decided_before,
        after=after,
        limit=limit,
    )
    return list(await connection.execute(text(statement), params))


def search_statement(**conditions: Any) -> tuple[str, dict[str, Any]]:
    """The search SQL with its parameters (also what the bench EXPLAINs)."""
    limit = conditions.pop("limit")
    where, params = _search_conditions(**conditions)
    params["limit"] = limit
    return (
        f"SELECT {_SUMMARY_COLUMNS} FROM decisions WHERE {' AND '.join(where)} "
        "ORDER BY decided_at DESC, chain_id DESC, decision_id DESC LIMIT :limit",
        params,
    )


SEARCH_EQUALITY_COLUMNS = (
    "model_name",
    "model_version",
    "policy_version",
    "decision",
    "data_subject_ref",
    "genai_agent",
    "genai_provider",
    "genai_conversation",
    "source",
)
# A GenAI decision that called a tool (genai_spans, by the index genai_spans_by_tool).
TOOL_CONDITION = (
    "(chain_id, decision_id) IN (SELECT chain_id, decision_id FROM genai_spans "
    "WHERE tool_name = :tool_name)"
)
SEARCH_FLAG_COLUMNS = ("reviewed", "overridden", "contested")


def _search_conditions(
    *,
    tenant_id: int,
    chain_ids: Sequence[int] | None,
    equal: dict[str, Any],
    flags: dict[str, bool],
    score_min: float | None,
    score_max: float | None,
    decided_from: datetime | None,
    decided_before: datetime | None,
    after: tuple[datetime, int, str] | None,
) -> tuple[list[str], dict[str, Any]]:
    where = ["tenant_id = :tenant_id"]
    params: dict[str, Any] = {"tenant_id": tenant_id}
    one_chain = chain_ids is not None and len(chain_ids) == 1
    if chain_ids is not None:
        if one_chain:
            where.append("chain_id = :chain_id")
            params["chain_id"] = chain_ids[0]
        else:
            where.append("chain_id = ANY(CAST(:chain_ids AS bigint[]))")
            params["chain_ids"] = list(chain_ids)
    for column, value in equal.items():
        if column == "tool_name":
            where.append(TOOL_CONDITION)
            params[column] = value
            continue
        if column not in SEARCH_EQUALITY_COLUMNS:
            raise ValueError(f"not a search column: {column}")
        where.append(f"{column} = :{column}")
        params[column] = value
    for column, value in flags.items():
        if column not in SEARCH_FLAG_COLUMNS:
            raise ValueError(f"not a flag column: {column}")
        # A literal, not a parameter: the partial indexes (WHERE reviewed ...) match only then.
        where.append(column if value else f"NOT {column}")
    if score_min is not None:
        where.append("score >= :score_min")
        params["score_min"] = score_min
    if score_max is not None:
        where.append("score <= :score_max")
        params["score_max"] = score_max
    if decided_from is not None:
        where.append("decided_at >= :decided_from")
        params["decided_from"] = decided_from
    if decided_before is not None:
        where.append("decided_at < :decided_before")
        params["decided_before"] = decided_before
    if after is not None:
        params.update(after_time=after[0], after_chain=after[1], after_id=after[2])
        if one_chain:
            # Within one chain the keyset is (decided_at, decision_id), the tail of
            # decisions_by_chain, so the row comparison is an index condition there.
            where.append("(decided_at, decision_id) < (:after_time, :after_id)")
        else:
            where.append(
                "(decided_at, chain_id, decision_id) < (:after_time, :after_chain, :after_id)"
            )
    return where, params


async def decision(connection: AsyncConnection, *, chain_id: int, decision_id: str) -> Any | None:
    """The decision's row, every column (``DECISION_COLUMNS``)."""
    result = await connection.execute(
        text(
            f"SELECT {', '.join(DECISION_COLUMNS)} "
            "FROM decisions WHERE chain_id = :chain_id AND decision_id = :decision_id"
        ),
        {"chain_id": chain_id, "decision_id": decision_id},
    )
    return result.first()


async def recorded_entries(
    connection: AsyncConnection, *, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], Any]:
    """The entries at (chain id, index) ``keys``, in one indexed read: the recorded events
    of a page of search results."""
    if not keys:
        return {}
    result = await connection.execute(
        text(
            "SELECT e.chain_id, e.idx, e.event_type, e.received_at, e.leaf, e.leaf_hash "
            "FROM unnest(CAST(:chains AS bigint[]), CAST(:indexes AS bigint[])) "
            "AS k(chain_id, idx) JOIN entries e ON e.chain_id = k.chain_id AND e.idx = k.idx"
        ),
        {"chains": [chain for chain, _ in keys], "indexes": [index for _, index in keys]},
    )
    return {(int(row.chain_id), int(row.idx)): row for row in result}


# A search page checks the timelines of this many events at most per decision: a longer one
# (an agent that made thousands of calls) is left to the decision view, which reads it whole.
MAX_SEARCH_CHECKED_TIMELINE = 200


async def timelines(
    connection: AsyncConnection, *, keys: list[tuple[int, str]]
) -> dict[tuple[int, str], list[Any]]:
    """The timelines of the decisions (chain id, decision id) ``keys``, as `timeline` reads one,
    in one indexed read: the decisions of a page of search results that no recorded event
    stands for (a model server's, a GenAI invocation). A timeline longer than
    `MAX_SEARCH_CHECKED_TIMELINE` is left out."""
    if not keys:
        return {}
    result = await connection.execute(
        text(
            "SELECT k.chain_id, k.decision_id, t.idx, t.received_at, t.leaf, t.leaf_hash "
            "FROM unnest(CAST(:chains AS bigint[]), CAST(:ids AS text[])) "
            "AS k(chain_id, decision_id) CROSS JOIN LATERAL ("
            "SELECT d.idx, e.received_at, e.leaf, e.leaf_hash FROM decision_events d "
            "LEFT JOIN entries e ON e.chain_id = d.chain_id AND e.idx = d.idx "
            "WHERE d.chain_id = k.chain_id AND d.decision_id = k.decision_id "
            "ORDER BY d.idx LIMIT :limit) t ORDER BY k.chain_id, k.decision_id, t.idx"
        ),
        {
            "chains": [chain for chain, _ in keys],
            "ids": [decision for _, decision in keys],
            "limit": MAX_SEARCH_CHECKED_TIMELINE + 1,
        },
    )
    found: dict[tuple[int, str], list[Any]] = {}
    for row in result:
        found.setdefault((int(row.chain_id), row.decision_id), []).append(row)
    return {key: rows for key, rows in found.items() if len(rows) <= MAX_SEARCH_CHECKED_TIMELINE}


async def timeline(connection: AsyncConnection, *, chain_id: int, decision_id: str) -> list[Any]:
    """Every entry the read model lists for the decision, in index order, with its exact leaf
    bytes and hash as stored (null where the store no longer holds the entry)."""
    result = await connection.execute(
        text(
            "SELECT d.idx, d.event_type, e.received_at, e.leaf, e.leaf_hash FROM decision_events d "
            "LEFT JOIN entries e ON e.chain_id = d.chain_id AND e.idx = d.idx "
            "WHERE d.chain_id = :chain_id AND d.decision_id = :decision_id ORDER BY d.idx"
        ),
        {"chain_id": chain_id, "decision_id": decision_id},
    )
    return list(result)


async def deployment_before(
    connection: AsyncConnection, *, chain_id: int, model_name: str, model_version: str, idx: int
) -> Any | None:
    """The latest model.deployed entry of this model version before the decision."""
    result = await connection.execute(
        text(
            "SELECT m.idx, e.leaf, e.leaf_hash FROM model_deployments m "
            "JOIN entries e ON e.chain_id = m.chain_id AND e.idx = m.idx "
            "WHERE m.chain_id = :chain_id AND m.model_name = :name AND m.model_version = :version "
            "AND m.idx < :idx ORDER BY m.idx DESC LIMIT 1"
        ),
        {"chain_id": chain_id, "name": model_name, "version": model_version, "idx": idx},
    )
    return result.first()
