"""One chain's entries never stop the projection of another: poison values are projected as
unprojectable, a failing chain is retried with backoff and shows where and why it stopped, and
it resumes by itself once the cause is gone. Real HTTP, the service's own projector, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from decision_log.events.cloudevents import PreparedEvent
from decision_log.signing import LogSigner
from fastapi import FastAPI
from ledger.canonical import canonicalize

from tests.decisions.helpers import deployed, projected, recorded, reviewed
from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import append, headers
from tests.verifier import tamper

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 15.0) -> T:
    """The first non-None answer of ``check``, polled until ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await check()
        if answer is not None:
            return answer
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def recovered(client: httpx.AsyncClient, tenant: TenantKeys) -> dict[str, Any]:
    """The chain's projection status once it has caught up with no error (a fix applied)."""

    async def caught_up() -> dict[str, Any] | None:
        projection = await chain_projection(client, tenant.auditor, tenant.chain)
        return projection if projection["error"] is None and projection["behind"] == 0 else None

    return await eventually(caught_up, timeout=30)


async def chain_projection(client: httpx.AsyncClient, key: str, chain: str) -> dict[str, Any]:
    response = await client.get(f"/v1/chains/{chain}", headers=headers(key))
    assert response.status_code == 200, response.text
    projection: dict[str, Any] = response.json()["projection"]
    return projection


async def view(client: httpx.AsyncClient, key: str, chain: str, decision_id: str) -> Any:
    response = await client.get(f"/v1/chains/{chain}/decisions/{decision_id}", headers=headers(key))
    assert response.status_code == 200, response.text
    return response.json()


async def search(client: httpx.AsyncClient, key: str, **params: Any) -> Any:
    response = await client.get("/v1/decisions", params=params, headers=headers(key))
    assert response.status_code == 200, response.text
    return response.json()


async def found(client: httpx.AsyncClient, key: str, **params: Any) -> set[str]:
    return {d["decision_id"] for d in (await search(client, key, **params))["decisions"]}


async def searchable(
    client: httpx.AsyncClient, key: str, decision_id: str, **params: Any
) -> bool | None:
    return True if decision_id in await found(client, key, **params) else None


async def chains_failing(client: httpx.AsyncClient) -> int:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text  # a failing chain leaves the service ready
    return int(response.json()["projection"]["chains_failing"])


async def append_as_stored_before(
    app: FastAPI, database_url: str, tenant: TenantKeys, events: list[dict[str, Any]]
) -> list[int]:
    """Append through the log's group committer directly, as entries were stored before the
    append path refused values like these: leaves, tree and checkpoints are real."""
    state = app.state.audit_trail
    connection = await asyncpg.connect(database_url)
    try:
        tenant_id = await connection.fetchval(
            "SELECT id FROM tenants WHERE slug = $1", tenant.tenant
        )
    finally:
        await connection.close()
    chain = await state.directory.resolve(
        tenant_id=tenant_id, tenant=tenant.tenant, chain=tenant.chain
    )
    prepared = []
    for event in events:
        event_json = canonicalize(event)
        prepared.append(
            PreparedEvent(
                source=event["source"],
                event_id=event["id"],
                event_type=event["type"],
                subject=event.get("subject"),
                event_json=event_json,
                content_digest=hashlib.sha256(event_json).digest(),
            )
        )
    receipts = await state.committer.append(chain, prepared, batch=True)
    return [receipt.index for receipt in receipts]


async def test_a_nul_in_event_data_is_projected_as_unprojectable_and_stops_no_chain(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: LogSigner
) -> None:
    poisoned = recorded("poisoned", model={"name": "credit-gbm\u0000", "version": "4.2.0"})
    response = await append(
        client, tenant.producer, tenant.chain, [poisoned, recorded("after")], batch=True
    )
    assert response.status_code == 201, response.text  # the append keeps NUL in data, as sent
    # Chains of this tenant and of another one, created after the poisoned chain.
    created = await client.post(
        "/v1/chains", json={"chain": "beside"}, headers=headers(tenant.admin)
    )
    assert created.status_code == 201, created.text
    assert (
        await append(client, tenant.producer, "beside", recorded("beside-1"))
    ).status_code == 201
    other = await make_tenant(database_url, signer)
    assert (
        await append(client, other.producer, other.chain, recorded("theirs"))
    ).status_code == 201

    await projected(database_url)
    assert await found(client, other.auditor) == {"theirs"}
    assert await found(client, tenant.auditor, chain="beside") == {"beside-1"}
    page = await search(client, tenant.auditor, chain=tenant.chain)
    assert {d["decision_id"] for d in page["decisions"]} == {"poisoned", "after"}
    assert page["read_model"] is None

    state = (await view(client, tenant.auditor, tenant.chain, "poisoned"))["state"]
    assert (state["model_name"], state["model_version"]) == (None, "4.2.0")
    assert state["unprojectable"] == ["model_name"]
    timeline = (await view(client, tenant.auditor, tenant.chain, "poisoned"))["timeline"]
    assert timeline[0]["event"]["data"]["model"]["name"] == "credit-gbm\u0000"  # as recorded
    after = await view(client, tenant.auditor, tenant.chain, "after")
    assert after["state"]["model_name"] == "credit-gbm" and after["read_model"] is None
    projection = await chain_projection(client, tenant.auditor, tenant.chain)
    assert projection["next_index"] == 2 and projection["behind"] == 0
    assert projection["error"] is None and projection["unprojectable_entries"] == 0


