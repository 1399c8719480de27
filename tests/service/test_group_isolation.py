"""One event never fails another: requests committed in one group share a transaction, so when the
database refuses one request's data, the others must still land and only that one fails.

Validation refuses what it knows before an event joins a group, so the database is made to
refuse a value validation lets through: a CHECK constraint on entries (as a later schema rule,
or a value validation missed, would). The group is formed for real: the chain's head row is
locked while the requests arrive, so they queue and are committed together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest

from tests.service.conftest import TenantKeys
from tests.service.helpers import STRUCTURED, all_entries, decision_event, headers, leaf_bytes

POISON_SOURCE = "urn:test:refused-by-the-database"


@pytest.fixture
async def refusing_database(database_url: str) -> AsyncIterator[None]:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "ALTER TABLE entries ADD CONSTRAINT test_refuses_poison "
            f"CHECK (source <> '{POISON_SOURCE}') NOT VALID"
        )
        yield
    finally:
        await connection.execute("ALTER TABLE entries DROP CONSTRAINT test_refuses_poison")
        await connection.close()


async def test_a_refused_event_fails_only_its_own_request(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, refusing_database: None
) -> None:
    lock = await asyncpg.connect(database_url)
    await lock.execute("BEGIN")
    await lock.execute(
        "SELECT 1 FROM chains c JOIN tenants t ON t.id = c.tenant_id "
        "WHERE t.slug = $1 AND c.slug = $2 FOR UPDATE OF c",
        tenant.tenant,
        tenant.chain,
    )
    good = [decision_event() for _ in range(15)]
    poison = decision_event(source=POISON_SOURCE)

    async def post(event: dict[str, object]) -> httpx.Response:
        return await client.post(
            f"/v1/chains/{tenant.chain}/events",
            content=orjson.dumps(event),
            headers=headers(tenant.producer, STRUCTURED),
        )

    # The first request takes the lock-waiting group; the rest queue behind it and form the
    # next group together, poison in the middle.
    first = asyncio.create_task(post(decision_event()))
    await asyncio.sleep(0.2)
    rest = [asyncio.create_task(post(e)) for e in [*good[:7], poison, *good[7:]]]
    await asyncio.sleep(0.3)
    await lock.execute("ROLLBACK")
    await lock.close()

    assert (await first).status_code == 201
    answers = await asyncio.gather(*rest)
    refused = answers[7]
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "nothing of it was written" in refused.json()["detail"]
    assert [a.status_code for a in answers[:7] + answers[8:]] == [201] * 15

    stored = [
        orjson.loads(leaf_bytes(e))["event"]
        for e in await all_entries(client, tenant.auditor, tenant.chain)
    ]
    assert POISON_SOURCE not in {event["source"] for event in stored}
    assert {e["id"] for e in good} <= {event["id"] for event in stored}
    assert len(stored) == 16
    assert sorted(a.json()["index"] for a in answers if a.status_code == 201) == list(range(1, 16))
