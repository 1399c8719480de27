"""The projector: follows every chain's committed entries and folds them into the read model.

It runs beside the appenders, never inside their transactions: an append commits, wakes the
projector (``mark_grown``), and the projector reads the new entries in index order, folds them
(``projection.fold_batch``) and commits the rows it changed together with its new position.
A poll picks up chains that grew in other processes. Any number of projectors may run (one per
worker or replica): the position row lock gives each chain to one of them at a time.

The read model is disposable: ``rebuild`` truncates it and replays every chain from index 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.background import BackgroundLoop
from decision_log.db import driver_connection
from decision_log.decisions import repository
from decision_log.decisions.event_types import DECISION_EVENT_TYPES, MODEL_DEPLOYED
from decision_log.decisions.projection import (
    DecisionRow,
    ProjectedEntry,
    decisions_touched,
    fold_batch,
)

log = logging.getLogger(__name__)

# The per-tenant chain the log writes access records to (decisions/access.py); never projected.
ACCESS_CHAIN = "access-log"
READ_TYPES = sorted((*DECISION_EVENT_TYPES, MODEL_DEPLOYED))


class Projector(BackgroundLoop):
    name = "decision-projector"

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        poll_seconds: float = 1.0,
        batch_size: int = 2000,
        linger_seconds: float = 0.2,
    ) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self._linger = linger_seconds
        self._batch_size = batch_size
        super().__init__()

    def mark_grown(self, _chain_id: int) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                self._wake.clear()
                await self.catch_up()
                # Let commits accumulate: one pass over many entries costs far less than one
                # pass per group commit, and the read model may trail the log by this much.
                await asyncio.sleep(self._linger)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("decision projection failed; retrying")
                await asyncio.sleep(self._poll)

    async def catch_up(self, *, wait_for_others: bool = False) -> int:
        """Project every chain up to its committed size; returns the entries projected here.

        With ``wait_for_others``, chains another projector holds are waited for, so that on
        return every chain is projected at least up to its size when this began.
        """
        total = 0
        targets: dict[int, int] | None = None
        while True:
            async with driver_connection(self._engine) as connection:
                behind = await repository.chains_behind(connection, skip_slug=ACCESS_CHAIN)
            if targets is None:
                targets = {chain_id: size for chain_id, _, size in behind}
            progressed = 0
            for chain_id, tenant_id, _ in behind:
                progressed += await self.project_batch(chain_id=chain_id, tenant_id=tenant_id)
            total += progressed
            if progressed:
                continue
            if not wait_for_others or not any(chain_id in targets for chain_id, _, _ in behind):
                return total
            await asyncio.sleep(0.05)

    async def project_batch(self, *, chain_id: int, tenant_id: int) -> int:
        """Fold the next entries of one chain, commit rows and position together."""
        async with driver_connection(self._engine) as connection, connection.transaction():
            position = await repository.lock_position(connection, chain_id=chain_id)
            if position is None:
                return 0  # another projector has this chain right now
            records = await repository.entries_from(
                connection,
                chain_id=chain_id,
                start=position,
                limit=self._batch_size,
                read_types=READ_TYPES,
            )
            if not records:
                return 0
            entries = [
                ProjectedEntry(
                    idx=record["idx"],
                    received_at=record["received_at"],
                    event_type=record["event_type"],
                    subject=record["subject"],
                    event=None if record["leaf"] is None else orjson.loads(record["leaf"])["event"],
                )
                for record in records
            ]
            touched = decisions_touched(entries)
            rows: dict[str, DecisionRow | None] = dict.fromkeys(touched)
            if touched:
                rows.update(
                    await repository.decisions_by_ids(
                        connection, chain_id=chain_id, decision_ids=touched
                    )
                )
            batch = fold_batch(entries, rows, chain_id=chain_id, tenant_id=tenant_id)
            await repository.upsert_decisions(
                connection, [row for row in batch.decisions.values() if row is not None]
            )
            await repository.insert_timeline(connection, batch.timeline)
            await repository.insert_deployments(connection, batch.deployments)
            await repository.set_position(
                connection,
                chain_id=chain_id,
                next_idx=entries[-1].idx + 1,
                unprojectable=batch.unprojectable,
            )
            return len(entries)


async def rebuild(engine: AsyncEngine) -> int:
    """Empty the read model and replay every chain from its first entry.

    The truncate commits first, so searches never wait behind the replay (they see the read
    model fill up again); a projector running in the service meanwhile takes its share of the
    chains through the same position locks, which keeps the result identical.
    """
    async with driver_connection(engine) as connection:
        await repository.truncate_read_model(connection)
    return await Projector(engine=engine).catch_up(wait_for_others=True)
