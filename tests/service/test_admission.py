"""Overload is bounded and fair: what a worker holds of append bodies and queued events has a
ceiling, a request past it is refused at once with 503 + Retry-After, and one tenant's flood
leaves room for another tenant's appends.

The flood is real: another transaction holds the flooding tenant's chain head, so its group
commits wait exactly as under a stuck database, and its requests pile up in the worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
from decision_log.app import create_app
from decision_log.settings import Settings
from decision_log.signing import LogSigner

from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import BATCH, STRUCTURED, chain_size, decision_event, headers


@pytest.fixture
async def small_budget_client(
    settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """A worker with small budgets: ten events by default, 3 MiB of bodies."""
    events = getattr(request, "param", 10)
    app = create_app(
        settings.model_copy(
            update={
                "max_pending_events": events,
                "max_inflight_bytes": 3 * 1024 * 1024,
                "max_body_bytes": 1024 * 1024,
                "queue_timeout_seconds": 30.0,
            }
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log", timeout=60) as c:
            yield c


async def hold_chain(database_url: str, tenant: TenantKeys) -> asyncpg.Connection:
    connection = await asyncpg.connect(database_url)
    await connection.execute("BEGIN")
    await connection.execute(
        "SELECT 1 FROM chains c JOIN tenants t ON t.id = c.tenant_id "
        "WHERE t.slug = $1 AND c.slug = $2 FOR UPDATE OF c",
        tenant.tenant,
        tenant.chain,
    )
    return connection


async def answered(
    tasks: list[asyncio.Task[httpx.Response]], *, at_least: int
) -> list[httpx.Response]:
    """The answers given while the rest wait on the held chain (a busy machine may take a
    moment to refuse them all), after a further pause in which no other may come."""
    deadline = time.monotonic() + 10
    while sum(task.done() for task in tasks) < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return [task.result() for task in tasks if task.done()]


async def test_a_flooded_tenant_does_not_block_another(
    small_budget_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    client = small_budget_client
    flooding = await make_tenant(database_url, signer)
    quiet = await make_tenant(database_url, signer)
    lock = await hold_chain(database_url, flooding)

    async def post(keys: TenantKeys) -> httpx.Response:
        return await client.post(
            f"/v1/chains/{keys.chain}/events",
            content=orjson.dumps(decision_event()),
            headers=headers(keys.producer, STRUCTURED),
        )

    try:
        flood = [asyncio.create_task(post(flooding)) for _ in range(30)]
        refused = await answered(flood, at_least=25)
        # The flooding tenant holds its share (half the budget of ten) and is refused beyond it.
        assert len(refused) == 25
        assert {r.status_code for r in refused} == {503}
        started = time.monotonic()
        answer = await post(quiet)
        assert answer.status_code == 201, answer.text
        assert time.monotonic() - started < 2
    finally:
        await lock.execute("ROLLBACK")
        await lock.close()
    assert [r.status_code for r in await asyncio.gather(*flood)].count(201) == 5
    assert await chain_size(client, quiet.auditor, quiet.chain) == 1


@pytest.mark.parametrize("small_budget_client", [1000], indirect=True)
async def test_large_bodies_past_the_byte_budget_are_refused_before_they_are_read(
    small_budget_client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    client = small_budget_client

    def batch() -> bytes:
        return orjson.dumps(
            [
                decision_event(type="com.example.other.v1", data={"x": "a" * 200_000})
                for _ in range(3)
            ]
        )

    assert 600_000 < len(batch()) < 700_000
    lock = await hold_chain(database_url, tenant)
    try:
        tasks = [
            asyncio.create_task(
                client.post(
                    f"/v1/chains/{tenant.chain}/events",
                    content=batch(),
                    headers=headers(tenant.producer, BATCH),
                )
            )
            for _ in range(6)
        ]
        refused = await answered(tasks, at_least=4)
    finally:
        await lock.execute("ROLLBACK")
        await lock.close()
    # A lone tenant holds at most half of the 3 MiB: two bodies of about 0.6 MiB.
    assert len(refused) == 4
    for response in refused:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["type"].endswith("/overloaded")
    answers = await asyncio.gather(*tasks)
    assert [a.status_code for a in answers].count(201) == 2
    assert await chain_size(client, tenant.auditor, tenant.chain) == 6
