"""PostgreSQL's share of a batched append, with no Python per event in the loop.

    python -m bench.floor [--events 200000] [--group 1000] [--database-url postgresql://...]

Writes prebuilt groups of entries (a leaf the size of the ingest bench's, its hash, the Merkle
nodes each group completes and the new head) with the append path's own statement
(``decision_log.events.appender.WRITE_GROUP``), one durable transaction per group, one writer,
as the group commit does. It prints the rate and PostgreSQL's CPU time per entry: the part of
an append that no change to the service's Python can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from bench.ingest import create_database, prepare
from bench.machine import describe, machine_line
from bench.postgres import postgres_server

LEAF_BYTES = 760  # a ~620-byte event in canonical form plus the leaf's own fields


def postgres_cpu_seconds() -> float:
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if (process.info["name"] or "").startswith("postgres"):
            times = process.info["cpu_times"]
            total += times.user + times.system
    return total


def build_groups(events: int, group: int) -> list[tuple[list[object], ...]]:
    from ledger.merkle import MerkleFrontier

    frontier = MerkleFrontier.from_bytes(0, b"")
    groups = []
    for start in range(0, events, group):
        indexes = list(range(start, min(events, start + group)))
        hashes = [secrets.token_bytes(32) for _ in indexes]
        nodes = [node for hashed in hashes for node in frontier.append(hashed)]
        groups.append(
            (
                indexes,
                ["urn:bench:credit-model"] * len(indexes),
                [secrets.token_hex(16) for _ in indexes],
                ["dev.audit-trail.decision.recorded.v1"] * len(indexes),
                [f"decision-{index}" for index in indexes],
                [secrets.token_bytes(32) for _ in indexes],
                [secrets.token_bytes(LEAF_BYTES) for _ in indexes],
                hashes,
                [None] * len(indexes),
                [level for (level, _), _ in nodes],
                [index for (_, index), _ in nodes],
                [node for _, node in nodes],
                [frontier.to_bytes()],
            )
        )
    return groups


async def write(
    database_url: str, groups: list[tuple[list[object], ...]]
) -> tuple[float, int, float]:
    """(seconds, entries written, PostgreSQL CPU seconds), measured while the connection's
    backend process still exists."""
    from decision_log.events.appender import WRITE_GROUP

    connection = await asyncpg.connect(database_url)
    try:
        chain_id = await connection.fetchval("SELECT id FROM chains WHERE slug <> 'access-log'")
        written = 0
        postgres_before = postgres_cpu_seconds()
        began = time.perf_counter()
        for group in groups:
            *columns, frontier = group
            size = written + len(columns[0])
            async with connection.transaction():
                await connection.fetchrow(
                    "SELECT size FROM chains WHERE id = $1 FOR NO KEY UPDATE", chain_id
                )
                await connection.execute(
                    WRITE_GROUP,
                    chain_id,
                    datetime.now(UTC),
                    *columns,
                    size,
                    columns[7][-1],
                    frontier[0],
                    columns[7][-1],
                )
            written = size
        seconds = time.perf_counter() - began
        return seconds, written, postgres_cpu_seconds() - postgres_before
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--group", type=int, default=1000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    groups = build_groups(args.events, args.group)
    with postgres_server(args.database_url) as server_url:
        url = asyncio.run(create_database(server_url, f"bench_{secrets.token_hex(4)}"))
        prepare(url, Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem")
        seconds, written, postgres = asyncio.run(write(url, groups))
    print(machine_line(describe(getattr(create_database, "version", "?"))))
    print(
        f"{written:,} entries in groups of {args.group} with WRITE_GROUP: "
        f"{written / seconds:,.0f} entries/s; PostgreSQL CPU {postgres * 1e6 / written:,.1f} µs "
        f"per entry (at most {(os.cpu_count() or 1) * written / postgres:,.0f} entries/s on "
        f"{os.cpu_count()} cores if PostgreSQL did nothing else)"
    )


if __name__ == "__main__":
    main()
