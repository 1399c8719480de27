"""SQL of the verifier's own store (schema ``verifier``): replay positions, remembered leaf
hashes, cosigned checkpoints, findings, acknowledgements and attestations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from ledger.completeness import SILENCE_SLACK
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CHAIN_COLUMNS = (
    "id, tenant, chain, epoch, verified_size, verified_root, frontier, last_leaf_hash, "
    "last_received_at, verified_at, entries_replayed, halted_by, completeness_epoch, "
    "completeness_start, completeness_size"
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


async def leaf_hash_runs(
    connection: AsyncConnection, *, chain_id: int, epoch: int, start: int, stop: int, longest: int
) -> list[Any]:
    """The runs of remembered leaf hashes of one epoch that may overlap [start, stop), in order.

    A run holds at most `longest` hashes, so only runs starting after start - longest can reach
    start: the primary key's range, not the whole chain, is read."""
    result = await connection.execute(
        text(
            "SELECT start, hashes FROM verifier.leaf_hashes WHERE chain_id = :id "
            "AND epoch = :epoch AND start > :lowest AND start < :stop ORDER BY start"
        ),
        {"id": chain_id, "epoch": epoch, "lowest": start - longest, "stop": stop},
    )
    return list(result)


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
    last_received_at: str | None,
) -> None:
    await connection.execute(
        text(
            "INSERT INTO verifier.cosigned_checkpoints (chain_id, epoch, size, root_hash, "
            "checkpoint_note, cosignature, cosigned_at, last_received_at) VALUES (:id, :epoch, "
            ":size, :root, :note, :cosignature, :at, :received_at) ON CONFLICT DO NOTHING"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "size": size,
            "root": root_hash,
            "note": checkpoint_note,
            "cosignature": cosignature,
            "at": cosigned_at,
            "received_at": last_received_at,
        },
    )


_COSIGNED_COLUMNS = "size, root_hash, checkpoint_note, cosignature, cosigned_at, last_received_at"


async def latest_cosigned(
    connection: AsyncConnection, *, chain_id: int, epoch: int, at_most: int | None = None
) -> Any | None:
    """The largest checkpoint cosigned in the epoch (of at most `at_most` entries)."""
    result = await connection.execute(
        text(
            f"SELECT {_COSIGNED_COLUMNS} FROM verifier.cosigned_checkpoints "
            "WHERE chain_id = :id AND epoch = :epoch "
            "AND (CAST(:at_most AS bigint) IS NULL OR size <= :at_most) "
            "ORDER BY size DESC LIMIT 1"
        ),
        {"id": chain_id, "epoch": epoch, "at_most": at_most},
    )
    return result.first()


async def first_cosigned_covering(
    connection: AsyncConnection, *, chain_id: int, epoch: int, index: int
) -> datetime | None:
    """When the verifier first cosigned, in the epoch, a checkpoint that holds entry `index`."""
    result = await connection.execute(
        text(
            "SELECT min(cosigned_at) FROM verifier.cosigned_checkpoints "
            "WHERE chain_id = :id AND epoch = :epoch AND size > :index"
        ),
        {"id": chain_id, "epoch": epoch, "index": index},
    )
    value: datetime | None = result.scalar()
    return value


async def carry_cosigned_into_epoch(
    connection: AsyncConnection, *, chain_id: int, from_epoch: int, to_epoch: int, size: int
) -> None:
    """The checkpoint a new epoch starts from is the one cosigned in the old epoch, as it was."""
    await connection.execute(
        text(
            "INSERT INTO verifier.cosigned_checkpoints (chain_id, epoch, size, root_hash, "
            "checkpoint_note, cosignature, cosigned_at, last_received_at) "
            "SELECT chain_id, :to_epoch, size, root_hash, checkpoint_note, cosignature, "
            "cosigned_at, last_received_at FROM verifier.cosigned_checkpoints "
            "WHERE chain_id = :id AND epoch = :from_epoch AND size = :size"
        ),
        {"id": chain_id, "from_epoch": from_epoch, "to_epoch": to_epoch, "size": size},
    )


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
            "f.attestation, f.found_at, a.operator, a.reason, a.acknowledged_at, "
            "e.epoch AS next_epoch, e.start_size, e.history_replaced "
            "FROM verifier.findings f LEFT JOIN verifier.acknowledgements a "
            "ON a.finding_id = f.id LEFT JOIN verifier.epochs e ON e.after_finding = f.id "
            "WHERE f.chain_id = :id ORDER BY f.id"
        ),
        {"id": chain_id},
    )
    return list(result)


