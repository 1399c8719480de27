"""Ingest benchmark: single-event and batched POSTs over real HTTP, beside the peer.

    python -m bench.ingest [--seconds 10] [--runs 3] [--workers 1] [--clients 64]
                           [--mode structured|binary|both]
                           [--projector process|in-process] [--soak SECONDS]
                           [--overload] [--server guarded|stock]
                           [--database-url postgresql://...]

Without ``--database-url`` an embedded PostgreSQL is started in a temporary folder. Each run
uses a fresh database; the decision_log runs alone (uvicorn, ``--workers``, and by default its
projector as a process of its own, as deploy/ runs it), with durable commits. After each load
the bench reports how far the read model trails the log and how soon it catches up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from bench.cpu import CpuMeter, CpuReport
from bench.load import (
    LoadResult,
    binary_event_template,
    event_template,
    generate_load,
    request_bytes,
)
from bench.machine import describe, machine_line
from bench.postgres import postgres_server

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def create_database(server_url: str, name: str) -> str:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    create_database.version = version  # type: ignore[attr-defined]
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def prepare(database_url: str, key_file: Path) -> dict[str, Any]:
    from audit_trail import admin
    from decision_log import migrations
    from decision_log.privacy.keyring import create_files
    from decision_log.signing import LogSigner

    migrations.upgrade(database_url)
    create_files(
        kek_file=key_file.parent / "kek.json", pseudonym_key_file=key_file.parent / "pseudonym.key"
    )
    signer = LogSigner.create(key=admin.ensure_key(key_file), origin="bench.localhost/log")
    return asyncio.run(
        admin.in_transaction(
            database_url, lambda c: admin.create_demo(c, signer=signer, api_url="")
        )
    )


class ProcessGroup(subprocess.Popen[bytes]):
    """A process started as the leader of its own group; terminating it stops the group."""

    def terminate(self) -> None:
        os.killpg(self.pid, signal.SIGTERM)


def start_service(
    database_url: str,
    key_file: Path,
    port: int,
    workers: int,
    *,
    separate_projector: bool = False,
    server_kind: str = "guarded",
) -> subprocess.Popen[bytes]:
    """The decision_log under uvicorn; with `separate_projector`, its read model is kept by an
    `audit-trail projections follow` process of its own, stopped with the service.

    ``server_kind``: ``guarded`` serves it as deployed (``audit-trail serve``: uvicorn with the
    guarded HTTP protocol of ``audit_trail.server``); ``stock`` with plain ``uvicorn`` and its
    httptools protocol, as this bench did before that protocol existed (with ``PYTHONPATH``
    pointing at an older checkout, the same bench measures that code)."""
    env = dict(
        os.environ,
        AUDIT_TRAIL_DATABASE_URL=database_url,
        AUDIT_TRAIL_LOG_KEY_FILE=str(key_file),
        AUDIT_TRAIL_KEK_FILE=str(key_file.parent / "kek.json"),
        AUDIT_TRAIL_PSEUDONYM_KEY_FILE=str(key_file.parent / "pseudonym.key"),
        AUDIT_TRAIL_LOG_ORIGIN="bench.localhost/log",
        AUDIT_TRAIL_RUN_PROJECTOR="false" if separate_projector else "true",
        AUDIT_TRAIL_LOG_LEVEL="warning",
    )
    where = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    server = (
        [sys.executable, "-m", "audit_trail", "serve", *where]
        if server_kind == "guarded"
        else [
            sys.executable,
            "-m",
            "uvicorn",
            "decision_log.app:create_app",
            "--factory",
            *where,
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-proxy-headers",
            "--no-server-header",
        ]
    )
    if separate_projector:
        # One process group: terminating the shell stops both.
        follow = f"{sys.executable} -m audit_trail projections follow >/dev/null"
        command = ["sh", "-c", f"{follow} & exec {' '.join(server)}"]
        process: subprocess.Popen[bytes] = ProcessGroup(command, env=env, start_new_session=True)
    else:
        process = subprocess.Popen(server, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"decision_log exited with status {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("decision_log did not become ready")


def measure_single(
    port: int, credentials: dict[str, Any], clients: int, seconds: float
) -> dict[str, Any]:
    make_event = event_template()
    path = f"/v1/chains/{credentials['chain']}/events"
    key = credentials["keys"]["producer"]

    def make() -> tuple[bytes, int]:
        body = make_event()
        return request_bytes(
            host="127.0.0.1",
            path=path,
            key=key,
            content_type="application/cloudevents+json",
            body=body,
        ), 1

    result = generate_load(
        host="127.0.0.1", port=port, connections=clients, seconds=seconds, make_request=make
    )
    return summarise(result)


def measure_single_binary(
    port: int, credentials: dict[str, Any], clients: int, seconds: float
) -> dict[str, Any]:
    """Single events in binary mode (ce-* headers, the data as the body), the same event as
    ``measure_single`` sends structured."""
    make_event = binary_event_template()
    path = f"/v1/chains/{credentials['chain']}/events"
    key = credentials["keys"]["producer"]

    def make() -> tuple[bytes, int]:
        attributes, body = make_event()
        return request_bytes(
            host="127.0.0.1",
            path=path,
            key=key,
            content_type="application/json",
            body=body,
            extra=attributes,
        ), 1

    result = generate_load(
        host="127.0.0.1", port=port, connections=clients, seconds=seconds, make_request=make
    )
    return summarise(result)


def summarise(result: LoadResult) -> dict[str, Any]:
    return {
        "events": result.events,
        "events_per_s": result.events / result.seconds,
        "p50_ms": result.percentile(0.50) * 1000,
        "p99_ms": result.percentile(0.99) * 1000,
        "statuses": result.statuses,
    }


def measure_batch(
    port: int, credentials: dict[str, Any], clients: int, seconds: float, size: int
) -> dict[str, Any]:
    make_event = event_template()
    path = f"/v1/chains/{credentials['chain']}/events"
    key = credentials["keys"]["producer"]

    def make() -> tuple[bytes, int]:
        body = b"[" + b",".join(make_event() for _ in range(size)) + b"]"
        return request_bytes(
            host="127.0.0.1",
            path=path,
            key=key,
            content_type="application/cloudevents-batch+json",
            body=body,
        ), size

    result = generate_load(
        host="127.0.0.1", port=port, connections=clients, seconds=seconds, make_request=make
    )
    return summarise(result)


class MemoryWatch:
    """Samples the resident memory of the service's worker processes while a run goes on."""

    def __init__(self, pid: int, *, children: bool = True) -> None:
        import threading

        self._pid = pid
        self._children = children
        self.peak_mib = 0.0
        self.samples: list[tuple[float, float]] = []  # (seconds since start, largest worker MiB)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        root = psutil.Process(self._pid)
        while not self._stop.wait(0.5):
            try:
                processes = [root, *(root.children(recursive=True) if self._children else ())]
                peak = max(process.memory_info().rss for process in processes) / 2**20
            except psutil.Error:
                continue
            self.peak_mib = max(self.peak_mib, peak)
            self.samples.append((time.monotonic() - self._started, peak))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def measure_peer(database_url: str, seconds: float, threads: int) -> float:
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.peer_eventsourcing",
            database_url,
            str(seconds),
            str(threads),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return float(output.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--peer-threads", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument(
        "--projector",
        choices=("process", "in-process"),
        default="process",
        help="keep the read model in a process of its own (`audit-trail projections follow`, "
        "as deploy/ runs it) or inside the decision_log worker",
    )
    parser.add_argument(
        "--server",
        choices=("guarded", "stock"),
        default="guarded",
        help="serve as deployed (audit-trail serve, the guarded HTTP protocol) or with plain "
        "uvicorn, as before that protocol",
    )
    parser.add_argument(
        "--mode",
        choices=("structured", "binary", "both"),
        default="structured",
        help="how single events are sent: structured (application/cloudevents+json), binary "
        "(ce-* headers, the data as the body), or both, alternating in each run",
    )
    parser.add_argument(
        "--overload",
        action="store_true",
        help="instead: 500 single-event clients for 20 s against one worker; memory during and "
        "30 s after, how fast refusals come, and whether /healthz stays quick",
    )
    parser.add_argument("--overload-clients", type=int, default=500)
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    parser.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="instead: one long single-event run, printing the worker's memory every minute",
    )
    args = parser.parse_args()
    if args.soak:
        soak(args)
        return
    if args.overload:
        overload(args)
        return
    if args.mode == "both":
        compare_modes(args)
        return
    single_mode = measure_single_binary if args.mode == "binary" else measure_single

    rows: dict[str, list[float]] = {
        "single": [],
        "single_p99": [],
        "batch": [],
        "peer": [],
        "worker_rss_mib": [],
    }
    cpu_reports: dict[str, list[CpuReport]] = {"single": [], "batch": []}
    with postgres_server(args.database_url) as server_url:
        for run in range(args.runs):
            url, credentials, port, service = fresh_service(
                server_url,
                args.workers,
                separate_projector=args.projector == "process",
                server_kind=args.server,
            )
            memory = MemoryWatch(service.pid)
            meter = CpuMeter(service.pid)
            try:
                with meter.measure() as single_cpu:
                    single = single_mode(port, credentials, args.clients, args.seconds)
                single_lag = asyncio.run(read_model_lag(url))
                with meter.measure() as batch_cpu:
                    batch = measure_batch(
                        port, credentials, args.batch_clients, args.seconds, args.batch_size
                    )
                batch_lag = asyncio.run(read_model_lag(url))
            finally:
                peak_mib = memory.stop()
                service.terminate()
                service.wait(timeout=30)
            peer = measure_peer(url, args.seconds, args.peer_threads)
            rows["single"].append(single["events_per_s"])
            rows["single_p99"].append(single["p99_ms"])
            rows["batch"].append(batch["events_per_s"])
            rows["peer"].append(peer)
            rows["worker_rss_mib"].append(peak_mib)
            single_cpu.events = single["events"]
            batch_cpu.events = batch["events"]
            cpu_reports["single"].append(single_cpu)
            cpu_reports["batch"].append(batch_cpu)
            print(
                f"run {run + 1}: single {single['events_per_s']:,.0f} ev/s "
                f"(p50 {single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms, "
                f"{single['statuses']}); batch x{args.batch_size} "
                f"{batch['events_per_s']:,.0f} ev/s ({batch['statuses']}); "
                f"peer {peer:,.0f} ev/s; read model behind at the end of the load: "
                f"{single_lag[0]:,} entries (caught up {single_lag[1]:.1f} s later) after single, "
                f"{batch_lag[0]:,} ({batch_lag[1]:.1f} s) after batch\n"
                f"  single: {single_cpu.line()}\n  batch:  {batch_cpu.line()}",
                flush=True,
            )

    machine = describe(getattr(create_database, "version", "?"))
    print("\n" + machine_line(machine))
    print(
        f"settings: {args.runs} runs x {args.seconds:.0f} s, decision_log workers {args.workers}, "
        f"projector {args.projector}, server {args.server}, single events {args.mode}"
    )
    print("figure (min / median / max)")
    figures = [
        (f"single-event POST, {args.clients} clients", spread(rows["single"]), "events/s"),
        ("single-event POST p99 latency", spread(rows["single_p99"]), "ms"),
        (f"batched POST x{args.batch_size}", spread(rows["batch"]), "events/s"),
        (f"peer: eventsourcing, {args.peer_threads} threads", spread(rows["peer"]), "events/s"),
        ("peak memory, largest service process", spread(rows["worker_rss_mib"]), "MiB"),
    ]
    for label, value, unit in figures:
        print(f"  {label:<40} {value} {unit}")
    ratio = statistics.median(rows["single"]) / statistics.median(rows["peer"])
    print(f"  single-event vs peer (median)       : {ratio:.1f}x")
    cores = os.cpu_count() or 1
    print(f"CPU per event, median of the runs (µs); ceiling = {cores} cores / the sum")
    cpu_rows: dict[str, dict[str, float]] = {}
    for load, reports in cpu_reports.items():
        medians = {
            name: statistics.median(report.per_event_us()[name] for report in reports)
            for name in reports[0].components
        }
        ceiling = statistics.median(report.ceiling(cores) for report in reports)
        cpu_rows[load] = medians | {"ceiling_events_per_s": ceiling}
        parts = ", ".join(f"{name} {value:,.0f}" for name, value in medians.items())
        print(f"  {load:<7} {parts}; ceiling {ceiling:,.0f} events/s")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"ingest-{int(time.time())}.json").write_text(
        json.dumps(
            {"machine": machine, "args": vars(args), "rows": rows, "cpu_us_per_event": cpu_rows},
            indent=2,
        )
    )


