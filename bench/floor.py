"""PostgreSQL's share of a batched append, with no Python per event in the loop.

    python -m bench.floor [--events 200000] [--group 1000] [--database-url postgresql://...]

Writes prebuilt groups of entries (a leaf the size of the ingest bench's, its hash, the Merkle
nodes each group completes and the new head) the two ways the group commit does
(``decision_log.events.appender``: binary COPY for a large group, the single ``WRITE_GROUP``
statement for a small one), one durable transaction per group, one writer, each on a fresh
database. It prints the rate, and PostgreSQL's and this process's CPU time per entry:
PostgreSQL's is the part of an append that no change to the service's Python can remove.
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
from bench.load import event_template
from bench.machine import describe, machine_line
from bench.postgres import postgres_server


def leaf_bytes() -> int:
    """The size of a leaf holding the ingest bench's event, built by the log's own builder."""
    from ledger.canonical import canonicalize, parse_json
    from ledger.leaf import LeafPrefix, format_received_at

    event = canonicalize(parse_json(event_template()()))
    leaf = LeafPrefix.for_chain(tenant="demo", chain="decisions").build(
        index=1_000_000,
        received_at=format_received_at(datetime.now(UTC)),
        prev=bytes(32),
        event_json=event,
    )
    return len(leaf)


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
    size = leaf_bytes()
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
                [secrets.token_bytes(size) for _ in indexes],
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
    database_url: str, groups: list[tuple[list[object], ...]], *, copy: bool
) -> tuple[float, int, float, float]:
    """(seconds, entries written, PostgreSQL CPU seconds, this process's CPU seconds), measured
    while the connection's backend process still exists."""
    from decision_log.events.appender import ENTRY_COLUMNS, NODE_COLUMNS, UPDATE_HEAD, WRITE_GROUP

    connection = await asyncpg.connect(database_url)
    try:
        chain_id = await connection.fetchval("SELECT id FROM chains WHERE slug <> 'access-log'")
        written = 0
        postgres_before, own_before = postgres_cpu_seconds(), time.process_time()
        began = time.perf_counter()
        for group in groups:
            *columns, frontier = group
            size = written + len(columns[0])
            now = datetime.now(UTC)
            head = (size, columns[7][-1], frontier[0], columns[7][-1])
            async with connection.transaction():
                await connection.fetchrow(
                    "SELECT size FROM chains WHERE id = $1 FOR NO KEY UPDATE", chain_id
                )
                if copy:
                    count = len(columns[0])
                    entries = zip(
                        [chain_id] * count, columns[0], [now] * count, *columns[1:9], strict=True
                    )
                    await connection.copy_records_to_table(
                        "entries", records=entries, columns=ENTRY_COLUMNS
                    )
                    nodes = zip([chain_id] * len(columns[9]), *columns[9:12], strict=True)
                    await connection.copy_records_to_table(
                        "merkle_nodes", records=nodes, columns=NODE_COLUMNS
                    )
                    await connection.execute(UPDATE_HEAD, chain_id, *head, now)
                else:
                    await connection.execute(WRITE_GROUP, chain_id, now, *columns, *head)
            written = size
        seconds = time.perf_counter() - began
        postgres = postgres_cpu_seconds() - postgres_before
        return seconds, written, postgres, time.process_time() - own_before
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
    cores = os.cpu_count() or 1
    lines = []
    with postgres_server(args.database_url) as server_url:
        for label, copy in (("COPY", True), ("WRITE_GROUP", False)):
            url = asyncio.run(create_database(server_url, f"bench_{secrets.token_hex(4)}"))
            prepare(url, Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem")
            seconds, written, postgres, own = asyncio.run(write(url, groups, copy=copy))
            lines.append(
                f"{label:<11} {written:,} entries in groups of {args.group}: "
                f"{written / seconds:,.0f} entries/s; CPU per entry: PostgreSQL "
                f"{postgres * 1e6 / written:,.1f} µs, this process {own * 1e6 / written:,.1f} µs "
                f"(PostgreSQL alone on {cores} cores: at most {cores * written / postgres:,.0f} "
                "entries/s)"
            )
    print(machine_line(describe(getattr(create_database, "version", "?"))))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