async def test_values_no_column_can_take_written_before_the_append_refused_them(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    app: FastAPI,
    database_url: str,
    signer: LogSigner,
) -> None:
    # About 8 KB that does not compress into a btree index row (2,704 bytes at most).
    huge = secrets.token_urlsafe(6000)
    late = recorded("far-future")
    late["time"] = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
    events = [
        recorded("long-model", model={"name": huge, "version": "4.2.0"}),
        recorded(huge),
        deployed(version=huge),
        late,
        recorded("fine"),
    ]
    assert await append_as_stored_before(app, database_url, tenant, events) == [0, 1, 2, 3, 4]
    other = await make_tenant(database_url, signer)  # created after the poisoned chain
    assert (
        await append(client, other.producer, other.chain, recorded("theirs"))
    ).status_code == 201

    await projected(database_url)
    assert await found(client, other.auditor) == {"theirs"}
    assert await found(client, tenant.auditor, chain=tenant.chain) == {
        "long-model",
        "far-future",
        "fine",
    }
    state = (await view(client, tenant.auditor, tenant.chain, "long-model"))["state"]
    assert state["model_name"] is None and state["unprojectable"] == ["model_name"]
    assert state["decision"] == "declined"
    state = (await view(client, tenant.auditor, tenant.chain, "far-future"))["state"]
    assert state["decided_at"] == state["received_at"]
    assert state["unprojectable"] == ["decided_at"]
    projection = await chain_projection(client, tenant.auditor, tenant.chain)
    assert (projection["next_index"], projection["behind"], projection["error"]) == (5, 0, None)
    # The entry whose subject cannot be a decision id, and the deployment, are left out.
    assert projection["unprojectable_entries"] == 2
    assert projection["last_unprojectable_index"] == 2