def compare_modes(args: argparse.Namespace) -> None:
    """Single events structured and binary, back to back on the same service in every run (the
    order alternating between runs, so neither always goes first): events/s, p99, and CPU per
    event of each process."""
    modes = {"structured": measure_single, "binary": measure_single_binary}
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    p99s: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[CpuReport]] = {mode: [] for mode in modes}
    with postgres_server(args.database_url) as server_url:
        for run in range(args.runs):
            _, credentials, port, service = fresh_service(
                server_url,
                args.workers,
                separate_projector=args.projector == "process",
                server_kind=args.server,
            )
            meter = CpuMeter(service.pid)
            order = list(modes) if run % 2 == 0 else list(reversed(modes))
            try:
                for mode in order:
                    with meter.measure() as report:
                        result = modes[mode](port, credentials, args.clients, args.seconds)
                    report.events = result["events"]
                    rates[mode].append(result["events_per_s"])
                    p99s[mode].append(result["p99_ms"])
                    cpu[mode].append(report)
                    print(
                        f"run {run + 1} {mode}: {result['events_per_s']:,.0f} ev/s "
                        f"(p99 {result['p99_ms']:.1f} ms, {result['statuses']}); {report.line()}",
                        flush=True,
                    )
            finally:
                service.terminate()
                service.wait(timeout=30)
    machine = describe(getattr(create_database, "version", "?"))
    print("\n" + machine_line(machine))
    print(
        f"settings: {args.runs} runs x {args.seconds:.0f} s per mode, {args.clients} clients, "
        f"decision_log workers {args.workers}, projector {args.projector}, server {args.server}"
    )
    print("figure (min / median / max)")
    for mode in modes:
        worker = [report.per_event_us()["decision_log"] for report in cpu[mode]]
        print(
            f"  single-event POST, {mode:<10} {spread(rates[mode])} events/s, "
            f"p99 {spread(p99s[mode])} ms, decision_log worker CPU {spread(worker)} µs/event"
        )
    ratio = statistics.median(rates["binary"]) / statistics.median(rates["structured"])
    print(f"  binary vs structured (median events/s): {ratio:.2f}x")