async def finding_by_id(connection: AsyncConnection, *, finding_id: int) -> Any | None:
    """The finding with its chain's state, the chain row locked against a concurrent change."""
    result = await connection.execute(
        text(
            "SELECT f.id, f.chain_id, f.epoch, f.kind, f.first_bad_index, c.halted_by, "
            "c.epoch AS chain_epoch, c.verified_size, a.finding_id AS acknowledged "
            "FROM verifier.findings f JOIN verifier.chains c ON c.id = f.chain_id "
            "LEFT JOIN verifier.acknowledgements a ON a.finding_id = f.id WHERE f.id = :id "
            "FOR UPDATE OF c"
        ),
        {"id": finding_id},
    )
    return result.first()


async def acknowledged_findings(connection: AsyncConnection, *, chain_id: int) -> list[Any]:
    """Every acknowledged finding of the chain, with the epoch its acknowledgement started."""
    result = await connection.execute(
        text(
            "SELECT f.id, f.epoch, f.kind, f.first_bad_index, f.found_at, a.operator, a.reason, "
            "a.acknowledged_at, e.epoch AS next_epoch, e.start_size, e.history_replaced "
            "FROM verifier.findings f JOIN verifier.acknowledgements a ON a.finding_id = f.id "
            "LEFT JOIN verifier.epochs e ON e.after_finding = f.id "
            "WHERE f.chain_id = :id ORDER BY f.id"
        ),
        {"id": chain_id},
    )
    return list(result)


async def epochs(connection: AsyncConnection, *, chain_id: int) -> list[Any]:
    result = await connection.execute(
        text(
            "SELECT epoch, start_size, start_root, history_replaced, after_finding, started_at "
            "FROM verifier.epochs WHERE chain_id = :id ORDER BY epoch"
        ),
        {"id": chain_id},
    )
    return list(result)


