"""SQL of projection verification: scratch tables shadowing the read model, and their
comparison with the live read model, row by row and column by column, in PostgreSQL.

The scratch tables are temporary tables named like the live ones: PostgreSQL looks in the
session's temporary schema first for every unqualified name
(https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-SEARCH-PATH), so the
projector's own SQL writes into them unchanged, while the live tables stay reachable under
their schema's name. They are dropped with the transaction that made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from decision_log.decisions.projection import DECISION_COLUMNS
from decision_log.decisions.repository import READ_MODEL_TABLES

# One lock for every verifier of the read model, whichever process it runs in: a second run
# while one is under way would only repeat it.
_VERIFICATION_LOCK = 0x70726F6A_65637401  # "project" + 1
# The primary keys the projector's upserts need (ON CONFLICT), as in migration 0003.
_SCRATCH_KEYS = {
    "decisions": "chain_id, decision_id",
    "decision_events": "chain_id, decision_id, idx",
    "model_deployments": "chain_id, model_name, model_version, idx",
    "projection_positions": "chain_id",
    "genai_spans": "chain_id, trace_id, span_id",
}
# Rows of each kind of difference returned at most (every difference is counted).
MAX_ROWS = 1000


async def take_lock(connection: asyncpg.Connection, *, wait: bool) -> bool:
    """The verification lock, for this transaction; False if another run holds it and
    ``wait`` is false."""
    if wait:
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _VERIFICATION_LOCK)
        return True
    taken: bool = await connection.fetchval(
        "SELECT pg_try_advisory_xact_lock($1)", _VERIFICATION_LOCK
    )
    return taken


async def live_schema(connection: asyncpg.Connection) -> str:
    """The schema of the live read model, as a quoted identifier (before any scratch table
    hides it from unqualified names)."""
    schema: str = await connection.fetchval(
        "SELECT quote_ident(n.nspname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'decisions'::regclass"
    )
    return schema


async def create_scratch_tables(connection: asyncpg.Connection, *, live: str) -> None:
    """Empty temporary copies of the read-model tables, dropped at the end of the transaction;
    only their primary keys, which the projector's writes need, and no other index."""
    for table in READ_MODEL_TABLES:
        await connection.execute(
            f"CREATE TEMPORARY TABLE {table} (LIKE {live}.{table} INCLUDING DEFAULTS "
            f"INCLUDING CONSTRAINTS, PRIMARY KEY ({_SCRATCH_KEYS[table]})) ON COMMIT DROP"
        )


@dataclass(frozen=True, slots=True)
class ProjectedChain:
    chain_id: int
    tenant_id: int
    tenant: str
    chain: str
    position: int  # the live read model covers the entries below this index


async def projected_chains(
    connection: asyncpg.Connection,
    *,
    live: str,
    skip_slug: str,
    tenants: Sequence[str] | None,
    chain_ids: Sequence[int] | None,
) -> list[ProjectedChain]:
    """Every chain the projector follows (or only those of ``tenants``, or of ``chain_ids``),
    with how far the live read model covers it."""
    rows = await connection.fetch(
        "SELECT c.id, c.tenant_id, t.slug AS tenant, c.slug AS chain, "
        "coalesce(p.next_idx, 0) AS position FROM chains c JOIN tenants t ON t.id = c.tenant_id "
        f"LEFT JOIN {live}.projection_positions p ON p.chain_id = c.id WHERE c.slug <> $1 "
        "AND ($2::text[] IS NULL OR t.slug = ANY($2::text[])) "
        "AND ($3::bigint[] IS NULL OR c.id = ANY($3::bigint[])) ORDER BY c.id",
        skip_slug,
        None if tenants is None else list(tenants),
        None if chain_ids is None else list(chain_ids),
    )
    return [
        ProjectedChain(
            int(row["id"]), int(row["tenant_id"]), row["tenant"], row["chain"], int(row["position"])
        )
        for row in rows
    ]


async def insert_scratch_positions(
    connection: asyncpg.Connection, *, chain_ids: Sequence[int]
) -> None:
    await connection.execute(
        "INSERT INTO projection_positions (chain_id) SELECT unnest($1::bigint[])", list(chain_ids)
    )


async def scratch_position(connection: asyncpg.Connection, *, chain_id: int) -> int:
    """How far the scratch read model covers the chain."""
    position = await connection.fetchval(
        "SELECT next_idx FROM pg_temp.projection_positions WHERE chain_id = $1", chain_id
    )
    return int(position)


def _chain_filter(alias: str) -> str:
    return f"{alias}.chain_id = ANY($1::bigint[])"


async def differing_decisions(
    connection: asyncpg.Connection, *, live: str, chain_ids: Sequence[int]
) -> tuple[list[asyncpg.Record], int]:
    """Decision rows of the scratch (``s_``) and live (``l_``) read models that differ, one
    side absent or any column distinct; and how many there are in all."""
    columns = ", ".join(f"s.{c} AS s_{c}, l.{c} AS l_{c}" for c in DECISION_COLUMNS)
    scratch_row = ", ".join(f"s.{c}" for c in DECISION_COLUMNS)
    live_row = ", ".join(f"l.{c}" for c in DECISION_COLUMNS)
    return await _differences(
        connection,
        f"SELECT coalesce(s.chain_id, l.chain_id) AS chain_id, "
        f"coalesce(s.decision_id, l.decision_id) AS decision_id, {columns}, "
        "count(*) OVER () AS total "
        f"FROM pg_temp.decisions s FULL JOIN (SELECT * FROM {live}.decisions l "
        f"WHERE {_chain_filter('l')}) l "
        "ON l.chain_id = s.chain_id AND l.decision_id = s.decision_id "
        f"WHERE ({scratch_row}) IS DISTINCT FROM ({live_row}) "
        "ORDER BY 1, 2 LIMIT $2",
        chain_ids,
    )


