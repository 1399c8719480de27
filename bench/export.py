"""Export bundles: build, download and offline verification speed, and a selective export.

    python -m bench.export [--entries 1000000] [--range 100000] [--runs 3] [--database-url ...]

A chain is filled by bench.verify's filler (the log's own leaf builder and Merkle frontier,
COPYed); the decision_log runs as deployed (`audit-trail serve`, one worker) with its verifier
(`audit-trail verifier`, its own database and key, a registered witness) as exports require,
and the verifier has replayed and cosigned the chain before anything is timed. An auditor then
asks for (1) an export of the last `--range` entries, timed from the request until the bundle is
ready and until it is downloaded, then verified offline exactly as `audit-trail verify-bundle
--verifier-key` does; (2) selective exports of 10 random decisions. Every export asks the
verifier first (verify now, status, attestations) and checks every entry it writes (leaf hash,
index, link, inclusion in the cosigned checkpoint). Beside them, the same rows read by a bare
`COPY ... TO STDOUT`: what an unverifiable dump of the rows costs on the same PostgreSQL. Last,
`audit-trail projections verify` over the whole read model (the fold of every entry in scratch
tables, and the comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.auditor import wait_projected
from bench.ingest import create_database, free_port, prepare, start_service
from bench.machine import describe, machine_line
from bench.postgres import postgres_server
from bench.verify import ORIGIN, fill

VERIFIER_NAME = "bench.localhost/verifier"


async def copy_rows(database_url: str, start: int, end: int) -> float:
    """Seconds to COPY the leaves of [start, end) out of PostgreSQL."""
    connection = await asyncpg.connect(database_url)
    try:
        out = io.BytesIO()
        began = time.perf_counter()
        await connection.copy_from_query(
            "SELECT idx, leaf, leaf_hash FROM entries WHERE chain_id = "
            "(SELECT id FROM chains WHERE slug = 'decisions') AND idx >= $1 AND idx < $2",
            start,
            end,
            output=out,
        )
        return time.perf_counter() - began
    finally:
        await connection.close()


async def export(
    http: httpx.AsyncClient, request: dict[str, Any]
) -> tuple[float, float, bytes, dict[str, Any]]:
    """(seconds until ready, seconds until downloaded, the bundle, the job)."""
    began = time.perf_counter()
    response = await http.post("/v1/chains/decisions/exports", json=request)
    response.raise_for_status()
    job = response.json()
    while job["status"] == "running":
        await asyncio.sleep(0.05)
        job = (await http.get(f"/v1/exports/{job['id']}")).json()
    ready = time.perf_counter() - began
    if job["status"] != "ready":
        raise RuntimeError(f"export failed: {job}")
    bundle = (await http.get(job["download"])).content
    return ready, time.perf_counter() - began, bundle, job


def verify(bundle: bytes, log_key: Any, verifier_key: Any) -> tuple[float, int]:
    from ledger.bundle import verify_bundle

    began = time.perf_counter()
    report = verify_bundle(io.BytesIO(bundle), log_key=log_key, verifier_key=verifier_key)
    assert report.witnessed and report.cosigned_by == [VERIFIER_NAME], report
    return time.perf_counter() - began, report.entries


def start_verifier(
    database_url: str, verifier_database_url: str, key_file: Path, log_port: int, port: int
) -> tuple[subprocess.Popen[bytes], Any]:
    """`audit-trail verifier` with a key of its own, registered with the log as a witness;
    (the process, its cosignature verifier)."""
    from audit_trail import admin
    from decision_log.signing import LogSigner
    from decision_log.witnesses import service as witnesses
    from ledger.note import CosignatureSigner
    from verifier import migrations as verifier_migrations

    verifier_migrations.upgrade(verifier_database_url)
    verifier_key_file = key_file.parent / "verifier.pem"
    cosigner = CosignatureSigner(name=VERIFIER_NAME, key=admin.ensure_key(verifier_key_file))
    _, witness_key = asyncio.run(
        admin.in_transaction(
            database_url,
            lambda c: witnesses.register_witness(c, verifier_key=cosigner.verifier_key),
        )
    )
    log_key = LogSigner.create(key=admin.ensure_key(key_file), origin=ORIGIN).note_signer
    env = dict(
        os.environ,
        AUDIT_TRAIL_VERIFIER_DATABASE_URL=verifier_database_url,
        AUDIT_TRAIL_VERIFIER_KEY_FILE=str(verifier_key_file),
        AUDIT_TRAIL_VERIFIER_LOG_URL=f"http://127.0.0.1:{log_port}",
        AUDIT_TRAIL_VERIFIER_LOG_API_KEY=witness_key,
        AUDIT_TRAIL_VERIFIER_LOG_VERIFIER_KEY=log_key.verifier_key,
        AUDIT_TRAIL_VERIFIER_NAME=VERIFIER_NAME,
        AUDIT_TRAIL_LOG_LEVEL="warning",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "audit_trail", "verifier", "--port", str(port)], env=env
    )
    return process, cosigner.verifier


async def wait_cosigned(log_port: int, key: str, size: int) -> float:
    """Seconds until the chain's checkpoint of `size` carries the verifier's cosignature."""
    began = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{log_port}", timeout=60) as http:
        while True:
            note = (await http.get("/v1/chains/decisions/checkpoint", headers=headers)).text
            if f"\n{size}\n" in note and VERIFIER_NAME in note:
                return time.perf_counter() - began
            await asyncio.sleep(0.5)


def verify_read_model(url: str) -> tuple[float, str]:
    """Seconds of `audit-trail projections verify` over the whole read model, and its output."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "audit_trail", "projections", "verify"],
        env=dict(os.environ, DATABASE_URL=url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"projections verify failed: {done.stdout}{done.stderr}")
    return time.perf_counter() - began, done.stdout