async def read_model_lag(database_url: str) -> tuple[int, float]:
    """How many committed entries the read model lacks now, and how long it takes to have them."""
    connection = await asyncpg.connect(database_url)
    try:
        query = (
            "SELECT coalesce(sum(c.size - coalesce(p.next_idx, 0)), 0) FROM chains c "
            "LEFT JOIN projection_positions p ON p.chain_id = c.id WHERE c.slug <> 'access-log'"
        )
        behind = int(await connection.fetchval(query))
        began = time.perf_counter()
        while await connection.fetchval(query) > 0:
            await asyncio.sleep(0.05)
        return behind, time.perf_counter() - began
    finally:
        await connection.close()


def fresh_service(
    server_url: str, workers: int, *, separate_projector: bool = False, server_kind: str = "guarded"
) -> tuple[str, dict[str, Any], int, subprocess.Popen[bytes]]:
    """A new database with the demo tenant, and the decision_log serving it: (database URL,
    credentials, port, process)."""
    url = asyncio.run(create_database(server_url, f"bench_{secrets.token_hex(4)}"))
    key_file = Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem"
    credentials = prepare(url, key_file)
    port = free_port()
    service = start_service(
        url,
        key_file,
        port,
        workers,
        separate_projector=separate_projector,
        server_kind=server_kind,
    )
    return url, credentials, port, service


