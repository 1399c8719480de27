"""Acknowledging a finding: the chain continues in a new epoch, never re-certifying what was
tampered with.

A finding halts its chain. An operator who has looked at it (restored the log from a backup,
or accepted that history from the first bad index on was replaced) acknowledges it; the
acknowledgement is kept for good. The new epoch starts from the last checkpoint this verifier
cosigned *before* the finding's first bad index: a checkpoint of size s covers entries [0, s)
only, all of which were still as cosigned. Its root, the leaf hashes remembered below s (from
the epochs that replayed them, `verifier.remembered`) and the Merkle frontier rebuilt from
them carry over; entries from s on are replayed again from the log's raw bytes as new, and
checked against the old checkpoint by an RFC 6962 consistency proof like any others.

When no such checkpoint exists (the first bad index is under the first checkpoint ever
cosigned) the epoch starts from 0 and records `history_replaced`: everything the verifier had
cosigned is no longer what the log serves.

Either way, every later attestation whose range spans the finding names it, its first bad
index, and who acknowledged it, when and why (`verifier.attestations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.leaf import GENESIS_PREV
from ledger.merkle import EMPTY_ROOT, MerkleFrontier
from sqlalchemy.ext.asyncio import AsyncEngine

from verifier import repository
from verifier.problems import Conflict, NotFound
from verifier.remembered import MemoryGap, lineage, remembered_frontier


@dataclass(frozen=True)
class EpochStart:
    chain_id: int
    epoch: int
    start_size: int
    history_replaced: bool


async def acknowledge_finding(
    engine: AsyncEngine, *, finding_id: int, operator: str, reason: str, now: datetime
) -> EpochStart:
    """Record the acknowledgement and start the chain's next epoch (see the module docstring).

    The cosigned checkpoints, leaf hashes and findings of earlier epochs stay as they were."""
    async with engine.begin() as connection:
        row = await repository.finding_by_id(connection, finding_id=finding_id)
        if row is None:
            raise NotFound(f"no finding {finding_id}")
        if row.acknowledged is not None:
            raise Conflict(f"finding {finding_id} is already acknowledged")
        if row.halted_by != finding_id:
            raise Conflict(f"finding {finding_id} is not the one halting its chain")
        chain_id, epoch = int(row.chain_id), int(row.chain_epoch)
        chain_lineage = await lineage(connection, chain_id=chain_id, epoch=epoch)
        # 1. The last checkpoint cosigned before the first bad index (a finding that blames
        #    no entry, such as a badly signed checkpoint, keeps everything cosigned), in this
        #    epoch or, below its start, in the epoch it continues.
        bad = int(row.verified_size) if row.first_bad_index is None else int(row.first_bad_index)
        kept, kept_epoch = None, epoch
        for segment in chain_lineage.segments:
            limit = bad if segment.stop is None else min(bad, segment.stop)
            candidate = await repository.latest_cosigned(
                connection, chain_id=chain_id, epoch=segment.epoch, at_most=limit
            )
            if candidate is not None and (kept is None or candidate.size > kept.size):
                kept, kept_epoch = candidate, segment.epoch
        start_size = 0 if kept is None else int(kept.size)
        # 2. The state at that size, from what the verifier remembers: the frontier must
        #    rebuild the root it cosigned there, or its own store has been altered.
        frontier, last_leaf_hash = MerkleFrontier(), GENESIS_PREV
        start_root = EMPTY_ROOT
        if kept is not None and start_size:
            try:
                frontier, last_leaf_hash = await remembered_frontier(
                    connection, chain_id=chain_id, lineage=chain_lineage, size=start_size
                )
            except MemoryGap as gap:
                raise Conflict(f"the verifier cannot start the chain again: {gap}") from None
            start_root = bytes(kept.root_hash)
            if frontier.root() != start_root:
                raise Conflict(
                    "the verifier cannot start the chain again: the leaf hashes it remembers "
                    f"do not rebuild the root it cosigned at size {start_size}"
                )
        history_replaced = start_size == 0 and int(row.verified_size) > 0
        # 3. The new epoch, with the checkpoint it starts from carried over as cosigned.
        await repository.acknowledge(
            connection,
            finding_id=finding_id,
            chain_id=chain_id,
            operator=operator,
            reason=reason,
            at=now,
            epoch=epoch + 1,
            start_size=start_size,
            start_root=start_root,
            frontier=frontier.to_bytes(),
            last_leaf_hash=last_leaf_hash,
            # Unknown for checkpoints cosigned before it was kept: the next entry's time is
            # then checked against the ones after it only.
            last_received_at="" if kept is None else kept.last_received_at or "",
            history_replaced=history_replaced,
        )
        if kept is not None:
            await repository.carry_cosigned_into_epoch(
                connection,
                chain_id=chain_id,
                from_epoch=kept_epoch,
                to_epoch=epoch + 1,
                size=start_size,
            )
    return EpochStart(
        chain_id=chain_id,
        epoch=epoch + 1,
        start_size=start_size,
        history_replaced=history_replaced,
    )