async def differing_timelines(
    connection: asyncpg.Connection, *, live: str, chain_ids: Sequence[int]
) -> tuple[list[asyncpg.Record], int]:
    """Timeline rows (decision, entry, event type) that only one side has, or that differ."""
    return await _differences(
        connection,
        "SELECT coalesce(s.chain_id, l.chain_id) AS chain_id, "
        "coalesce(s.decision_id, l.decision_id) AS decision_id, coalesce(s.idx, l.idx) AS idx, "
        "s.event_type AS s_event_type, l.event_type AS l_event_type, "
        "count(*) OVER () AS total "
        f"FROM pg_temp.decision_events s FULL JOIN (SELECT * FROM {live}.decision_events l "
        f"WHERE {_chain_filter('l')}) l "
        "ON l.chain_id = s.chain_id AND l.decision_id = s.decision_id AND l.idx = s.idx "
        "WHERE s.event_type IS DISTINCT FROM l.event_type ORDER BY 1, 2, 3 LIMIT $2",
        chain_ids,
    )


async def differing_deployments(
    connection: asyncpg.Connection, *, live: str, chain_ids: Sequence[int]
) -> tuple[list[asyncpg.Record], int]:
    """Model deployment rows that only one side has (``in_scratch`` says which)."""
    return await _differences(
        connection,
        "SELECT coalesce(s.chain_id, l.chain_id) AS chain_id, "
        "coalesce(s.model_name, l.model_name) AS model_name, "
        "coalesce(s.model_version, l.model_version) AS model_version, "
        "coalesce(s.idx, l.idx) AS idx, s.chain_id IS NOT NULL AS in_scratch, "
        "count(*) OVER () AS total "
        f"FROM pg_temp.model_deployments s FULL JOIN (SELECT * FROM {live}.model_deployments l "
        f"WHERE {_chain_filter('l')}) l "
        "ON (l.chain_id, l.model_name, l.model_version, l.idx) "
        "= (s.chain_id, s.model_name, s.model_version, s.idx) "
        "WHERE s.chain_id IS NULL OR l.chain_id IS NULL ORDER BY 1, 5, 4 LIMIT $2",
        chain_ids,
    )


async def differing_spans(
    connection: asyncpg.Connection, *, live: str, chain_ids: Sequence[int]
) -> tuple[list[asyncpg.Record], int]:
    """GenAI span rows that only one side has, or whose columns differ (the decision a span
    belongs to among them)."""
    return await _differences(
        connection,
        "SELECT coalesce(s.chain_id, l.chain_id) AS chain_id, "
        "coalesce(s.decision_id, l.decision_id) AS decision_id, "
        "coalesce(s.trace_id, l.trace_id) || '-' || coalesce(s.span_id, l.span_id) AS span, "
        "s.chain_id IS NOT NULL AS in_scratch, l.chain_id IS NOT NULL AS in_live, "
        "count(*) OVER () AS total "
        f"FROM pg_temp.genai_spans s FULL JOIN (SELECT * FROM {live}.genai_spans l "
        f"WHERE {_chain_filter('l')}) l "
        "ON (l.chain_id, l.trace_id, l.span_id) = (s.chain_id, s.trace_id, s.span_id) "
        "WHERE s IS DISTINCT FROM l ORDER BY 1, 3 LIMIT $2",
        chain_ids,
    )


async def differing_positions(
    connection: asyncpg.Connection, *, live: str, chain_ids: Sequence[int]
) -> tuple[list[asyncpg.Record], int]:
    """Chains whose count of unprojectable entries, or last one, differ."""
    return await _differences(
        connection,
        "SELECT s.chain_id, s.unprojectable_entries AS s_unprojectable_entries, "
        "coalesce(l.unprojectable_entries, 0) AS l_unprojectable_entries, "
        "s.last_unprojectable_idx AS s_last_unprojectable_idx, "
        "l.last_unprojectable_idx AS l_last_unprojectable_idx, count(*) OVER () AS total "
        f"FROM pg_temp.projection_positions s LEFT JOIN {live}.projection_positions l "
        "ON l.chain_id = s.chain_id "
        f"WHERE {_chain_filter('s')} AND (s.unprojectable_entries, s.last_unprojectable_idx) "
        "IS DISTINCT FROM (coalesce(l.unprojectable_entries, 0), l.last_unprojectable_idx) "
        "ORDER BY 1 LIMIT $2",
        chain_ids,
    )


async def _differences(
    connection: asyncpg.Connection, statement: str, chain_ids: Sequence[int]
) -> tuple[list[asyncpg.Record], int]:
    rows = await connection.fetch(statement, list(chain_ids), MAX_ROWS)
    return rows, int(rows[0]["total"]) if rows else 0


async def insert_check(
    connection: asyncpg.Connection,
    *,
    started_at: Any,
    finished_at: Any,
    chains: int,
    entries: int,
    mismatch_count: int,
    mismatches: str,
    keep_days: int,
) -> None:
    """Record a run (its mismatches as JSON text), and forget runs older than ``keep_days``."""
    await connection.execute(
        "INSERT INTO projection_checks (started_at, finished_at, chains, entries, "
        "mismatch_count, mismatches) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        started_at,
        finished_at,
        chains,
        entries,
        mismatch_count,
        mismatches,
    )
    await connection.execute(
        "DELETE FROM projection_checks WHERE started_at < now() - make_interval(days => $1)",
        keep_days,
    )


async def last_check_started(connection: asyncpg.Connection) -> Any | None:
    return await connection.fetchval("SELECT max(started_at) FROM projection_checks")
