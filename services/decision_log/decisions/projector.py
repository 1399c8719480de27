"""The projector: follows every chain's committed entries and folds them into the read model.

It runs beside the appenders, never inside their transactions: an append commits, wakes the
projector (``mark_grown``), and the projector reads the new entries in index order, folds them
(``projection.fold_batch``) and commits the rows it changed together with its new position.
A poll picks up chains that grew in other processes. Any number of projectors may run (one per
worker or replica): the position row lock gives each chain to one of them at a time.

One chain never stops another. Each chain is projected in a transaction of its own, and its
batch in a savepoint inside it: if the batch fails, the savepoint is rolled back and, still
under the position lock, the chain's status records the error (short, no traceback) and when to
try again, doubling from ``retry_first_seconds`` up to ``retry_max_seconds``; other chains, of
any tenant, go on. A failure that depends on the entries' content (a data error, or the fold
raising) is narrowed down first by halving the batch, so the entries before the one at fault
are projected and the chain's status points at that entry. The first attempt that makes
progress clears the failure, so projection resumes by itself once the cause is gone (a lock
released, a fixed version deployed). Values no column can take are not failures: the fold
projects them as unprojectable (projection.py).

The read model is disposable: ``rebuild`` truncates it and replays every chain from index 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import orjson
from http_edge.outages import DatabaseFault, classify
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log import metrics
from decision_log.background import BackgroundLoop
from decision_log.db import driver_connection
from decision_log.decisions import genai, repository
from decision_log.decisions.event_types import GENAI_INVOCATION, MODEL_DEPLOYED
from decision_log.decisions.projection import (
    PROJECTED_TYPES,
    DecisionRow,
    ProjectedBatch,
    ProjectedEntry,
    decisions_touched,
    fold_batch,
    project_genai,
)
from decision_log.decisions.repository import ChainBehind

log = logging.getLogger(__name__)

# The per-tenant chain the log writes access records to (decisions/access.py); never projected.
ACCESS_CHAIN = "access-log"
READ_TYPES = sorted((*PROJECTED_TYPES, MODEL_DEPLOYED, GENAI_INVOCATION))
# SQLSTATE classes of errors caused by the values written: data exception, integrity constraint
# violation, program limit exceeded (an index row too large)
# (https://www.postgresql.org/docs/current/errcodes-appendix.html).
CONTENT_ERROR_CLASSES = ("22", "23", "54")
MAX_ERROR_CHARS = 300


class Projector(BackgroundLoop):
    name = "decision-projector"

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        poll_seconds: float = 1.0,
        batch_size: int = 2000,
        linger_seconds: float = 0.2,
        lock_timeout_seconds: float = 1.0,
        retry_first_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
    ) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self._linger = linger_seconds
        self._batch_size = batch_size
        self._lock_timeout_ms = max(1, round(lock_timeout_seconds * 1000))
        self._retry_first = retry_first_seconds
        self._retry_max = retry_max_seconds
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
                await self._report_backlog()
                # Let commits accumulate: one pass over many entries costs far less than one
                # pass per group commit, and the read model may trail the log by this much.
                await asyncio.sleep(self._linger)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if database_unavailable(error):
                    log.warning("decision projection waits for the database: %s", describe(error))
                else:
                    log.exception("decision projection failed; retrying")
                await asyncio.sleep(self._poll)

    async def _report_backlog(self) -> None:
        async with driver_connection(self._engine) as connection:
            behind, failing = await repository.projection_backlog(
                connection, skip_slug=ACCESS_CHAIN
            )
        metrics.PROJECTOR_BEHIND.set(behind)
        metrics.PROJECTOR_FAILING_CHAINS.set(failing)

    async def catch_up(self, *, wait_for_others: bool = False) -> int:
        """Project every chain up to its committed size; returns the entries projected here.

        A chain whose projection fails is left at the entry it stopped at, with its error
        recorded, and is not waited for. With ``wait_for_others``, chains another projector
        holds are waited for, so that on return every chain that is not failing is projected at
        least up to its size when this began.
        """
        total = 0
        targets: set[int] | None = None
        while True:
            async with driver_connection(self._engine) as connection:
                behind = await repository.chains_behind(connection, skip_slug=ACCESS_CHAIN)
            if targets is None:
                targets = {chain.chain_id for chain in behind}
            progressed = 0
            for chain in behind:
                try:
                    projected = await self.project_chain(chain)
                except Exception as error:
                    if database_unavailable(error):
                        raise  # not this chain's fault: the whole pass waits
                    # Failed where its status could not record it (e.g. waiting for the
                    # position's lock); the next pass tries again.
                    log.warning(
                        "projection of chain %d failed: %s", chain.chain_id, describe(error)
                    )
                    targets.discard(chain.chain_id)
                    continue
                if projected is None:
                    targets.discard(chain.chain_id)
                else:
                    progressed += projected
            total += progressed
            if progressed:
                continue
            if not wait_for_others or not any(chain.chain_id in targets for chain in behind):
                return total
            await asyncio.sleep(0.05)

    async def project_chain(self, chain: ChainBehind) -> int | None:
        """Fold the chain's next entries, committing rows and position together; the number
        projected (0 if another projector holds the chain), or None if it failed."""
        async with driver_connection(self._engine) as connection, connection.transaction():
            position = await repository.lock_position(
                connection, chain_id=chain.chain_id, lock_timeout_ms=self._lock_timeout_ms
            )
            if position is None:
                return 0  # another projector has this chain right now
            # A chain that failed last time tries the entry it stopped at alone first.
            limit = 1 if position.attempts else self._batch_size
            while True:
                try:
                    async with connection.transaction():  # a savepoint
                        return await self._project_entries(
                            connection, chain=chain, start=position.next_idx, limit=limit
                        )
                except Exception as error:
                    if database_unavailable(error):
                        raise
                    if limit > 1 and depends_on_content(error):
                        limit //= 2  # the entry at fault is among the first `limit` entries
                        continue
                    await self._record_failure(connection, chain, position, error)
                    return None

    async def _project_entries(
        self, connection: asyncpg.Connection, *, chain: ChainBehind, start: int, limit: int
    ) -> int:
        records = contiguous(
            await repository.entries_from(
                connection, chain_id=chain.chain_id, start=start, limit=limit, read_types=READ_TYPES
            ),
            start=start,
        )
        if not records:
            if chain.size > start:
                # Committed entries are a gapless prefix (repository.entries_from): one the
                # chain's head counts and the store lacks was removed behind the log's back.
                # Said where the chain's status shows it, not waited for in silence.
                raise MissingEntry(
                    f"entry {start} is missing from the store, though the chain holds "
                    f"{chain.size} entries"
                )
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
                    connection, chain_id=chain.chain_id, decision_ids=touched
                )
            )
        batch = fold_batch(entries, rows, chain_id=chain.chain_id, tenant_id=chain.tenant_id)
        await self._fold_genai(connection, chain=chain, entries=entries, batch=batch)
        await repository.upsert_decisions(
            connection, [row for row in batch.decisions.values() if row is not None]
        )
        await repository.insert_timeline(connection, batch.timeline)
        await repository.insert_deployments(connection, batch.deployments)
        await repository.set_position(
            connection,
            chain_id=chain.chain_id,
            next_idx=entries[-1].idx + 1,
            unprojectable=batch.unprojectable,
        )
        return len(entries)

    async def _fold_genai(
        self,
        connection: asyncpg.Connection,
        *,
        chain: ChainBehind,
        entries: list[ProjectedEntry],
        batch: ProjectedBatch,
    ) -> None:
        """Add the batch's GenAI spans to their traces (decisions/genai.py): their timeline
        rows and decision rows into ``batch``; spans and merges of decisions written here."""
        nodes = [
            node
            for entry in entries
            if entry.event_type == GENAI_INVOCATION and entry.event is not None
            for node in (genai.span_node(entry.idx, entry.received_at, entry.event),)
            if node is not None
        ]
        if not nodes:
            return
        known = await repository.genai_spans_of_traces(
            connection, chain_id=chain.chain_id, trace_ids={node.trace_id for node in nodes}
        )
        fold = genai.fold_spans(known, nodes)
        await repository.merge_decisions(connection, chain_id=chain.chain_id, merges=fold.merges)
        for merged, _ in fold.merges:
            batch.decisions.pop(merged, None)
        await repository.upsert_genai_spans(
            connection, chain_id=chain.chain_id, nodes=[fold.nodes[key] for key in fold.changed]
        )
        missing = fold.decisions - batch.decisions.keys()
        found = await repository.decisions_by_ids(
            connection, chain_id=chain.chain_id, decision_ids=missing
        )
        for decision_id in fold.decisions:
            prior = batch.decisions.get(decision_id) or found.get(decision_id)
            batch.decisions[decision_id] = project_genai(
                prior,
                genai.members(fold.nodes.values(), decision_id),
                decision_id=decision_id,
                chain_id=chain.chain_id,
                tenant_id=chain.tenant_id,
            )
        batch.timeline.extend(
            (chain.chain_id, decision_id, idx, GENAI_INVOCATION)
            for decision_id, idx in fold.timeline
        )

    async def _record_failure(
        self,
        connection: asyncpg.Connection,
        chain: ChainBehind,
        position: repository.Position,
        error: Exception,
    ) -> None:
        metrics.PROJECTOR_ERRORS.inc()
        attempt = position.attempts + 1
        delay = retry_delay(attempt, first=self._retry_first, most=self._retry_max)
        reason = describe(error)
        await repository.record_failure(
            connection, chain_id=chain.chain_id, error=reason, retry_seconds=delay
        )
        log.warning(
            "projection of chain %d stopped at index %d (attempt %d, next in %g s): %s",
            chain.chain_id,
            position.next_idx,
            attempt,
            delay,
            reason,
        )


def retry_delay(attempt: int, *, first: float, most: float) -> float:
    """Seconds before the next try after ``attempt`` failed tries: doubling, capped."""
    return float(min(most, first * 2 ** min(attempt - 1, 32)))


def database_unavailable(error: BaseException) -> bool:
    """Whether the database, not this chain, is the trouble (no connection, a server out of
    resources or shutting down): then the whole pass waits, rather than each chain failing."""
    return classify(error) is DatabaseFault.UNAVAILABLE


class MissingEntry(Exception):
    """An entry the chain's head counts is not in the store."""


