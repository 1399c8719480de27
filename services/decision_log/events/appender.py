"""Group commit: many append requests for one chain, one transaction, one lock.

Each process keeps a queue per chain and one writer task per busy chain. The writer takes every
request waiting (up to ``group_max_events`` events), locks the chain's head row, assigns the next
indexes, builds the leaves, extends the Merkle frontier, COPYs entries and completed Merkle nodes,
moves the head and commits; only then are the requests answered (invariant 1).

Why the head row lock is enough for any number of processes: every appender of a chain, in any
process, first takes ``SELECT ... FOR NO KEY UPDATE`` on that chain's row. PostgreSQL grants it to
one transaction at a time and a waiter, once granted, re-reads the newest committed row version
(READ COMMITTED, https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED),
so each group starts from the size the previous group committed: no gap, no fork, no duplicate
index (the primary key on (chain_id, idx) would reject one anyway). The idempotency lookup runs
after the lock is held, so it sees every entry committed before, whichever process wrote it.

The queue is bounded: events are admitted against the worker's budget (``admission``, shared
fairly by tenants) and a further append is refused with ``Overloaded`` (503 + Retry-After)
instead of growing memory; a request that waited longer than ``queue_timeout`` for its group is
refused before anything of it is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from http_edge.outages import DatabaseFault, classify, sqlstate_of
from ledger.leaf import LeafPrefix, format_received_at
from ledger.merkle import MerkleFrontier, leaf_hash
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log import metrics
from decision_log.db import driver_connection
from decision_log.events.admission import Admission, Ticket
from decision_log.events.cloudevents import PreparedEvent
from decision_log.problems import (
    IdempotencyConflict,
    InternalError,
    InvalidInput,
    Overloaded,
    Problem,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)
# A group commit that takes this long is worth a line of its own in the log.
NOTABLE_COMMIT_SECONDS = 0.25

Clock = Callable[[], datetime]

# Run under the chain's lock: the group's events already in the chain (idempotency) and those
# of its API keys revoked or expired by now, in one round trip.
# The idempotency key is (chain, source, type, id): KServe's payload logger gives an inference's
# request and response events one source and one id, told apart by their type only. The unique
# index entries_idempotency (migration 0008) is on exactly these columns.
KNOWN_AND_REFUSED = """
    SELECT e.source, e.event_type, e.event_id, e.idx, e.leaf_hash, e.received_at,
           e.content_digest, NULL::text AS refused_key
      FROM entries e
      JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(source, event_type, event_id)
        ON e.source = k.source AND e.event_type = k.event_type AND e.event_id = k.event_id
     WHERE e.chain_id = $1
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, key_id FROM api_keys
     WHERE key_id = ANY($5::text[])
       AND (revoked_at IS NOT NULL OR expires_at <= now() OR witness_id IS NOT NULL)
"""

# One statement writes a group of fewer than COPY_FROM_ENTRIES entries: its entries, the Merkle
# nodes it completed, and the new head. Array parameters (unnest) keep it a single round trip,
# and the prepared statement is reused from asyncpg's cache.
WRITE_GROUP = """
WITH new_entries AS (
    INSERT INTO entries (chain_id, idx, received_at, source, event_id, event_type, subject,
                         content_digest, leaf, leaf_hash, data_subject)
    SELECT $1, e.idx, $2, e.source, e.event_id, e.event_type, e.subject, e.digest, e.leaf,
           e.leaf_hash, e.data_subject
      FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[],
                  $9::bytea[], $10::bytea[], $11::text[])
           AS e(idx, source, event_id, event_type, subject, digest, leaf, leaf_hash, data_subject)
), new_nodes AS (
    INSERT INTO merkle_nodes (chain_id, level, idx, hash)
    SELECT $1, n.level, n.idx, n.hash
      FROM unnest($12::smallint[], $13::bigint[], $14::bytea[]) AS n(level, idx, hash)
)
UPDATE chains
   SET size = $15, last_leaf_hash = $16, frontier = $17, root_hash = $18, last_received_at = $2
 WHERE id = $1
