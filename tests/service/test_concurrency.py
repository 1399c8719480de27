"""Several server processes appending to one chain at once: no gap, no fork, no duplicate, and
every acknowledged event present exactly once. Real uvicorn processes over real HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from ledger.merkle import leaf_hash, root_hash

from tests.service.conftest import LOG_ORIGIN, TenantKeys
from tests.service.helpers import (
    BATCH,
    STRUCTURED,
    all_entries,
    decision_event,
    headers,
    leaf_bytes,
    wait_for_checkpoint,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "decision_log.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
    )


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready in {timeout}s")


@pytest.fixture(scope="module")
def servers(
    database_url: str, log_key_file: Path, privacy_files: dict[str, Path]
) -> Iterator[list[str]]:
    env = dict(
        os.environ,
        AUDIT_TRAIL_DATABASE_URL=database_url,
        AUDIT_TRAIL_LOG_KEY_FILE=str(log_key_file),
        AUDIT_TRAIL_KEK_FILE=str(privacy_files["kek_file"]),
        AUDIT_TRAIL_PSEUDONYM_KEY_FILE=str(privacy_files["pseudonym_key_file"]),
        AUDIT_TRAIL_LOG_ORIGIN=LOG_ORIGIN,
    )
    ports = [free_port(), free_port()]
    processes = [start_server(ports[0], 2, env), start_server(ports[1], 1, env)]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_ready(port, process)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def test_many_clients_on_several_processes_make_one_gapless_chain(
    servers: list[str], tenant: TenantKeys
) -> None:
    clients_count, singles_each, batches_each = 48, 12, 2
    acknowledged: dict[str, tuple[int, str]] = {}
    lock = asyncio.Lock()

    async def producer(number: int) -> None:
        base = servers[number % len(servers)]
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
            for round_ in range(singles_each + batches_each):
                batch = round_ >= singles_each
                events = [decision_event() for _ in range(10 if batch else 1)]
                body = orjson.dumps(events if batch else events[0])
                response = await http.post(
                    f"/v1/chains/{tenant.chain}/events",
                    content=body,
                    headers=headers(tenant.producer, BATCH if batch else STRUCTURED),
                )
                assert response.status_code == 201, response.text
                answer = response.json()
                receipts = answer["receipts"] if batch else [answer]
                async with lock:
                    for event, receipt in zip(events, receipts, strict=True):
                        assert event["id"] not in acknowledged
                        acknowledged[event["id"]] = (receipt["index"], receipt["leaf_hash"])

    await asyncio.gather(*(producer(n) for n in range(clients_count)))
    total = clients_count * (singles_each + 10 * batches_each)
    assert len(acknowledged) == total

    async with httpx.AsyncClient(base_url=servers[0], timeout=60) as http:
        await wait_for_checkpoint(http, tenant.auditor, tenant.chain, size=total)
        entries = await all_entries(http, tenant.auditor, tenant.chain)
        chain = (
            await http.get(f"/v1/chains/{tenant.chain}", headers=headers(tenant.auditor))
        ).json()

    assert [entry["index"] for entry in entries] == list(range(total)), "gap or duplicate index"
    prev = "0" * 64
    found: dict[str, tuple[int, str]] = {}
    for entry in entries:
        raw = leaf_bytes(entry)
        assert leaf_hash(raw).hex() == entry["leaf_hash"]
        leaf = orjson.loads(raw)
        assert leaf["prev"] == prev, f"fork at index {entry['index']}"
        prev = entry["leaf_hash"]
        assert leaf["event"]["id"] not in found, "event stored twice"
        found[leaf["event"]["id"]] = (entry["index"], entry["leaf_hash"])
    assert found == acknowledged, "every acknowledged event, at its receipt's index, exactly once"
    assert (
        chain["checkpoint"]["root_hash"]
        == root_hash([bytes.fromhex(e["leaf_hash"]) for e in entries]).hex()
    )
