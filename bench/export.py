"""Export bundles: build, download and offline verification speed, and a selective export.

    python -m bench.export [--entries 1000000] [--range 100000] [--runs 3] [--database-url ...]

A chain is filled by bench.verify's filler (the log's own leaf builder and Merkle frontier,
COPYed), the decision_log runs alone (no verifier: bundles carry no attestation), and an auditor
asks for (1) an export of the last `--range` entries, timed from the request until the bundle is
ready and until it is downloaded, then verified offline exactly as `audit-trail verify-bundle`
does; (2) selective exports of 10 random decisions. Beside them, the same rows read by a bare
`COPY ... TO STDOUT`: what an unverifiable dump of the rows costs on the same PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import secrets
import statistics
import tempfile
import time
import zipfile
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


def verify(bundle: bytes, log_key: Any) -> tuple[float, int]:
    from ledger.bundle import verify_bundle

    began = time.perf_counter()
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        report = verify_bundle(archive, log_key=log_key)
    return time.perf_counter() - began, report.entries


def spread(values: list[float], rate: Callable[[float], float]) -> str:
    rates = sorted(rate(v) for v in values)
    return f"{rates[0]:>9,.0f} / {statistics.median(rates):>9,.0f} / {rates[-1]:>9,.0f}"


async def measure(
    port: int, key: str, url: str, entries: int, span: int, runs: int, log_key: Any
) -> None:
    rng = random.Random(11)
    start = entries - span
    headers = {"Authorization": f"Bearer {key}"}
    copies = [await copy_rows(url, start, entries) for _ in range(runs)]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600
    ) as http:
        built, downloaded, verified, sizes = [], [], [], []
        for _ in range(runs):
            ready, done, bundle, _ = await export(
                http, {"kind": "range", "start": start, "end": entries}
            )
            seconds, count = await asyncio.to_thread(verify, bundle, log_key)
            assert count == span
            built.append(ready)
            downloaded.append(done)
            verified.append(seconds)
            sizes.append(len(bundle))
        selective, selective_sizes = [], []
        for _ in range(runs):
            ids = [f"loan-{rng.randrange(entries)}" for _ in range(10)]
            _, done, bundle, job = await export(http, {"kind": "decisions", "decision_ids": ids})
            _, count = await asyncio.to_thread(verify, bundle, log_key)
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
    print(f"  verify-bundle, offline           {spread(verified, per_second)}")
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
        url = asyncio.run(create_database(server_url, f"export_{secrets.token_hex(3)}"))
        key_file = Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem"
        credentials = prepare(url, key_file)
        began = time.perf_counter()
        asyncio.run(fill(url, key_file, args.entries))
        print(f"filled {args.entries:,} entries in {time.perf_counter() - began:.0f} s")
        log_key = LogSigner.create(key=admin.ensure_key(key_file), origin=ORIGIN).note_signer
        port = free_port()
        service = start_service(url, key_file, port, 1)
        try:
            caught_up = asyncio.run(wait_projected(url, "decisions"))
            print(f"read model caught up in {caught_up:.0f} s")
            asyncio.run(
                measure(
                    port,
                    credentials["keys"]["auditor"],
                    url,
                    args.entries,
                    min(args.span, args.entries),
                    args.runs,
                    log_key.verifier,
                )
            )
        finally:
            service.terminate()
            service.wait(timeout=30)
    machine = describe(getattr(create_database, "version", "?"))
    print(machine_line(machine))


if __name__ == "__main__":
    main()