"""

# A large group goes in by binary COPY instead: it costs PostgreSQL and the service less per
# entry than unnesting arrays (bench.floor, groups of 1,000: PostgreSQL 27 instead of 37 µs of
# CPU, the writer 9 instead of 15, half as many entries/s again), but takes three round trips
# where WRITE_GROUP takes one.
COPY_FROM_ENTRIES = 128
ENTRY_COLUMNS = (
    "chain_id",
    "idx",
    "received_at",
    "source",
    "event_id",
    "event_type",
    "subject",
    "content_digest",
    "leaf",
    "leaf_hash",
    "data_subject",
)
NODE_COLUMNS = ("chain_id", "level", "idx", "hash")
UPDATE_HEAD = """
UPDATE chains
   SET size = $2, last_leaf_hash = $3, frontier = $4, root_hash = $5, last_received_at = $6
 WHERE id = $1
"""


@dataclass(frozen=True, slots=True)
class ChainRef:
    chain_id: int
    tenant: str
    chain: str
    leaf_prefix: LeafPrefix


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the log promises for one event: it sits at this index with this leaf hash."""

    tenant: str
    chain: str
    index: int
    leaf_hash: bytes
    received_at: str
    replayed: bool


@dataclass(slots=True)
class _Pending:
    chain: ChainRef
    events: list[PreparedEvent]
    batch: bool
    key_id: str | None
    enqueued_at: float
    future: asyncio.Future[list[Receipt]] = field(repr=False)