def soak(args: argparse.Namespace) -> None:
    """A long single-event run: throughput, and the worker's memory over time."""
    with postgres_server(args.database_url) as server_url:
        url, credentials, port, service = fresh_service(
            server_url, args.workers, separate_projector=args.projector == "process"
        )
        memory = MemoryWatch(service.pid)
        try:
            single = measure_single(port, credentials, args.clients, args.soak)
            lag = asyncio.run(read_model_lag(url))
        finally:
            peak = memory.stop()
            service.terminate()
            service.wait(timeout=30)
    machine = describe(getattr(create_database, "version", "?"))
    print(machine_line(machine))
    print(
        f"soak: {args.soak:.0f} s of single-event POSTs, {args.clients} clients, "
        f"{args.workers} worker(s): {single['events_per_s']:,.0f} events/s, "
        f"p99 {single['p99_ms']:.1f} ms, {single['statuses']}"
    )
    minute = 0.0
    for elapsed, mib in memory.samples:
        if elapsed >= minute:
            print(f"  largest service process at {elapsed:5.0f} s: {mib:6.1f} MiB")
            minute += 60
    print(f"  peak: {peak:.1f} MiB")
    print(f"  read model behind at the end: {lag[0]:,} entries, caught up {lag[1]:.1f} s later")


