"""The SQL of console sessions (table ``console_sessions``, migration 0013)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_session(
    connection: AsyncConnection,
    *,
    id_hash: bytes,
    tenant_id: int,
    key_id: str,
    csrf_token: str,
    now: datetime,
) -> None:
    await connection.execute(
        text(
            "INSERT INTO console_sessions "
            "(id_hash, tenant_id, key_id, csrf_token, created_at, last_seen_at) "
            "VALUES (:id_hash, :tenant_id, :key_id, :csrf_token, :now, :now)"
        ),
        {
            "id_hash": id_hash,
            "tenant_id": tenant_id,
            "key_id": key_id,
            "csrf_token": csrf_token,
            "now": now,
        },
    )


async def session_by_hash(connection: AsyncConnection, *, id_hash: bytes) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT id_hash, tenant_id, key_id, csrf_token, created_at, last_seen_at "
            "FROM console_sessions WHERE id_hash = :id_hash"
        ),
        {"id_hash": id_hash},
    )
    return result.first()


async def touch_session(connection: AsyncConnection, *, id_hash: bytes, now: datetime) -> None:
    await connection.execute(
        text("UPDATE console_sessions SET last_seen_at = :now WHERE id_hash = :id_hash"),
        {"id_hash": id_hash, "now": now},
    )


async def delete_session(connection: AsyncConnection, *, id_hash: bytes) -> bool:
    result = await connection.execute(
        text("DELETE FROM console_sessions WHERE id_hash = :id_hash"), {"id_hash": id_hash}
    )
    return bool(result.rowcount)


async def delete_expired(
    connection: AsyncConnection, *, idle_before: datetime, created_before: datetime
) -> int:
    result = await connection.execute(
        text(
            "DELETE FROM console_sessions "
            "WHERE last_seen_at < :idle_before OR created_at < :created_before"
        ),
        {"idle_before": idle_before, "created_before": created_before},
    )
    return int(result.rowcount)
