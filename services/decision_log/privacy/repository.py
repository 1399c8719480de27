"""SQL for data keys, retention and legal holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def live_keys(
    connection: AsyncConnection, *, tenant_id: int, pseudonyms: list[str]
) -> dict[str, tuple[str, bytes, str]]:
    result = await connection.execute(
        text(
            "SELECT pseudonym, kid, wrapped_key, kek_id FROM subject_keys "
            "WHERE tenant_id = :tenant_id AND pseudonym = ANY(CAST(:pseudonyms AS text[])) "
            "AND destroyed_at IS NULL"
        ),
        {"tenant_id": tenant_id, "pseudonyms": pseudonyms},
    )
    return {row.pseudonym: (row.kid, bytes(row.wrapped_key), row.kek_id) for row in result}


async def insert_keys(
    connection: AsyncConnection, *, tenant_id: int, rows: list[tuple[str, str, bytes, str]]
) -> None:
    """Add keys for new subjects; a subject given a key meanwhile by another request keeps it."""
    await connection.execute(
        text(
            """
            INSERT INTO subject_keys (tenant_id, pseudonym, kid, wrapped_key, kek_id)
            SELECT :tenant_id, k.pseudonym, k.kid, k.wrapped, k.kek_id
              FROM unnest(CAST(:pseudonyms AS text[]), CAST(:kids AS text[]),
                          CAST(:wrapped AS bytea[]), CAST(:kek_ids AS text[]))
                   AS k(pseudonym, kid, wrapped, kek_id)
            ON CONFLICT (tenant_id, pseudonym) WHERE destroyed_at IS NULL DO NOTHING
            """
        ),
        {
            "tenant_id": tenant_id,
            "pseudonyms": [row[0] for row in rows],
            "kids": [row[1] for row in rows],
            "wrapped": [row[2] for row in rows],
            "kek_ids": [row[3] for row in rows],
        },
    )


async def keys_by_kid(
    connection: AsyncConnection, *, tenant_id: int, kids: list[str]
) -> dict[str, tuple[bytes | None, str | None]]:
    """(wrapped key, KEK id) per key id; (None, None) for a destroyed key."""
    result = await connection.execute(
        text(
            "SELECT kid, wrapped_key, kek_id FROM subject_keys "
            "WHERE tenant_id = :tenant_id AND kid = ANY(CAST(:kids AS text[]))"
        ),
        {"tenant_id": tenant_id, "kids": kids},
    )
    return {
        row.kid: (None if row.wrapped_key is None else bytes(row.wrapped_key), row.kek_id)
        for row in result
    }


async def destroy_keys(
    connection: AsyncConnection, *, tenant_id: int, pseudonym: str, now: datetime
) -> list[str]:
    result = await connection.execute(
        text(
            "UPDATE subject_keys SET wrapped_key = NULL, kek_id = NULL, destroyed_at = :now "
            "WHERE tenant_id = :tenant_id AND pseudonym = :pseudonym AND destroyed_at IS NULL "
            "RETURNING kid"
        ),
        {"tenant_id": tenant_id, "pseudonym": pseudonym, "now": now},
    )
    return [row.kid for row in result]


async def subject_chains(
    connection: AsyncConnection, *, tenant_id: int, pseudonym: str
) -> list[Any]:
    """The chains holding the subject's entries, with what retention and holds say of them."""
    result = await connection.execute(
        text(
            """
            SELECT c.id, c.slug, c.retention_days, max(e.received_at) AS newest,
                   (SELECT count(*) FROM legal_holds h
                     WHERE h.chain_id = c.id AND h.lifted_at IS NULL) AS holds
              FROM chains c JOIN entries e ON e.chain_id = c.id
             WHERE c.tenant_id = :tenant_id AND e.data_subject = :pseudonym
             GROUP BY c.id, c.slug, c.retention_days
             ORDER BY c.slug
            """
        ),
        {"tenant_id": tenant_id, "pseudonym": pseudonym},
    )
    return list(result)


