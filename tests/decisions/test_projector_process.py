"""The projector as a process of its own (`audit-trail projections follow`) beside workers that
do not project: the read model still follows the log, and only because that process runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from decision_log import migrations
from decision_log.app import create_app
from decision_log.settings import Settings
from decision_log.signing import LogSigner

from tests import databases
from tests.decisions.helpers import recorded
from tests.service.conftest import make_tenant
from tests.service.helpers import append


@pytest.fixture
async def own_database(database_url: str) -> AsyncIterator[str]:
    """A database of its own, so that no other test's projector can do this one's work."""
    async with databases.own_database(database_url, "projector") as url:
        await asyncio.to_thread(migrations.upgrade, url)
        yield url


async def decisions(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM decisions"))
    finally:
        await connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def assert_serves_its_metrics(url: str, token: str) -> None:
    """What the decision-log workers no longer measure, the process serves: how far the read
    model trails the log, to the bearer of the metrics token only."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        assert (await client.get("/livez")).json() == {"status": "ok"}
        refused = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert scraped.status_code == 200
            if "audit_trail_projector_behind_entries 0.0" in scraped.text:
                break
            assert asyncio.get_running_loop().time() < deadline, scraped.text
            await asyncio.sleep(0.2)
        assert "audit_trail_projector_failing_chains 0.0" in scraped.text


async def test_a_projector_process_keeps_the_read_model(
    own_database: str, settings: Settings, signer: LogSigner
) -> None:
    app = create_app(
        settings.model_copy(update={"database_url": own_database, "run_projector": False})
    )
    async with app.router.lifespan_context(app):
        tenant = await make_tenant(own_database, signer)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
            events = [recorded(f"loan-{i}") for i in range(5)]
            response = await append(client, tenant.producer, tenant.chain, events, batch=True)
            assert response.status_code == 201, response.text
        await asyncio.sleep(1.0)
        assert await decisions(own_database) == 0  # the workers do not project
        port = free_port()
        token = secrets.token_urlsafe(16)
        process = subprocess.Popen(
            [sys.executable, "-m", "audit_trail", "projections", "follow", "--port", str(port)],
            env={
                **os.environ,
                "AUDIT_TRAIL_DATABASE_URL": own_database,
                "AUDIT_TRAIL_METRICS_TOKEN": token,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while await decisions(own_database) < 5:
                assert asyncio.get_running_loop().time() < deadline, "not projected in 30 s"
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                await asyncio.sleep(0.1)
            await assert_serves_its_metrics(f"http://127.0.0.1:{port}", token)
        finally:
            process.send_signal(signal.SIGINT)
            output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output