class GroupCommitter:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        on_commit: Callable[[int], None],
        admission: Admission,
        group_max_events: int,
        retry_after_seconds: int,
        queue_timeout_seconds: float,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._on_commit = on_commit
        self.admission = admission
        self._group_max_events = group_max_events
        self._retry_after = retry_after_seconds
        self._queue_timeout = queue_timeout_seconds
        self._queues: dict[int, deque[_Pending]] = {}
        self._writers: dict[int, asyncio.Task[None]] = {}

    async def append(
        self,
        chain: ChainRef,
        events: list[PreparedEvent],
        *,
        batch: bool,
        key_id: str | None = None,
        ticket: Ticket | None = None,
    ) -> list[Receipt]:
        """Append events atomically (all or none); returns once they are committed.

        ``key_id``: the API key the producer used; checked again under the chain lock. None for
        events the log records itself (erasure, holds, access). ``ticket``: what the request
        already holds of the admission budgets (its body); the events are added to it here and
        given back once answered."""
        ticket = ticket or Ticket(chain.tenant)
        self.admission.reserve(ticket, "events", len(events))
        try:
            future: asyncio.Future[list[Receipt]] = asyncio.get_running_loop().create_future()
            self._queues.setdefault(chain.chain_id, deque()).append(
                _Pending(
                    chain=chain,
                    events=events,
                    batch=batch,
                    key_id=key_id,
                    enqueued_at=time.monotonic(),
                    future=future,
                )
            )
            if chain.chain_id not in self._writers:
                self._writers[chain.chain_id] = asyncio.create_task(
                    self._drain(chain.chain_id), name=f"append-chain-{chain.chain_id}"
                )
            return await future
        finally:
            self.admission.release(ticket, "events")

    async def close(self) -> None:
        for task in list(self._writers.values()):
            await asyncio.gather(task, return_exceptions=True)

    async def _drain(self, chain_id: int) -> None:
        queue = self._queues[chain_id]
        try:
            while queue:
                group = self._take_group(queue)
                if group:
                    await self._commit_and_answer(group)
        finally:
            del self._writers[chain_id]
            if not queue:
                self._queues.pop(chain_id, None)

    def _take_group(self, queue: deque[_Pending]) -> list[_Pending]:
        group: list[_Pending] = []
        count = 0
        deadline = time.monotonic() - self._queue_timeout
        while queue and (not group or count + len(queue[0].events) <= self._group_max_events):
            pending = queue.popleft()
            if pending.future.done():  # the client went away before anything was written
                continue
            if pending.enqueued_at < deadline:
                metrics.APPENDS_REFUSED.labels("queue_timeout").inc()
                pending.future.set_exception(
                    Overloaded(
                        "the append waited too long for its turn and was not written; retry",
                        retry_after=self._retry_after,
                    )
                )
                continue
            group.append(pending)
            count += len(pending.events)
        return group

    async def _commit_and_answer(self, group: list[_Pending]) -> None:
        """Commit a group and answer its requests. One request's data can fail the group's
        transaction only through a check that slipped past validation; then each request is
        committed apart, so only the one at fault fails (invariant 8). A database that is
        unreachable fails every request at once with 503, and nothing is retried behind the
        callers' backs."""
        began = time.perf_counter()
        try:
            results = await self._commit_group(group)
        except Exception as error:
            fault = classify(error)
            metrics.GROUP_COMMITS_FAILED.labels(fault.value.replace("-", "_")).inc()
            if fault is DatabaseFault.BAD_DATA and len(group) > 1:
                log.warning(
                    "group commit of chain %s refused by the database (%s); committing its "
                    "%d requests apart",
                    group[0].chain.chain_id,
                    sqlstate_of(error),
                    len(group),
                )
                for pending in group:
                    await self._commit_and_answer([pending])
                return
            problem = self._problem_for(error, fault, group[0].chain)
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(problem)
            return
        seconds = time.perf_counter() - began
        written = sum(len(r) for r in results if not isinstance(r, Problem))
        metrics.GROUP_COMMIT_SECONDS.observe(seconds)
        metrics.GROUP_COMMIT_EVENTS.observe(written)
        # A line for each notable group commit (a slow or a large one); every commit at debug
        # level. At one event a request a line per commit would double the logging per event,
        # and the group-commit series say the same.
        level = (
            logging.INFO if seconds >= NOTABLE_COMMIT_SECONDS or written >= 1000 else logging.DEBUG
        )
        if log.isEnabledFor(level):
            log.log(
                level,
                "group commit",
                extra={
                    "fields": {
                        "chain_id": group[0].chain.chain_id,
                        "requests": len(group),
                        "events": written,
                        "duration_ms": round(seconds * 1000, 2),
                    }
                },
            )
        metrics.ADMISSION_BYTES.set(self.admission.held("bytes"))
        metrics.ADMISSION_EVENTS.set(self.admission.held("events"))
        self._on_commit(group[0].chain.chain_id)
        for pending, result in zip(group, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, Problem):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)

    def _problem_for(self, error: Exception, fault: DatabaseFault, chain: ChainRef) -> Problem:
        if isinstance(error, Problem):
            return error
        if fault in (DatabaseFault.UNAVAILABLE, DatabaseFault.BUSY):
            metrics.APPENDS_REFUSED.labels("database").inc()
            log.warning(
                "group commit of chain %s: database %s (%s)",
                chain.chain_id,
                fault.value,
                type(error).__name__,
            )
            return Unavailable(
                f"the database is {fault.value}; nothing was written, retry shortly",
                retry_after=self._retry_after,
            )
        if fault is DatabaseFault.BAD_DATA:
            return InvalidInput(
                f"the database refused a value of this request ({sqlstate_of(error)}); "
                "nothing of it was written",
                pointer="",
            )
        log.error("group commit of chain %s failed", chain.chain_id, exc_info=error)
        return InternalError()

    async def _commit_group(self, group: list[_Pending]) -> list[list[Receipt] | Problem]:
        chain = group[0].chain
        keys = [
            (event.source, event.event_type, event.event_id)
            for pending in group
            for event in pending.events
        ]
        async with driver_connection(self._engine) as connection, connection.transaction():
            head = await connection.fetchrow(
                "SELECT size, last_leaf_hash, frontier, last_received_at FROM chains "
                "WHERE id = $1 FOR NO KEY UPDATE",
                chain.chain_id,
            )
            if head is None:
                raise Unavailable(f"chain {chain.chain} vanished")
            # One statement after the lock: the group's events already in the chain, and its
            # API keys revoked or expired by now. A revocation committed before this statement
            # began is seen; one committing later is ordered after this group, which may still
            # commit (READ COMMITTED).
            known: dict[tuple[str, str, str], tuple[int, bytes, str, bytes]] = {}
            refused_keys: set[str] = set()
            for row in await connection.fetch(
                KNOWN_AND_REFUSED,
                chain.chain_id,
                [key[0] for key in keys],
                [key[1] for key in keys],
                [key[2] for key in keys],
                sorted({p.key_id for p in group if p.key_id is not None}),
            ):
                if row["refused_key"] is not None:
                    refused_keys.add(row["refused_key"])
                    continue
                known[(row["source"], row["event_type"], row["event_id"])] = (
                    row["idx"],
                    bytes(row["leaf_hash"]),
                    format_received_at(row["received_at"]),
                    bytes(row["content_digest"]),
                )
            size: int = head["size"]
            prev = bytes(head["last_leaf_hash"])
            frontier = MerkleFrontier.from_bytes(size, bytes(head["frontier"]))
            now = self._clock()
            last = head["last_received_at"]
            # Receive times never go backwards along a chain, even if the clock does.
            received = now if last is None or now > last else last
            received_at = format_received_at(received)

            chain_id = chain.chain_id
            entry_rows: list[tuple[object, ...]] = []  # in the order of ENTRY_COLUMNS
            node_rows: list[tuple[int, int, int, bytes]] = []  # in the order of NODE_COLUMNS
            results: list[list[Receipt] | Problem] = []
            for pending in group:
                if pending.key_id in refused_keys:
                    results.append(Unauthenticated("the API key has been revoked or has expired"))
                    continue
                conflict = self._first_conflict(pending, known)
                if conflict is not None:
                    results.append(conflict)
                    continue
                receipts: list[Receipt] = []
                for event in pending.events:
                    key = (event.source, event.event_type, event.event_id)
                    seen = known.get(key)
                    if seen is not None:
                        receipts.append(
                            Receipt(chain.tenant, chain.chain, seen[0], seen[1], seen[2], True)
                        )
                        continue
                    leaf = chain.leaf_prefix.build(
                        index=size, received_at=received_at, prev=prev, event_json=event.event_json
                    )
                    hashed = leaf_hash(leaf)
                    for (level, index), node in frontier.append(hashed):
                        node_rows.append((chain_id, level, index, node))
                    entry_rows.append(
                        (
                            chain_id,
                            size,
                            received,
                            event.source,
                            event.event_id,
                            event.event_type,
                            event.subject,
                            event.content_digest,
                            leaf,
                            hashed,
                            event.data_subject,
                        )
                    )
                    known[key] = (size, hashed, received_at, event.content_digest)
                    receipts.append(
                        Receipt(chain.tenant, chain.chain, size, hashed, received_at, False)
                    )
                    prev = hashed
                    size += 1
                results.append(receipts)

            head_now = (size, prev, frontier.to_bytes(), frontier.root())
            if len(entry_rows) >= COPY_FROM_ENTRIES:
                await connection.copy_records_to_table(
                    "entries", records=entry_rows, columns=ENTRY_COLUMNS
                )
                if node_rows:
                    await connection.copy_records_to_table(
                        "merkle_nodes", records=node_rows, columns=NODE_COLUMNS
                    )
                await connection.execute(UPDATE_HEAD, chain_id, *head_now, received)
            elif entry_rows:
                entries = list(zip(*entry_rows, strict=True))
                nodes = list(zip(*node_rows, strict=True)) or [(), (), (), ()]
                await connection.execute(
                    WRITE_GROUP,
                    chain_id,
                    received,
                    entries[1],
                    *entries[3:],
                    *nodes[1:],
                    *head_now,
                )
        return results

    @staticmethod
    def _first_conflict(
        pending: _Pending, known: dict[tuple[str, str, str], tuple[int, bytes, str, bytes]]
    ) -> Problem | None:
        for position, event in enumerate(pending.events):
            seen = known.get((event.source, event.event_type, event.event_id))
            if seen is not None and seen[3] != event.content_digest:
                return IdempotencyConflict(
                    f"an event with source {event.source!r}, type {event.event_type!r} and id "
                    f"{event.event_id!r} is already at index {seen[0]} with other content; "
                    "nothing of this request was written",
                    pointer=f"/{position}/id" if pending.batch else "/id",
                    index=seen[0],
                )
        return None
