"""SQL for witnesses and the cosignatures they post."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_witness(connection: AsyncConnection, *, name: str, verifier_key: str) -> int:
    result = await connection.execute(
        text(
            "INSERT INTO witnesses (name, verifier_key) VALUES (:name, :verifier_key) "
            "ON CONFLICT DO NOTHING RETURNING id"
        ),
        {"name": name, "verifier_key": verifier_key},
    )
    row = result.first()
    return -1 if row is None else int(row.id)


async def insert_witness_key(
    connection: AsyncConnection, *, key_id: str, witness_id: int, secret_hash: bytes, label: str
) -> None:
    await connection.execute(
        text(
            "INSERT INTO api_keys (key_id, witness_id, secret_hash, roles, label) "
            "VALUES (:key_id, :witness_id, :secret_hash, ARRAY['witness'], :label)"
        ),
        {"key_id": key_id, "witness_id": witness_id, "secret_hash": secret_hash, "label": label},
    )


async def witness_by_name(connection: AsyncConnection, *, name: str) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT id, name, verifier_key, created_at, revoked_at FROM witnesses WHERE name = :n"
        ),
        {"n": name},
    )
    return result.first()


async def list_witnesses(connection: AsyncConnection) -> list[Any]:
    result = await connection.execute(
        text("SELECT id, name, verifier_key, created_at, revoked_at FROM witnesses ORDER BY name")
    )
    return list(result)


async def revoke_witness(connection: AsyncConnection, *, name: str) -> list[str]:
    """Revoke the witness and tell every worker to forget its keys."""
    await connection.execute(
        text("UPDATE witnesses SET revoked_at = coalesce(revoked_at, now()) WHERE name = :n"),
        {"n": name},
    )
    result = await connection.execute(
        text(
            "SELECT k.key_id FROM api_keys k JOIN witnesses w ON w.id = k.witness_id "
            "WHERE w.name = :n"
        ),
        {"n": name},
    )
    key_ids = [row.key_id for row in result]
    for key_id in key_ids:
        await connection.execute(
            text("SELECT pg_notify('audit_trail_api_keys', :key_id)"), {"key_id": key_id}
        )
    return key_ids


async def insert_cosignature(
    connection: AsyncConnection,
    *,
    chain_id: int,
    size: int,
    witness_id: int,
    cosigned_at: int,
    signature_line: str,
) -> bool:
    result = await connection.execute(
        text(
            "INSERT INTO cosignatures (chain_id, size, witness_id, cosigned_at, signature_line) "
            "VALUES (:chain_id, :size, :witness_id, :cosigned_at, :line) "
            "ON CONFLICT DO NOTHING RETURNING size"
        ),
        {
            "chain_id": chain_id,
            "size": size,
            "witness_id": witness_id,
            "cosigned_at": cosigned_at,
            "line": signature_line,
        },
    )
    return result.first() is not None


async def cosignature_lines(connection: AsyncConnection, *, chain_id: int, size: int) -> list[Any]:
    result = await connection.execute(
        text(
            "SELECT w.name, c.signature_line, c.cosigned_at FROM cosignatures c "
            "JOIN witnesses w ON w.id = c.witness_id "
            "WHERE c.chain_id = :chain_id AND c.size = :size ORDER BY w.name"
        ),
        {"chain_id": chain_id, "size": size},
    )
    return list(result)


async def checkpoint_at(connection: AsyncConnection, *, chain_id: int, size: int) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT size, root_hash, note FROM checkpoints "
            "WHERE chain_id = :chain_id AND size = :size"
        ),
        {"chain_id": chain_id, "size": size},
    )
    return result.first()


async def latest_cosigned_checkpoint(connection: AsyncConnection, *, chain_id: int) -> Any | None:
    """The newest checkpoint with a cosignature, found from the cosignatures' primary key (a
    search from the checkpoints' side would walk every checkpoint while none is cosigned)."""
    result = await connection.execute(
        text(
            "SELECT k.size, k.root_hash, k.note FROM checkpoints k WHERE k.chain_id = :chain_id "
            "AND k.size = (SELECT max(c.size) FROM cosignatures c WHERE c.chain_id = :chain_id)"
        ),
        {"chain_id": chain_id},
    )
    return result.first()


async def cosigned_checkpoints(
    connection: AsyncConnection, *, chain_id: int, covering: int, limit: int
) -> list[Any]:
    """The newest checkpoints of at least ``covering`` entries with a cosignature row."""
    result = await connection.execute(
        text(
            "SELECT k.size, k.root_hash, k.note FROM checkpoints k WHERE k.chain_id = :chain "
            "AND k.size >= :covering AND k.size IN (SELECT DISTINCT c.size FROM cosignatures c "
            "WHERE c.chain_id = :chain AND c.size >= :covering) ORDER BY k.size DESC LIMIT :limit"
        ),
        {"chain": chain_id, "covering": covering, "limit": limit},
    )
    return list(result)


async def live_cosignatures(connection: AsyncConnection, *, chain_id: int, size: int) -> list[Any]:
    """The cosignature rows of one checkpoint by witnesses not revoked, with their keys."""
    result = await connection.execute(
        text(
            "SELECT w.name, w.verifier_key, c.signature_line FROM cosignatures c "
            "JOIN witnesses w ON w.id = c.witness_id "
            "WHERE c.chain_id = :chain AND c.size = :size AND w.revoked_at IS NULL "
            "ORDER BY w.name"
        ),
        {"chain": chain_id, "size": size},
    )
    return list(result)