def overload(args: argparse.Namespace) -> None:
    """Many more clients than one worker serves: admission must refuse early (503 with
    Retry-After) and keep memory bounded, and health checks must stay quick."""
    import threading

    import psutil

    with postgres_server(args.database_url) as server_url:
        _, credentials, port, service = fresh_service(
            server_url,
            1,
            separate_projector=args.projector == "process",
            server_kind=args.server,
        )
        worker = psutil.Process(service.pid)
        workers = [
            p
            for p in [worker, *worker.children(recursive=True)]
            if "serve" in " ".join(p.cmdline()) or "uvicorn" in " ".join(p.cmdline())
        ]

        def largest_worker_mib() -> float:
            return max(p.memory_info().rss for p in workers) / 2**20

        baseline = largest_worker_mib()
        health: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                while not stop.wait(0.5):
                    began = time.perf_counter()
                    client.get("/healthz")
                    health.append(time.perf_counter() - began)

        prober = threading.Thread(target=probe, daemon=True)
        memory = MemoryWatch(service.pid, children=False)
        prober.start()
        try:
            result = measure_single(port, credentials, args.overload_clients, args.overload_seconds)
            stop.set()
            prober.join()
            peak = memory.stop()
            time.sleep(30)
            after = largest_worker_mib()
        finally:
            service.terminate()
            service.wait(timeout=30)
    machine = describe(getattr(create_database, "version", "?"))
    print(machine_line(machine))
    print(
        f"overload: {args.overload_clients} single-event clients for "
        f"{args.overload_seconds:.0f} s against one worker, server {args.server}"
    )
    print(f"  answers: {result['statuses']}; {result['events_per_s']:,.0f} events/s appended")
    print(
        f"  latency of every answer: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )
    print(f"  /healthz during the load: max {max(health) * 1000:.0f} ms of {len(health)} probes")
    print(
        f"  largest service process: {baseline:.1f} MiB before, {peak:.1f} MiB peak, "
        f"{after:.1f} MiB 30 s after the load (goals: peak <= 300 MB, after <= before + 50 MiB)"
    )


if __name__ == "__main__":
    main()
