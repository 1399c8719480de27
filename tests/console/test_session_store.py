"""Console sessions in PostgreSQL: idle and absolute timeouts, expired keys, the cleanup of
expired rows at sign-in, and the cookie's Secure flag over TLS (the app over ASGI)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import asyncpg
import httpx
from fastapi import FastAPI

from tests.console.test_bad_input import signed_in
from tests.service.conftest import TenantKeys

COOKIE = "audit_trail_console"


async def age_session(database_url: str, session_id: str, *, column: str, by: timedelta) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"UPDATE console_sessions SET {column} = {column} - $2::interval WHERE id_hash = $1",
            hashlib.sha256(session_id.encode()).digest(),
            by,
        )
    finally:
        await connection.close()


async def session_count(database_url: str, session_id: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM console_sessions WHERE id_hash = $1",
                hashlib.sha256(session_id.encode()).digest(),
            )
        )
    finally:
        await connection.close()


async def test_an_idle_session_ends(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await signed_in(client, tenant.auditor)
    session_id = str(client.cookies.get(COOKIE))
    assert (await client.get("/console/")).status_code == 200
    await age_session(database_url, session_id, column="last_seen_at", by=timedelta(minutes=31))
    answer = await client.get("/console/")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    assert await session_count(database_url, session_id) == 0


async def test_no_session_outlives_its_absolute_timeout(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await signed_in(client, tenant.auditor)
    session_id = str(client.cookies.get(COOKIE))
    await age_session(database_url, session_id, column="created_at", by=timedelta(hours=8))
    assert (await client.get("/console/")).status_code == 303
    assert await session_count(database_url, session_id) == 0


async def test_a_session_ends_when_its_key_expires(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await signed_in(client, tenant.auditor)
    key_id = tenant.auditor.split("_")[1]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_id = $1",
            key_id,
        )
    finally:
        await connection.close()
    assert (await client.get("/console/")).status_code == 303


async def test_expired_sessions_are_deleted_at_the_next_sign_in(
    app: FastAPI, tenant: TenantKeys, database_url: str
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://decision-log") as first:
        await signed_in(first, tenant.auditor)
        old = str(first.cookies.get(COOKIE))
    await age_session(database_url, old, column="last_seen_at", by=timedelta(hours=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://decision-log") as second:
        await signed_in(second, tenant.admin)
    assert await session_count(database_url, old) == 0


async def test_the_cookie_is_secure_over_tls(app: FastAPI, tenant: TenantKeys) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://decision-log") as tls:
        form = await tls.get("/console/sign-in")
        assert "secure" in form.headers["set-cookie"].lower()
        token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        answer = await tls.post(
            "/console/sign-in", data={"api_key": tenant.auditor, "csrf_token": token}
        )
        cookie = answer.headers["set-cookie"].lower()
        assert cookie.startswith(COOKIE) and "secure" in cookie
        assert "httponly" in cookie and "samesite=strict" in cookie
