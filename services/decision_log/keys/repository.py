"""SQL for API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

KEYS_CHANGED_CHANNEL = "audit_trail_api_keys"

_KEY_COLUMNS = """
    k.key_id, t.slug AS tenant, k.tenant_id, k.secret_hash, k.roles, k.chains, k.label,
    k.created_at, k.expires_at, coalesce(k.revoked_at, w.revoked_at) AS revoked_at,
    k.witness_id, w.name AS witness, w.verifier_key AS witness_verifier_key
"""
_KEY_FROM = """
    api_keys k
    LEFT JOIN tenants t ON t.id = k.tenant_id
    LEFT JOIN witnesses w ON w.id = k.witness_id
"""


async def insert_key(
    connection: AsyncConnection,
    *,
    key_id: str,
    tenant_id: int,
    secret_hash: bytes,
    roles: list[str],
    chains: list[str] | None,
    label: str,
    expires_at: datetime | None,
) -> None:
    await connection.execute(
        text(
            """
            INSERT INTO api_keys (key_id, tenant_id, secret_hash, roles, chains, label, expires_at)
            VALUES (:key_id, :tenant_id, :secret_hash, :roles, :chains, :label, :expires_at)
            """
        ),
        {
            "key_id": key_id,
            "tenant_id": tenant_id,
            "secret_hash": secret_hash,
            "roles": roles,
            "chains": chains,
            "label": label,
            "expires_at": expires_at,
        },
    )


async def key_by_id(connection: AsyncConnection, *, key_id: str) -> Any | None:
    result = await connection.execute(
        text(f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} WHERE k.key_id = :key_id"),
        {"key_id": key_id},
    )
    return result.first()


async def keys_of_tenant(connection: AsyncConnection, *, tenant_id: int) -> list[Any]:
    result = await connection.execute(
        text(
            f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} "
            "WHERE k.tenant_id = :tenant_id ORDER BY k.created_at, k.id"
        ),
        {"tenant_id": tenant_id},
    )
    return list(result)


async def update_key(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    key_id: str,
    revoked_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> bool:
    """Set a revocation or expiry time and tell every worker to forget the key at once."""
    result = await connection.execute(
        text(
            """
            UPDATE api_keys
               SET revoked_at = coalesce(revoked_at, :revoked_at),
                   expires_at = coalesce(:expires_at, expires_at)
             WHERE tenant_id = :tenant_id AND key_id = :key_id
            RETURNING key_id
            """
        ),
        {
            "tenant_id": tenant_id,
            "key_id": key_id,
            "revoked_at": revoked_at,
            "expires_at": expires_at,
        },
    )
    if result.first() is None:
        return False
    # Delivered to every listening worker when this transaction commits.
    await connection.execute(
        text("SELECT pg_notify(:channel, :key_id)"),
        {"channel": KEYS_CHANGED_CHANNEL, "key_id": key_id},
    )
    return True


async def lock_unlimited_admin_keys(
    connection: AsyncConnection, *, tenant_id: int, now: datetime
) -> list[str]:
    """Ids of the tenant's working admin keys limited to no chain, locked until commit, so that
    two revocations racing cannot each leave the other as the last one."""
    result = await connection.execute(
        text(
            """
            SELECT key_id FROM api_keys
             WHERE tenant_id = :tenant_id AND 'admin' = ANY(roles) AND chains IS NULL
               AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)
             ORDER BY key_id
               FOR UPDATE
            """
        ),
        {"tenant_id": tenant_id, "now": now},
    )
    return [str(row.key_id) for row in result]
