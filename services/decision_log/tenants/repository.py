"""SQL for tenants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_tenant(connection: AsyncConnection, *, slug: str) -> int:
    result = await connection.execute(
        text(
            "INSERT INTO tenants (slug) VALUES (:slug) ON CONFLICT (slug) DO NOTHING RETURNING id"
        ),
        {"slug": slug},
    )
    row = result.first()
    return -1 if row is None else int(row.id)


async def tenant_id_by_slug(connection: AsyncConnection, *, slug: str) -> int | None:
    result = await connection.execute(
        text("SELECT id FROM tenants WHERE slug = :slug"), {"slug": slug}
    )
    row = result.first()
    return None if row is None else int(row.id)


async def list_tenants(connection: AsyncConnection) -> list[tuple[str, datetime]]:
    result = await connection.execute(text("SELECT slug, created_at FROM tenants ORDER BY slug"))
    return [(row.slug, row.created_at) for row in result]