async def subjects_last_seen_before(
    connection: AsyncConnection, *, tenant_id: int, chain_id: int, before: datetime
) -> list[str]:
    """Subjects with a live key, records in this chain, and no record anywhere in the tenant
    received at or after ``before``: what a disposal of this chain's records up to then
    may make unreadable without touching anything younger."""
    result = await connection.execute(
        text(
            """
            SELECT e.data_subject FROM entries e JOIN chains c ON c.id = e.chain_id
             WHERE c.tenant_id = :tenant_id
               AND e.data_subject IN (SELECT DISTINCT data_subject FROM entries
                                       WHERE chain_id = :chain_id AND data_subject IS NOT NULL)
               AND EXISTS (SELECT 1 FROM subject_keys k WHERE k.tenant_id = :tenant_id
                              AND k.pseudonym = e.data_subject AND k.destroyed_at IS NULL)
             GROUP BY e.data_subject
            HAVING max(e.received_at) < :before
             ORDER BY e.data_subject
            """
        ),
        {"tenant_id": tenant_id, "chain_id": chain_id, "before": before},
    )
    return [row.data_subject for row in result]


async def chain_retention(connection: AsyncConnection, *, chain_id: int) -> Any:
    result = await connection.execute(
        text(
            "SELECT c.retention_days, (SELECT count(*) FROM legal_holds h WHERE h.chain_id = c.id "
            "AND h.lifted_at IS NULL) AS holds FROM chains c WHERE c.id = :chain_id"
        ),
        {"chain_id": chain_id},
    )
    return result.one()


async def live_wrapped_keys(connection: AsyncConnection) -> list[Any]:
    result = await connection.execute(
        text("SELECT id, wrapped_key, kek_id FROM subject_keys WHERE wrapped_key IS NOT NULL")
    )
    return list(result)


async def rewrap(
    connection: AsyncConnection, *, rows: list[tuple[int, bytes]], kek_id: str
) -> None:
    await connection.execute(
        text(
            """
            UPDATE subject_keys s SET wrapped_key = r.wrapped, kek_id = :kek_id
              FROM unnest(CAST(:ids AS bigint[]), CAST(:wrapped AS bytea[])) AS r(id, wrapped)
             WHERE s.id = r.id AND s.wrapped_key IS NOT NULL
            """
        ),
        {"ids": [row[0] for row in rows], "wrapped": [row[1] for row in rows], "kek_id": kek_id},
    )


async def insert_hold(
    connection: AsyncConnection, *, chain_id: int, reason: str, set_by: str
) -> int:
    result = await connection.execute(
        text(
            "INSERT INTO legal_holds (chain_id, reason, set_by) "
            "VALUES (:chain_id, :reason, :set_by) RETURNING id"
        ),
        {"chain_id": chain_id, "reason": reason, "set_by": set_by},
    )
    return int(result.scalar_one())


async def lift_hold(
    connection: AsyncConnection, *, chain_id: int, hold_id: int, lifted_by: str, reason: str
) -> bool:
    result = await connection.execute(
        text(
            "UPDATE legal_holds SET lifted_at = now(), lifted_by = :by, lift_reason = :reason "
            "WHERE id = :id AND chain_id = :chain_id AND lifted_at IS NULL RETURNING id"
        ),
        {"id": hold_id, "chain_id": chain_id, "by": lifted_by, "reason": reason},
    )
    return result.first() is not None


async def holds(connection: AsyncConnection, *, chain_id: int) -> list[Any]:
    result = await connection.execute(
        text(
            "SELECT id, reason, set_by, set_at, lifted_by, lifted_at, lift_reason "
            "FROM legal_holds WHERE chain_id = :chain_id ORDER BY id"
        ),
        {"chain_id": chain_id},
    )
    return list(result)


async def set_retention(connection: AsyncConnection, *, chain_id: int, days: int) -> None:
    await connection.execute(
        text("UPDATE chains SET retention_days = :days WHERE id = :chain_id"),
        {"days": days, "chain_id": chain_id},
    )
