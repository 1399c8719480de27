"""Append-only is enforced by PostgreSQL itself: by grants for the service's role, by triggers
for everyone else, a superuser included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.service.conftest import TenantKeys
from tests.service.helpers import append, decision_event, wait_for_checkpoint

STATEMENTS = {
    "update entries": "UPDATE entries SET event_type = 'forged' WHERE chain_id = $1",
    "delete entries": "DELETE FROM entries WHERE chain_id = $1",
    "truncate entries": "TRUNCATE entries",
    "update merkle_nodes": "UPDATE merkle_nodes SET hash = hash WHERE chain_id = $1",
    "delete merkle_nodes": "DELETE FROM merkle_nodes WHERE chain_id = $1",
    "truncate merkle_nodes": "TRUNCATE merkle_nodes",
    "update checkpoints": "UPDATE checkpoints SET note = 'forged' WHERE chain_id = $1",
    "delete checkpoints": "DELETE FROM checkpoints WHERE chain_id = $1",
    "truncate checkpoints": "TRUNCATE checkpoints CASCADE",
}


@pytest.fixture
async def filled_chain(client: httpx.AsyncClient, tenant: TenantKeys, database_url: str) -> int:
    events = [decision_event() for _ in range(4)]
    assert (
        await append(client, tenant.producer, tenant.chain, events, batch=True)
    ).status_code == 201
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=4)
    connection = await asyncpg.connect(database_url)
    try:
        chain_id: int = await connection.fetchval(
            "SELECT c.id FROM chains c JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1",
            tenant.tenant,
        )
    finally:
        await connection.close()
    return chain_id


@pytest.fixture
async def superuser(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    assert await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    yield connection
    await connection.close()


async def counts(connection: asyncpg.Connection, chain_id: int) -> tuple[int, int, int]:
    return (
        await connection.fetchval("SELECT count(*) FROM entries WHERE chain_id = $1", chain_id),
        await connection.fetchval(
            "SELECT count(*) FROM merkle_nodes WHERE chain_id = $1", chain_id
        ),
        await connection.fetchval("SELECT count(*) FROM checkpoints WHERE chain_id = $1", chain_id),
    )


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
async def test_service_role_has_no_right_to_change_history(
    filled_chain: int, superuser: asyncpg.Connection, statement: str
) -> None:
    before = await counts(superuser, filled_chain)
    async with superuser.transaction():
        await superuser.execute("SET LOCAL ROLE audit_trail_writer")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await superuser.execute(statement, *([filled_chain] if "$1" in statement else []))
    assert await counts(superuser, filled_chain) == before


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
async def test_triggers_refuse_even_a_superuser(
    filled_chain: int, superuser: asyncpg.Connection, statement: str
) -> None:
    before = await counts(superuser, filled_chain)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await superuser.execute(statement, *([filled_chain] if "$1" in statement else []))
    assert await counts(superuser, filled_chain) == before
