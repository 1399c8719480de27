"""When appends arrive faster than they commit, the log says "slow down" (503 + Retry-After)
instead of queueing without bound, and never loses or half-writes an acknowledged event.

The database is slowed for real: another transaction holds the chain's head row lock, so every
group commit of that chain waits, exactly as under a stuck or overloaded database.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
from decision_log.app import create_app
from decision_log.settings import Settings

from tests.service.conftest import TenantKeys
from tests.service.helpers import STRUCTURED, all_entries, decision_event, headers


@pytest.fixture
async def small_queue_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(
            update={"max_pending_events": 10, "queue_timeout_seconds": 30.0, "group_max_events": 5}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log", timeout=60) as c:
            yield c


async def no_admin_records_pending(database_url: str, tenant: TenantKeys) -> None:
    """Until the records of making the tenant are in its access chain: their appends would
    count as a second tenant's share of the budget below."""
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            pending = await connection.fetchval(
                "SELECT count(*) FROM admin_actions_pending p JOIN tenants t "
                "ON t.id = p.tenant_id WHERE t.slug = $1",
                tenant.tenant,
            )
            if not pending:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("admin records still pending after 10 s")
    finally:
        await connection.close()


async def hold_chain_lock(database_url: str, tenant: TenantKeys) -> asyncpg.Connection:
    connection = await asyncpg.connect(database_url)
    await connection.execute("BEGIN")
    await connection.execute(
        "SELECT 1 FROM chains c JOIN tenants t ON t.id = c.tenant_id "
        "WHERE t.slug = $1 AND c.slug = $2 FOR UPDATE OF c",
        tenant.tenant,
        tenant.chain,
    )
    return connection


async def test_full_queue_answers_503_and_loses_nothing(
    small_queue_client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    client = small_queue_client
    await no_admin_records_pending(database_url, tenant)
    lock = await hold_chain_lock(database_url, tenant)
    events = [decision_event() for _ in range(25)]

    async def post(event: dict[str, object]) -> httpx.Response:
        return await client.post(
            f"/v1/chains/{tenant.chain}/events",
            content=orjson.dumps(event),
            headers=headers(tenant.producer, STRUCTURED),
        )

    tasks = [asyncio.create_task(post(event)) for event in events]
    try:
        await asyncio.sleep(0.5)
        refused = [t.result() for t in tasks if t.done()]
    finally:
        await lock.execute("ROLLBACK")
        await lock.close()
    # A tenant alone may hold half of the worker's budget of ten events (the other half stays
    # free for other tenants): five fit, the rest were refused at once, while the database
    # was stuck.
    assert len(refused) == 20
    for response in refused:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 503

    answers = await asyncio.gather(*tasks)
    acknowledged = {
        event["id"]: answer.json()["index"]
        for event, answer in zip(events, answers, strict=True)
        if answer.status_code == 201
    }
    assert len(acknowledged) == 5
    stored = {
        orjson.loads(base64.b64decode(e["leaf"]))["event"]["id"]: e["index"]
        for e in await all_entries(client, tenant.auditor, tenant.chain)
    }
    assert stored == acknowledged, "exactly the acknowledged events, at their receipts' indexes"


async def test_an_append_that_waited_too_long_is_refused_unwritten(
    settings: Settings, tenant: TenantKeys, database_url: str
) -> None:
    app = create_app(settings.model_copy(update={"queue_timeout_seconds": 0.3}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
            lock = await hold_chain_lock(database_url, tenant)

            async def post() -> httpx.Response:
                return await client.post(
                    f"/v1/chains/{tenant.chain}/events",
                    content=orjson.dumps(decision_event()),
                    headers=headers(tenant.producer, STRUCTURED),
                )

            try:
                first = asyncio.create_task(post())  # its group waits on the lock
                await asyncio.sleep(0.1)
                late = asyncio.create_task(post())  # queued behind it
                await asyncio.sleep(0.6)
            finally:
                await lock.execute("ROLLBACK")
                await lock.close()
            assert (await first).status_code == 201
            late_answer = await late
            assert late_answer.status_code == 503
            assert "not written" in late_answer.json()["detail"]
            entries = await all_entries(client, tenant.auditor, tenant.chain)
            assert len(entries) == 1
