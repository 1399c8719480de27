"""Proof latency on a large chain: inclusion and consistency proofs over real HTTP.

    python -m bench.proofs [--entries 1000000] [--requests 2000] [--runs 3] [--database-url ...]

The chain is filled by bench.verify's filler (the log's own leaf builder and Merkle frontier,
COPYed), then the decision_log runs alone and a client asks for proofs of random entries and
random old sizes against the latest checkpoint, checking every proof it gets.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.auditor import wait_projected
from bench.ingest import create_database, free_port, prepare, start_service
from bench.machine import describe, machine_line
from bench.postgres import postgres_server
from bench.verify import fill


async def measure(
    port: int, key: str, size: int, requests: int, clients: int
) -> dict[str, list[float]]:
    from ledger.merkle import verify_consistency, verify_inclusion

    rng = random.Random(7)
    latencies: dict[str, list[float]] = {"inclusion": [], "consistency": []}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
        chain = (await http.get("/v1/chains/decisions")).json()
        root = bytes.fromhex(chain["checkpoint"]["root_hash"])

        async def worker(count: int) -> None:
            for _ in range(count):
                index = rng.randrange(size)
                started = time.perf_counter()
                proof = (
                    await http.get(
                        "/v1/chains/decisions/proof/inclusion",
                        params={"index": index, "tree_size": size},
                    )
                ).json()
                latencies["inclusion"].append(time.perf_counter() - started)
                verify_inclusion(
                    leaf_hash=bytes.fromhex(proof["leaf_hash"]),
                    index=index,
                    size=size,
                    proof=[bytes.fromhex(h) for h in proof["hashes"]],
                    root=root,
                )
                old = rng.randrange(1, size)
                started = time.perf_counter()
                proof = (
                    await http.get(
                        "/v1/chains/decisions/proof/consistency", params={"from": old, "to": size}
                    )
                ).json()
                latencies["consistency"].append(time.perf_counter() - started)
                verify_consistency(
                    old_size=old,
                    new_size=size,
                    proof=[bytes.fromhex(h) for h in proof["hashes"]],
                    old_root=bytes.fromhex(proof["from_root"]),
                    new_root=root,
                )

        await asyncio.gather(*(worker(requests // clients) for _ in range(clients)))
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="measurements on the same chain")
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with postgres_server(args.database_url) as server_url:
        url = asyncio.run(create_database(server_url, f"proofs_{secrets.token_hex(3)}"))
        key_file = Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem"
        credentials = prepare(url, key_file)
        began = time.perf_counter()
        asyncio.run(fill(url, key_file, args.entries))
        print(f"filled {args.entries:,} entries in {time.perf_counter() - began:.0f} s")
        port = free_port()
        service = start_service(url, key_file, port, 1)
        try:
            # The projector catches up with the bulk-loaded chain first; the proofs are then
            # measured on a log at rest, as a monitor meets it between bursts.
            caught_up = asyncio.run(wait_projected(url, "decisions"))
            print(f"read model caught up in {caught_up:.0f} s")
            runs = [
                asyncio.run(
                    measure(
                        port,
                        credentials["keys"]["auditor"],
                        args.entries,
                        args.requests,
                        args.clients,
                    )
                )
                for _ in range(args.runs)
            ]
        finally:
            service.terminate()
            service.wait(timeout=30)
    machine = describe(getattr(create_database, "version", "?"))
    print(machine_line(machine))
    print(
        f"{args.requests} requests each, {args.clients} clients, chain of {args.entries:,}, "
        f"{args.runs} runs; min / median / max over the runs"
    )
    for kind in ("inclusion", "consistency"):
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            values = sorted(percentile(run[kind], fraction) for run in runs)
            print(
                f"  {kind:<12} {label}  {values[0]:6.2f} / {statistics.median(values):6.2f} / "
                f"{values[-1]:6.2f} ms"
            )


if __name__ == "__main__":
    main()