def spread(values: list[float], rate: Callable[[float], float]) -> str:
    rates = sorted(rate(v) for v in values)
    return f"{rates[0]:>9,.0f} / {statistics.median(rates):>9,.0f} / {rates[-1]:>9,.0f}"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def measure(
    port: int,
    key: str,
    url: str,
    entries: int,
    span: int,
    runs: int,
    log_key: Any,
    verifier_key: Any,
    service_pid: int,
) -> None:
    rng = random.Random(11)
    start = entries - span
    headers = {"Authorization": f"Bearer {key}"}
    copies = [await copy_rows(url, start, entries) for _ in range(runs)]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600
    ) as http:
        built, downloaded, verified, sizes, cpu = [], [], [], [], []
        for _ in range(runs):
            before = cpu_seconds(service_pid)
            ready, done, bundle, _ = await export(
                http, {"kind": "range", "start": start, "end": entries}
            )
            cpu.append(cpu_seconds(service_pid) - before)
            seconds, count = await asyncio.to_thread(verify, bundle, log_key, verifier_key)
            assert count == span
            built.append(ready)
            downloaded.append(done)
            verified.append(seconds)
            sizes.append(len(bundle))
        selective, selective_sizes = [], []
        for _ in range(runs):
            ids = [f"loan-{rng.randrange(entries)}" for _ in range(10)]
            _, done, bundle, job = await export(http, {"kind": "decisions", "decision_ids": ids})
            _, count = await asyncio.to_thread(verify, bundle, log_key, verifier_key)
            assert count == job["total"] >= 10
            selective.append(done)
            selective_sizes.append(len(bundle))

    def per_second(seconds: float) -> float:
        return span / seconds

    print(f"range export of {span:,} entries (the newest) from a chain of {entries:,}, {runs} runs")
    print("                                       entries/s  min / median / max")
    print(f"  bare COPY TO STDOUT (baseline)   {spread(copies, per_second)}")
    print(f"  export built (request -> ready)  {spread(built, per_second)}")
    print(f"  export built and downloaded      {spread(downloaded, per_second)}")
    print(f"  verify-bundle --verifier-key     {spread(verified, per_second)}")
    print(
        f"  per second of the decision_log's CPU (build and download; PostgreSQL apart) "
        f"{spread(cpu, per_second)}"
    )
    print(f"  bundle size: {statistics.median(sizes) / 1e6:.1f} MB")
    milliseconds = sorted(s * 1000 for s in selective)
    print(
        f"selective export of 10 decisions: {milliseconds[0]:.0f} / "
        f"{statistics.median(milliseconds):.0f} / {milliseconds[-1]:.0f} ms (min / median / max, "
        f"request to downloaded), {statistics.median(selective_sizes) / 1000:.1f} KB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--range", type=int, default=100_000, dest="span")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    from audit_trail import admin
    from decision_log.signing import LogSigner

    with postgres_server(args.database_url) as server_url:
        suffix = secrets.token_hex(3)
        url = asyncio.run(create_database(server_url, f"export_{suffix}"))
        version = getattr(create_database, "version", "?")
        verifier_url = asyncio.run(create_database(server_url, f"export_verifier_{suffix}"))
        key_file = Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem"
        credentials = prepare(url, key_file)
        began = time.perf_counter()
        asyncio.run(fill(url, key_file, args.entries))
        print(f"filled {args.entries:,} entries in {time.perf_counter() - began:.0f} s")
        log_key = LogSigner.create(key=admin.ensure_key(key_file), origin=ORIGIN).note_signer
        port, verifier_port = free_port(), free_port()
        os.environ["AUDIT_TRAIL_VERIFIER_URL"] = f"http://127.0.0.1:{verifier_port}"
        service = start_service(url, key_file, port, 1)
        verifier = None
        try:
            caught_up = asyncio.run(wait_projected(url, "decisions"))
            print(f"read model caught up in {caught_up:.0f} s")
            verifier, verifier_key = start_verifier(
                url, verifier_url, key_file, port, verifier_port
            )
            auditor = credentials["keys"]["auditor"]
            cosigned = asyncio.run(wait_cosigned(port, auditor, args.entries))
            print(f"the verifier replayed and cosigned the chain in {cosigned:.0f} s")
            asyncio.run(
                measure(
                    port,
                    auditor,
                    url,
                    args.entries,
                    min(args.span, args.entries),
                    args.runs,
                    log_key.verifier,
                    verifier_key,
                    service.pid,
                )
            )
        finally:
            if verifier is not None:
                verifier.terminate()
                verifier.wait(timeout=30)
            service.terminate()
            service.wait(timeout=30)
        seconds, report = verify_read_model(url)
        checked = json.loads(report)
        print(
            f"projections verify: {checked['entries']:,} entries of {checked['chains']} chains "
            f"folded and compared in {seconds:.1f} s ({checked['entries'] / seconds:,.0f} "
            f"entries/s, one process), {checked['mismatch_count']} mismatches"
        )
    machine = describe(version)
    print(machine_line(machine))


if __name__ == "__main__":
    main()
