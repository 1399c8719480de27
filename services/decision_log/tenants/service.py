"""Tenants are created by the operator (CLI), never over a tenant's own API."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log import admin_actions
from decision_log.problems import Conflict
from decision_log.slugs import check_slug
from decision_log.tenants import repository


async def create_tenant(connection: AsyncConnection, *, slug: str) -> int:
    check_slug(slug, field="tenant")
    tenant_id = await repository.insert_tenant(connection, slug=slug)
    if tenant_id < 0:
        raise Conflict(f"tenant {slug!r} already exists")
    await admin_actions.note(
        connection,
        tenant_id=tenant_id,
        actor=admin_actions.command_line_actor(),
        action="tenant.create",
        target={"tenant": slug},
        at=datetime.now(UTC),
    )
    return tenant_id


async def list_tenants(connection: AsyncConnection) -> list[tuple[str, datetime]]:
    return await repository.list_tenants(connection)
