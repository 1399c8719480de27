"""SQL of the verifier's own store (schema ``verifier``): replay positions, remembered leaf
hashes, cosigned checkpoints, findings, acknowledgements and attestations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CHAIN_COLUMNS = (
    "id, tenant, chain, epoch, verified_size, verified_root, frontier, last_leaf_hash, "
    "last_received_at, verified_at, entries_replayed, halted_by"
)


async def chain_state(connection: AsyncConnection, *, tenant: str, chain: str) -> Any | None:
    result = await connection.execute(
        text(f"SELECT {_CHAIN_COLUMNS} FROM verifier.chains WHERE tenant = :t AND chain = :c"),
        {"t": tenant, "c": chain},
    )
    return result.first()


async def insert_chain(
    connection: AsyncConnection, *, tenant: str, chain: str, empty_root: bytes, genesis: bytes
) -> None:
    await connection.execute(
        text(
            "INSERT INTO verifier.chains (tenant, chain, verified_root, last_leaf_hash) "
            "VALUES (:t, :c, :root, :genesis) ON CONFLICT (tenant, chain) DO NOTHING"
        ),
        {"t": tenant, "c": chain, "root": empty_root, "genesis": genesis},
    )


async def chain_states(connection: AsyncConnection, *, tenant: str | None = None) -> list[Any]:
    where = "" if tenant is None else "WHERE tenant = :t"
    result = await connection.execute(
        text(f"SELECT {_CHAIN_COLUMNS} FROM verifier.chains {where} ORDER BY tenant, chain"),
        {} if tenant is None else {"t": tenant},
    )
    return list(result)


async def advance(
    connection: AsyncConnection,
    *,
    chain_id: int,
    epoch: int,
    old_size: int,
    new_size: int,
    root: bytes,
    frontier: bytes,
    last_leaf_hash: bytes,
    last_received_at: str,
    verified_at: datetime,
    replayed: int,
) -> bool:
    """Move the replay position; False if another verifier process moved it first."""
    result = await connection.execute(
        text(
            "UPDATE verifier.chains SET verified_size = :new_size, verified_root = :root, "
            "frontier = :frontier, last_leaf_hash = :last, last_received_at = :received_at, "
            "verified_at = :at, entries_replayed = entries_replayed + :replayed "
            "WHERE id = :id AND epoch = :epoch AND verified_size = :old_size "
            "AND halted_by IS NULL RETURNING id"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "old_size": old_size,
            "new_size": new_size,
            "root": root,
            "frontier": frontier,
            "last": last_leaf_hash,
            "received_at": last_received_at,
            "at": verified_at,
            "replayed": replayed,
        },
    )
    return result.first() is not None


async def touch(connection: AsyncConnection, *, chain_id: int, verified_at: datetime) -> None:
    await connection.execute(
        text("UPDATE verifier.chains SET verified_at = :at WHERE id = :id"),
        {"id": chain_id, "at": verified_at},
    )


async def insert_leaf_hashes(
    connection: AsyncConnection, *, chain_id: int, epoch: int, start: int, hashes: bytes
) -> None:
    await connection.execute(
        text(
            "INSERT INTO verifier.leaf_hashes (chain_id, epoch, start, hashes) "
            "VALUES (:id, :epoch, :start, :hashes)"
        ),
        {"id": chain_id, "epoch": epoch, "start": start, "hashes": hashes},
    )


async def remembered_hashes(
    connection: AsyncConnection, *, chain_id: int, epoch: int, end: int
) -> list[bytes]:
    result = await connection.execute(
        text(
            "SELECT start, hashes FROM verifier.leaf_hashes "
            "WHERE chain_id = :id AND epoch = :epoch AND start < :end ORDER BY start"
        ),
        {"id": chain_id, "epoch": epoch, "end": end},
    )
    hashes: list[bytes] = []
    for row in result:
        data = bytes(row.hashes)
        if int(row.start) != len(hashes):
            break  # never happens: runs are written contiguously with the replay position
        hashes.extend(data[i : i + 32] for i in range(0, len(data), 32))
    return hashes[:end]


async def insert_cosigned(
    connection: AsyncConnection,
    *,
    chain_id: int,
    epoch: int,
    size: int,
    root_hash: bytes,
    checkpoint_note: str,
    cosignature: str,
    cosigned_at: datetime,
) -> None:
    await connection.execute(
        text(
            "INSERT INTO verifier.cosigned_checkpoints (chain_id, epoch, size, root_hash, "
            "checkpoint_note, cosignature, cosigned_at) VALUES (:id, :epoch, :size, :root, "
            ":note, :cosignature, :at) ON CONFLICT DO NOTHING"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "size": size,
            "root": root_hash,
            "note": checkpoint_note,
            "cosignature": cosignature,
            "at": cosigned_at,
        },
    )


async def latest_cosigned(connection: AsyncConnection, *, chain_id: int, epoch: int) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT size, root_hash, checkpoint_note, cosignature, cosigned_at "
            "FROM verifier.cosigned_checkpoints WHERE chain_id = :id AND epoch = :epoch "
            "ORDER BY size DESC LIMIT 1"
        ),
        {"id": chain_id, "epoch": epoch},
    )
    return result.first()


async def insert_finding(
    connection: AsyncConnection,
    *,
    chain_id: int,
    epoch: int,
    kind: str,
    first_bad_index: int | None,
    detail: str,
    evidence: dict[str, Any],
    attestation: dict[str, Any],
    found_at: datetime,
) -> int:
    result = await connection.execute(
        text(
            "INSERT INTO verifier.findings (chain_id, epoch, kind, first_bad_index, detail, "
            "evidence, attestation, found_at) VALUES (:id, :epoch, :kind, :index, :detail, "
            "CAST(:evidence AS jsonb), CAST(:attestation AS jsonb), :at) RETURNING id"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "kind": kind,
            "index": first_bad_index,
            "detail": detail,
            "evidence": orjson.dumps(evidence).decode(),
            "attestation": orjson.dumps(attestation).decode(),
            "at": found_at,
        },
    )
    finding_id = int(result.scalar_one())
    # The chain stops here: nothing is cosigned for it until an operator acknowledges.
    await connection.execute(
        text("UPDATE verifier.chains SET halted_by = :finding WHERE id = :id"),
        {"id": chain_id, "finding": finding_id},
    )
    return finding_id


async def findings(connection: AsyncConnection, *, chain_id: int) -> list[Any]:
    result = await connection.execute(
        text(
            "SELECT f.id, f.epoch, f.kind, f.first_bad_index, f.detail, f.evidence, "
            "f.attestation, f.found_at, a.operator, a.reason, a.acknowledged_at "
            "FROM verifier.findings f LEFT JOIN verifier.acknowledgements a "
            "ON a.finding_id = f.id WHERE f.chain_id = :id ORDER BY f.id"
        ),
        {"id": chain_id},
    )
    return list(result)


async def finding_by_id(connection: AsyncConnection, *, finding_id: int) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT f.id, f.chain_id, f.kind, c.halted_by, a.finding_id AS acknowledged "
            "FROM verifier.findings f JOIN verifier.chains c ON c.id = f.chain_id "
            "LEFT JOIN verifier.acknowledgements a ON a.finding_id = f.id WHERE f.id = :id"
        ),
        {"id": finding_id},
    )
    return result.first()


async def acknowledge(
    connection: AsyncConnection,
    *,
    finding_id: int,
    chain_id: int,
    operator: str,
    reason: str,
    at: datetime,
    empty_root: bytes,
    genesis: bytes,
) -> None:
    """Record the acknowledgement and start the chain over in a new epoch, from nothing."""
    await connection.execute(
        text(
            "INSERT INTO verifier.acknowledgements (finding_id, operator, reason, "
            "acknowledged_at) VALUES (:finding, :operator, :reason, :at)"
        ),
        {"finding": finding_id, "operator": operator, "reason": reason, "at": at},
    )
    await connection.execute(
        text(
            "UPDATE verifier.chains SET epoch = epoch + 1, verified_size = 0, "
            "verified_root = :root, frontier = ''::bytea, last_leaf_hash = :genesis, "
            "last_received_at = '', halted_by = NULL WHERE id = :id"
        ),
        {"id": chain_id, "root": empty_root, "genesis": genesis},
    )


async def insert_attestation(
    connection: AsyncConnection,
    *,
    chain_id: int,
    size: int,
    root_hash: bytes,
    result: str,
    envelope: dict[str, Any],
    issued_at: datetime,
) -> int:
    inserted = await connection.execute(
        text(
            "INSERT INTO verifier.attestations (chain_id, size, root_hash, result, envelope, "
            "issued_at) VALUES (:id, :size, :root, :result, CAST(:envelope AS jsonb), :at) "
            "RETURNING id"
        ),
        {
            "id": chain_id,
            "size": size,
            "root": root_hash,
            "result": result,
            "envelope": orjson.dumps(envelope).decode(),
            "at": issued_at,
        },
    )
    return int(inserted.scalar_one())


async def attestations(
    connection: AsyncConnection, *, chain_id: int, limit: int, before: int | None = None
) -> list[Any]:
    result = await connection.execute(
        text(
            "SELECT id, size, root_hash, result, envelope, issued_at FROM verifier.attestations "
            "WHERE chain_id = :id AND (CAST(:before AS bigint) IS NULL OR id < :before) "
            "ORDER BY id DESC LIMIT :limit"
        ),
        {"id": chain_id, "limit": limit, "before": before},
    )
    return list(result)


async def last_attestation(connection: AsyncConnection, *, chain_id: int) -> Any | None:
    rows = await attestations(connection, chain_id=chain_id, limit=1)
    return rows[0] if rows else None