def contiguous(records: list[asyncpg.Record], *, start: int) -> list[asyncpg.Record]:
    """The records from index ``start`` up to the first one missing."""
    for offset, record in enumerate(records):
        if record["idx"] != start + offset:
            return records[:offset]
    return records


def depends_on_content(error: BaseException) -> bool:
    """Whether the values of the entries may be the cause, so that fewer entries may pass: a
    data error of PostgreSQL, or anything the fold or the decoding raised (not a missing
    entry, which fewer entries do not bring back)."""
    if isinstance(error, MissingEntry):
        return False
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate)[:2] in CONTENT_ERROR_CLASSES
    return not isinstance(error, TimeoutError | asyncpg.InterfaceError)


def describe(error: BaseException) -> str:
    """One line for logs and the chain's status: the kind of error, its SQLSTATE, its message
    (never a traceback, nor PostgreSQL's DETAIL, which may quote the values)."""
    message = " ".join(str(error).split())
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    code = getattr(error, "sqlstate", None)
    kind = type(error).__name__ if code is None else f"{type(error).__name__} (SQLSTATE {code})"
    return f"{kind}: {message}" if message else kind


async def rebuild(engine: AsyncEngine) -> int:
    """Empty the read model and replay every chain from its first entry.

    The truncate commits first, so searches never wait behind the replay (they see the read
    model fill up again); a projector running in the service meanwhile takes its share of the
    chains through the same position locks, which keeps the result identical.
    """
    async with driver_connection(engine) as connection:
        await repository.truncate_read_model(connection)
    return await Projector(engine=engine).catch_up(wait_for_others=True)