async def acknowledge(
    connection: AsyncConnection,
    *,
    finding_id: int,
    chain_id: int,
    operator: str,
    reason: str,
    at: datetime,
    epoch: int,
    start_size: int,
    start_root: bytes,
    frontier: bytes,
    last_leaf_hash: bytes,
    last_received_at: str,
    history_replaced: bool,
) -> None:
    """Record the acknowledgement and start epoch `epoch` of the chain at `start_size`."""
    await connection.execute(
        text(
            "INSERT INTO verifier.acknowledgements (finding_id, operator, reason, "
            "acknowledged_at) VALUES (:finding, :operator, :reason, :at)"
        ),
        {"finding": finding_id, "operator": operator, "reason": reason, "at": at},
    )
    await connection.execute(
        text(
            "INSERT INTO verifier.epochs (chain_id, epoch, start_size, start_root, "
            "history_replaced, after_finding, started_at) VALUES (:id, :epoch, :size, :root, "
            ":replaced, :finding, :at)"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "size": start_size,
            "root": start_root,
            "replaced": history_replaced,
            "finding": finding_id,
            "at": at,
        },
    )
    await connection.execute(
        text(
            "UPDATE verifier.chains SET epoch = :epoch, verified_size = :size, "
            "verified_root = :root, frontier = :frontier, last_leaf_hash = :last, "
            "last_received_at = :received_at, halted_by = NULL WHERE id = :id"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "size": start_size,
            "root": start_root,
            "frontier": frontier,
            "last": last_leaf_hash,
            "received_at": last_received_at,
        },
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


# ---------------------------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------------------------

_SWEEP_COLUMNS = (
    "chain_id, epoch, number, requested, started_at, round_started_at, end_size, end_root, "
    "cursor, frontier, finished_at, result, finding_id"
)


async def sweep(connection: AsyncConnection, *, chain_id: int, lock: bool = False) -> Any | None:
    """The chain's current (or last) sweep pass; `lock`: FOR UPDATE, to change it."""
    result = await connection.execute(
        text(
            f"SELECT {_SWEEP_COLUMNS} FROM verifier.sweeps WHERE chain_id = :id"
            + (" FOR UPDATE" if lock else "")
        ),
        {"id": chain_id},
    )
    return result.first()


async def start_sweep(
    connection: AsyncConnection,
    *,
    chain_id: int,
    epoch: int,
    number: int,
    requested: str,
    started_at: datetime,
    end_size: int,
    end_root: bytes,
) -> None:
    """Make pass `number` the chain's current one; a scheduled pass also marks the chain as
    swept in the round that started at `started_at`."""
    await connection.execute(
        text(
            "INSERT INTO verifier.sweeps (chain_id, epoch, number, requested, started_at, "
            "round_started_at, end_size, end_root, cursor, frontier) VALUES (:id, :epoch, "
            ":number, :requested, :at, CASE WHEN :requested = 'schedule' THEN "
            "CAST(:at AS timestamptz) END, :size, :root, 0, ''::bytea) "
            "ON CONFLICT (chain_id) DO UPDATE SET epoch = excluded.epoch, "
            "number = excluded.number, requested = excluded.requested, "
            "started_at = excluded.started_at, "
            "round_started_at = coalesce(excluded.round_started_at, sweeps.round_started_at), "
            "end_size = excluded.end_size, end_root = excluded.end_root, cursor = 0, "
            "frontier = ''::bytea, finished_at = NULL, result = NULL, finding_id = NULL "
            # Never over a pass still running: of two racing to start the first pass of a
            # chain (no row to lock yet), the second joins the first.
            "WHERE sweeps.finished_at IS NOT NULL"
        ),
        {
            "id": chain_id,
            "epoch": epoch,
            "number": number,
            "requested": requested,
            "at": started_at,
            "size": end_size,
            "root": end_root,
        },
    )


async def advance_sweep(
    connection: AsyncConnection, *, chain_id: int, number: int, cursor: int, frontier: bytes
) -> None:
    await connection.execute(
        text(
            "UPDATE verifier.sweeps SET cursor = :cursor, frontier = :frontier "
            "WHERE chain_id = :id AND number = :number AND finished_at IS NULL"
        ),
        {"id": chain_id, "number": number, "cursor": cursor, "frontier": frontier},
    )


async def end_sweep(
    connection: AsyncConnection,
    *,
    chain_id: int,
    number: int,
    result: str,
    finished_at: datetime,
    finding_id: int | None,
    cursor: int | None = None,
) -> None:
    """End the pass (`cursor`: where it got, if it moved) and keep it, for good, in
    `verifier.sweep_passes`."""
    await connection.execute(
        text(
            "UPDATE verifier.sweeps SET finished_at = :at, result = :result, "
            "finding_id = :finding, cursor = coalesce(CAST(:cursor AS bigint), cursor) "
            "WHERE chain_id = :id AND number = :number AND finished_at IS NULL"
        ),
        {
            "id": chain_id,
            "number": number,
            "at": finished_at,
            "result": result,
            "finding": finding_id,
            "cursor": cursor,
        },
    )
    await connection.execute(
        text(
            "INSERT INTO verifier.sweep_passes (chain_id, number, epoch, requested, started_at, "
            "finished_at, size, result, finding_id) SELECT chain_id, number, epoch, requested, "
            "started_at, finished_at, cursor, result, finding_id FROM verifier.sweeps "
            "WHERE chain_id = :id AND number = :number"
        ),
        {"id": chain_id, "number": number},
    )


async def sweep_pass(connection: AsyncConnection, *, chain_id: int, number: int) -> Any | None:
    """Pass `number` of the chain (the current one, or one that ended), with its finding."""
    result = await connection.execute(
        text(
            "SELECT p.*, f.kind, f.first_bad_index FROM ("
            "SELECT number, epoch, requested, started_at, end_size, cursor, finished_at, "
            "result, finding_id FROM verifier.sweeps WHERE chain_id = :id AND number = :number "
            "UNION ALL SELECT number, epoch, requested, started_at, size, size, finished_at, "
            "result, finding_id FROM verifier.sweep_passes "
            "WHERE chain_id = :id AND number = :number) p "
            "LEFT JOIN verifier.findings f ON f.id = p.finding_id LIMIT 1"
        ),
        {"id": chain_id, "number": number},
    )
    return result.first()


async def last_passed_sweep(connection: AsyncConnection, *, chain_id: int, epoch: int) -> Any:
    result = await connection.execute(
        text(
            "SELECT number, started_at, finished_at, size FROM verifier.sweep_passes "
            "WHERE chain_id = :id AND epoch = :epoch AND result = 'passed' "
            "ORDER BY number DESC LIMIT 1"
        ),
        {"id": chain_id, "epoch": epoch},
    )
    return result.first()


async def latest_round_start(connection: AsyncConnection) -> datetime | None:
    """When the sweep's current (or last) round started."""
    result = await connection.execute(text("SELECT max(round_started_at) FROM verifier.sweeps"))
    value: datetime | None = result.scalar()
    return value


async def watched_entries(connection: AsyncConnection) -> int:
    """Entries the sweep re-reads each period: every cosigned entry of every chain not halted."""
    result = await connection.execute(
        text("SELECT coalesce(sum(verified_size), 0) FROM verifier.chains WHERE halted_by IS NULL")
    )
    return int(result.scalar_one())


_CHAIN_SWEEP_QUERY = (
    "SELECT c.id, c.tenant, c.chain, c.epoch, c.verified_size, c.halted_by, "
    "s.epoch AS sweep_epoch, s.number, s.requested, s.started_at, s.round_started_at, "
    "s.end_size, s.cursor, s.finished_at "
    "FROM verifier.chains c LEFT JOIN verifier.sweeps s ON s.chain_id = c.id"
)


async def chains_with_sweeps(connection: AsyncConnection) -> list[Any]:
    """Every chain followed, with its current (or last) sweep pass, if any."""
    result = await connection.execute(text(f"{_CHAIN_SWEEP_QUERY} ORDER BY c.tenant, c.chain"))
    return list(result)


async def chain_with_sweep(connection: AsyncConnection, *, chain_id: int) -> Any:
    result = await connection.execute(
        text(f"{_CHAIN_SWEEP_QUERY} WHERE c.id = :id"), {"id": chain_id}
    )
    return result.one()


async def halted_count(connection: AsyncConnection) -> int:
    result = await connection.execute(
        text("SELECT count(*) FROM verifier.chains WHERE halted_by IS NOT NULL")
    )
    return int(result.scalar_one())


# -----------------------------------------------------------------------------------------------
# Completeness of each chain's producers (verifier.completeness)
# -----------------------------------------------------------------------------------------------


async def source_states(
    connection: AsyncConnection, *, chain_id: int, sources: list[str] | None = None
) -> list[Any]:
    """(source, state) of the chain's sources, all of them or those named, by source."""
    only = "" if sources is None else "AND source = ANY(:sources)"
    result = await connection.execute(
        text(
            "SELECT source, state FROM verifier.source_completeness "
            f"WHERE chain_id = :id {only} ORDER BY source"
        ),
        {"id": chain_id} if sources is None else {"id": chain_id, "sources": sources},
    )
    return list(result)


async def restart_completeness(
    connection: AsyncConnection, *, chain_id: int, epoch: int, start: int
) -> None:
    """Forget the chain's folded state: the fold starts again at `start` of `epoch`."""
    await connection.execute(
        text("DELETE FROM verifier.source_completeness WHERE chain_id = :id"), {"id": chain_id}
    )
    await connection.execute(
        text(
            "UPDATE verifier.chains SET completeness_epoch = :epoch, completeness_start = :start, "
            "completeness_size = :start WHERE id = :id"
        ),
        {"id": chain_id, "epoch": epoch, "start": start},
    )


async def save_source_states(
    connection: AsyncConnection, *, chain_id: int, size: int, states: list[dict[str, Any]]
) -> None:
    """Store the sources' new state, folded up to `size`."""
    if states:
        await connection.execute(
            text(
                "INSERT INTO verifier.source_completeness (chain_id, source, state) "
                "VALUES (:id, :source, CAST(:state AS jsonb)) "
                "ON CONFLICT (chain_id, source) DO UPDATE SET state = EXCLUDED.state"
            ),
            [
                {"id": chain_id, "source": state["source"], "state": orjson.dumps(state).decode()}
                for state in states
            ],
        )
    await connection.execute(
        text("UPDATE verifier.chains SET completeness_size = :size WHERE id = :id"),
        {"id": chain_id, "size": size},
    )


async def silent_sources(
    connection: AsyncConnection, *, now: datetime, chain_id: int | None = None
) -> int:
    """Sources silent at `now` (of one chain, or of every chain followed): as
    `ledger.completeness.judge` says, an interval declared, not closed, and nothing received
    for more than `SILENCE_SLACK` intervals."""
    only = "" if chain_id is None else "AND chain_id = :chain_id "
    result = await connection.execute(
        text(
            "SELECT count(*) FROM verifier.source_completeness "
            "WHERE state ->> 'heartbeat_interval' IS NOT NULL "
            "AND state ->> 'last_received_at' IS NOT NULL "
            "AND NOT coalesce((state ->> 'closed')::boolean, false) "
            f"{only}"
            "AND extract(epoch FROM CAST(:now AS timestamptz) "
            "- (state ->> 'last_received_at')::timestamptz) "
            "> :slack * (state ->> 'heartbeat_interval')::double precision"
        ),
        {"now": now, "slack": SILENCE_SLACK} | ({} if chain_id is None else {"chain_id": chain_id}),
    )
    return int(result.scalar_one())


async def open_gaps_total(connection: AsyncConnection) -> int:
    """Missing ranges over every chain and source the verifier follows."""
    result = await connection.execute(
        text(
            "SELECT coalesce(sum(jsonb_array_length(state -> 'missing')), 0) "
            "FROM verifier.source_completeness"
        )
    )
    return int(result.scalar_one())