@asynccontextmanager
async def decision_row_locked(
    database_url: str, tenant: TenantKeys, decision_id: str
) -> AsyncIterator[None]:
    """Hold a row lock on one decision of the read model, as an operator's session might."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            locked = await connection.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM decisions d "
                "JOIN chains c ON c.id = d.chain_id JOIN tenants t ON t.id = c.tenant_id "
                "WHERE t.slug = $1 AND c.slug = $2 AND d.decision_id = $3 FOR UPDATE OF d) held",
                tenant.tenant,
                tenant.chain,
                decision_id,
            )
            assert locked == 1
            yield
    finally:
        await connection.close()


async def test_a_chain_that_cannot_be_projected_now_stops_alone_and_resumes_by_itself(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    database_url: str,
    signer: LogSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="decision_log.decisions.projector")
    assert (
        await append(client, tenant.producer, tenant.chain, recorded("held"))
    ).status_code == 201
    await projected(database_url)
    other = await make_tenant(database_url, signer)
    async with decision_row_locked(database_url, tenant, "held"):
        response = await append(
            client, tenant.producer, tenant.chain, [reviewed("held"), recorded("later")], batch=True
        )
        assert response.status_code == 201, response.text
        assert (
            await append(client, other.producer, other.chain, recorded("theirs"))
        ).status_code == 201

        async def failing() -> dict[str, Any] | None:
            projection = await chain_projection(client, tenant.auditor, tenant.chain)
            return projection if projection["error"] else None

        projection = await eventually(failing)
        assert projection["next_index"] == 1 and projection["behind"] == 2
        assert "lock timeout" in projection["error"]
        assert projection["failing_since"] is not None and projection["attempts"] >= 1
        # Another tenant's chain, created afterwards, goes on meanwhile.
        await eventually(lambda: searchable(client, other.auditor, "theirs"))
        # Readiness counts it; chains other tests tampered with may be failing too.
        failing_meanwhile = await chains_failing(client)
        assert failing_meanwhile >= 1
        note = (await view(client, tenant.auditor, tenant.chain, "held"))["read_model"]
        assert (note["next_index"], note["chain_size"]) == (1, 3)
        assert "lock timeout" in note["error"] and "index 1" in note["text"]
        page = await search(client, tenant.auditor, chain=tenant.chain)
        assert page["read_model"]["next_index"] == 1
        assert {d["decision_id"] for d in page["decisions"]} == {"held"}

    projection = await recovered(client, tenant)
    assert (projection["next_index"], projection["error"], projection["attempts"]) == (3, None, 0)
    assert projection["failing_since"] is None
    held = await view(client, tenant.auditor, tenant.chain, "held")
    assert held["state"]["reviewed"] and held["read_model"] is None
    assert await found(client, tenant.auditor, chain=tenant.chain) == {"held", "later"}
    assert await chains_failing(client) == failing_meanwhile - 1
    # One line per failed attempt, no traceback.
    warnings = [r for r in caplog.records if "stopped at index 1" in r.getMessage()]
    assert warnings and all(r.exc_info is None and "\n" not in r.getMessage() for r in warnings)


@asynccontextmanager
async def unprojectable_by_this_version(database_url: str, decision_id: str) -> AsyncIterator[None]:
    """A read model that refuses one decision's timeline row with a data error, as a version
    with a bug would; leaving the block is the upgrade that fixes it."""
    name = f"refuse_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'cannot project %', NEW.decision_id USING ERRCODE = '22023'; "
            "END $$"
        )
        await connection.execute(
            f"CREATE TRIGGER {name} BEFORE INSERT ON decision_events FOR EACH ROW "
            f"WHEN (NEW.decision_id = '{decision_id}') EXECUTE FUNCTION {name}()"
        )
        yield
    finally:
        await connection.execute(f"DROP TRIGGER IF EXISTS {name} ON decision_events")
        await connection.execute(f"DROP FUNCTION IF EXISTS {name}()")
        await connection.close()


async def test_a_failing_entry_stops_its_chain_exactly_there_until_a_fix(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: LogSigner
) -> None:
    poison = f"poison-{secrets.token_hex(4)}"
    other = await make_tenant(database_url, signer)
    async with unprojectable_by_this_version(database_url, poison):
        events = [recorded("a"), recorded("b"), recorded(poison), recorded("c")]
        response = await append(client, tenant.producer, tenant.chain, events, batch=True)
        assert response.status_code == 201, response.text
        assert (
            await append(client, other.producer, other.chain, recorded("theirs"))
        ).status_code == 201

        async def failing() -> dict[str, Any] | None:
            projection = await chain_projection(client, tenant.auditor, tenant.chain)
            return projection if projection["error"] else None

        projection = await eventually(failing)
        # The entries before the one at fault, in the same batch, are projected.
        assert projection["next_index"] == 2 and projection["behind"] == 2
        assert "SQLSTATE 22023" in projection["error"] and poison in projection["error"]
        await eventually(lambda: searchable(client, other.auditor, "theirs"))
        assert await found(client, tenant.auditor, chain=tenant.chain) == {"a", "b"}
        note = (await view(client, tenant.auditor, tenant.chain, "a"))["read_model"]
        assert note["next_index"] == 2 and "SQLSTATE 22023" in note["error"]

    await recovered(client, tenant)
    assert await found(client, tenant.auditor, chain=tenant.chain) == {"a", "b", poison, "c"}
    projection = await chain_projection(client, tenant.auditor, tenant.chain)
    assert (projection["next_index"], projection["error"]) == (4, None)


async def test_an_entry_removed_from_the_store_stops_its_chain_there_and_says_so(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: LogSigner
) -> None:
    """The chain's head counts an entry the store no longer holds (removed by someone with the
    database's own rights): its projection stops at that index with the reason shown, rather
    than waiting for it in silence or skipping the hole; other chains go on."""
    events = [recorded(f"r-{n}") for n in range(4)]
    assert (
        await append(client, tenant.producer, tenant.chain, events, batch=True)
    ).status_code == 201
    await projected(database_url)
    async with tamper.superuser(database_url) as db:
        chain_id = await tamper.chain_id(db, tenant.tenant, tenant.chain)
        await tamper.delete_entry(db, chain_id, 2)
        # As if the projector had not got there yet when the entry went.
        await db.execute(
            "UPDATE projection_positions SET next_idx = 2 WHERE chain_id = $1", chain_id
        )

    async def failing() -> dict[str, Any] | None:
        projection = await chain_projection(client, tenant.auditor, tenant.chain)
        return projection if projection["error"] else None

    projection = await eventually(failing)
    assert projection["next_index"] == 2
    assert "entry 2 is missing from the store" in projection["error"]
    other = await make_tenant(database_url, signer)
    assert (await append(client, other.producer, other.chain, recorded("o-1"))).status_code == 201
    await eventually(lambda: searchable(client, other.auditor, "o-1"))
