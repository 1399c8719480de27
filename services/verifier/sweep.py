"""The sweep: every entry of every chain the verifier follows is re-read from the log's raw leaf
bytes on a schedule, and compared with the leaf hash the verifier remembers for it.

The incremental check (`verifier.service`) reads each entry once, when it is new. Entries the
log changes afterwards (an old leaf edited in place, deleted, swapped, rewritten with its hashes
recomputed, the chain cut back) are invisible to it as long as the log's Merkle data still
proves its checkpoints. The sweep finds them within a stated time (DESIGN.md, invariant 7):

- A *pass* re-reads entries [0, end) of one chain, `end` being the size the verifier had
  cosigned when the pass started. It compares, from the raw bytes, each entry's index, its
  recomputed leaf hash and the verifier's remembered one (`verifier.history`), and at its end
  checks that the remembered hashes rebuild the root cosigned at `end`.
- A pass runs in windows of at most 65,536 entries. Its cursor and Merkle frontier are stored
  after each window (`verifier.sweeps`), so a restart resumes where it stopped.
- Each window is compared under the chain's cosigning lock, which is held for that window only:
  nothing is cosigned between a difference being seen and its finding halting the chain, and
  the incremental check waits for at most one window.
- The schedule runs in *rounds*: a round starts a pass of every chain followed, and the next
  round starts one period after it, once every chain is done with it. Chains with a pass
  running get one window each in turn; all windows are paced by one rate cap
  (`verifier.pacing`). If the cap cannot re-read every followed entry within a period, a
  warning is logged and the status says so (`rate_covers_period`).
- `POST .../verify?full=true` asks for a pass now (a job): it returns the pass running for the
  chain if there is one, else starts one, and drives it to its end in the background. A chain
  busy with such a pass when a round starts gets its round's pass when that one ends.

Rounds make the detection latency a number: a round re-reads everything cosigned when it
starts, within N / cap seconds for N entries, and the next starts within one period of any
moment; so a tamper of an entry already verified is found within one period plus N / cap
(docs/verifier.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from http_edge.outages import log_failure
from ledger.merkle import MerkleFrontier
from sqlalchemy.ext.asyncio import AsyncEngine

from verifier import metrics, repository
from verifier.history import MAX_WINDOW
from verifier.log_client import ChainName
from verifier.pacing import EntryRate
from verifier.problems import Conflict, NotFound, Problem
from verifier.remembered import MemoryGap
from verifier.replay import Finding
from verifier.service import ChainVerifier, Clock

log = logging.getLogger(__name__)

Requested = Literal["schedule", "on-demand"]


@dataclass(frozen=True)
class SweepCapacity:
    """Whether the rate cap re-reads every followed entry within one period."""

    watched_entries: int
    entries_per_period: int
    covers_period: bool


class Sweeper:
    def __init__(
        self,
        *,
        verifier: ChainVerifier,
        engine: AsyncEngine,
        clock: Clock,
        period_seconds: float,
        rate: EntryRate,
        window_entries: int = MAX_WINDOW,
        idle_seconds: float = 1.0,
    ) -> None:
        if not 1 <= window_entries <= MAX_WINDOW:
            raise ValueError(f"a sweep window is 1 to {MAX_WINDOW} entries")
        self._verifier = verifier
        self._engine = engine
        self._clock = clock
        self.period = timedelta(seconds=period_seconds)
        self.rate = rate
        self._window = window_entries
        self._idle = idle_seconds
        self._jobs: dict[ChainName, asyncio.Task[None]] = {}
        self._covered: bool | None = None
        self._task: asyncio.Task[None] | None = None

    # -----------------------------------------------------------------------------------------
    # Passes and windows
    # -----------------------------------------------------------------------------------------

    async def start_pass(
        self, name: ChainName, *, requested: Requested, started_at: datetime | None = None
    ) -> Any:
        """Start a pass of the chain, or return the one running: one pass per chain at a time
        (the chain's single `verifier.sweeps` row, locked while this is decided). A scheduled
        pass is started at its round's start."""
        state = await self._verifier.state(name)
        if state.halted_by is not None:
            raise Conflict(
                f"chain {name.chain!r} is halted by finding {state.halted_by}: nothing is "
                "re-read until it is acknowledged"
            )
        async with self._engine.begin() as connection:
            current = await repository.sweep(connection, chain_id=state.id, lock=True)
            if current is not None and current.finished_at is None:
                if int(current.epoch) == int(state.epoch):
                    return current
                # The chain went on in a new epoch: what this pass compared with is moot.
                await repository.end_sweep(
                    connection,
                    chain_id=state.id,
                    number=int(current.number),
                    result="abandoned",
                    finished_at=self._clock(),
                    finding_id=None,
                )
            await repository.start_sweep(
                connection,
                chain_id=state.id,
                epoch=int(state.epoch),
                number=1 if current is None else int(current.number) + 1,
                requested=requested,
                started_at=self._clock() if started_at is None else started_at,
                end_size=int(state.verified_size),
                end_root=bytes(state.verified_root),
            )
            return await repository.sweep(connection, chain_id=state.id)

    async def sweep_window(self, name: ChainName) -> int:
        """Re-read the next window of the chain's running pass; the entries compared (0 when
        no pass runs)."""
        compared = await self._sweep_window(name)
        metrics.SWEEP_ENTRIES.inc(compared)
        return compared

    async def _sweep_window(self, name: ChainName) -> int:
        verifier = self._verifier
        async with verifier.lock(name):
            state = await verifier.state(name)
            async with self._engine.connect() as connection:
                current = await repository.sweep(connection, chain_id=state.id)
            if current is None or current.finished_at is not None:
                return 0
            number = int(current.number)
            if state.halted_by is not None or int(current.epoch) != int(state.epoch):
                # Halted by the incremental check, or acknowledged into a new epoch meanwhile.
                await self._end(state, number, "abandoned", finding_id=state.halted_by)
                return 0
            start = int(current.cursor)
            stop = min(start + self._window, int(current.end_size))
            frontier = MerkleFrontier.from_bytes(start, bytes(current.frontier))
            evidence = {"sweep": {"pass": number, "window": [start, stop]}}
            if start < stop:
                try:
                    window = await verifier.history.compare_window(
                        name,
                        chain_id=state.id,
                        lineage=await verifier.history.lineage(state),
                        start=start,
                        stop=stop,
                        frontier=frontier,
                    )
                except MemoryGap as gap:
                    finding = _store_altered(str(gap), start)
                    await self._fail(name, state, number, finding, evidence, cursor=start)
                    return stop - start
                if window.difference is not None:
                    index = window.difference.index
                    finding = await verifier.history.diagnose(name, state, window.difference)
                    await self._fail(name, state, number, finding, evidence, cursor=index)
                    return index - start + 1
                frontier = window.frontier
            if stop < int(current.end_size):
                async with self._engine.begin() as connection:
                    await repository.advance_sweep(
                        connection,
                        chain_id=state.id,
                        number=number,
                        cursor=stop,
                        frontier=frontier.to_bytes(),
                    )
            elif frontier.root() != bytes(current.end_root):
                # Every entry matched what is remembered, yet the remembered hashes do not
                # rebuild the root cosigned: the verifier's own store was altered.
                detail = (
                    f"the leaf hashes remembered for [0, {stop}) do not rebuild the root "
                    "this verifier cosigned at that size"
                )
                finding = _store_altered(detail, None)
                await self._fail(name, state, number, finding, evidence, cursor=stop)
            else:
                await self._end(state, number, "passed", finding_id=None, cursor=stop)
            return stop - start

    async def _fail(
        self,
        name: ChainName,
        state: Any,
        number: int,
        finding: Finding,
        evidence: dict[str, Any],
        *,
        cursor: int,
    ) -> None:
        finding_id = await self._verifier.record_finding(name, state, finding, evidence=evidence)
        await self._end(state, number, "failed", finding_id=finding_id, cursor=cursor)

    async def _end(
        self,
        state: Any,
        number: int,
        result: str,
        *,
        finding_id: int | None,
        cursor: int | None = None,
    ) -> None:
        async with self._engine.begin() as connection:
            await repository.end_sweep(
                connection,
                chain_id=state.id,
                number=number,
                result=result,
                finished_at=self._clock(),
                finding_id=finding_id,
                cursor=cursor,
            )

    async def sweep_chain(self, name: ChainName, *, requested: Requested = "on-demand") -> Any:
        """Start a pass of the chain (or join the running one) and drive it to its end, paced;
        the pass as it ended."""
        current = await self.start_pass(name, requested=requested)
        return await self._drive(name, int(current.number))

    async def _drive(self, name: ChainName, number: int) -> Any:
        while True:
            current = await self.sweep_pass(name, number)
            if current.finished_at is not None:
                return current
            await self.rate.acquire(min(self._window, int(current.end_size - current.cursor)))
            await self.sweep_window(name)

    async def sweep_pass(self, name: ChainName, number: int) -> Any:
        state = await self._verifier.state(name)
        async with self._engine.connect() as connection:
            row = await repository.sweep_pass(connection, chain_id=state.id, number=number)
        if row is None:
            raise NotFound(f"chain {name.chain!r} has no sweep pass {number}")
        return row

    # -----------------------------------------------------------------------------------------
    # On demand: a pass as a background job
    # -----------------------------------------------------------------------------------------

    async def request_pass(self, name: ChainName) -> Any:
        """The pass re-reading the chain now: the running one, or a new one started on demand
        and driven in the background (first bringing the chain up to date incrementally)."""
        current = await self.start_pass(name, requested="on-demand")
        job = self._jobs.get(name)
        if job is None or job.done():
            self._jobs[name] = asyncio.create_task(
                self._run_job(name, int(current.number)), name=f"sweep-{name.tenant}/{name.chain}"
            )
        return current

    async def _run_job(self, name: ChainName, number: int) -> None:
        """Bring the chain up to date, drive the pass to its end (retrying what fails, as the
        schedule would), and attest when it passed. Nobody awaits a job: it logs, never
        raises."""
        what = f"the on-demand sweep of {name.tenant}/{name.chain}"
        with _logged(what + ": verifying first"):
            await self._verifier.verify(name)
        while True:
            with _logged(what + "; retrying"):
                ended = await self._drive(name, number)
                break
            await asyncio.sleep(self._idle)
        if ended.result == "passed":
            with _logged(what + ": attesting"):
                await self._verifier.attest(name, only_if_grown=False)

    # -----------------------------------------------------------------------------------------
    # The schedule
    # -----------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Start a round if one is due, then re-read one window of every chain not done with
        the round (round robin, paced); the entries re-read."""
        await self.capacity()
        async with self._engine.connect() as connection:
            chains = await repository.chains_with_sweeps(connection)
        now, read = self._clock(), 0
        followed = [c for c in chains if c.halted_by is None and int(c.verified_size) > 0]
        round_start = max(
            (c.round_started_at for c in chains if c.round_started_at is not None), default=None
        )
        if round_start is None or (
            now >= round_start + self.period
            and all(_done_with_round(c, round_start) for c in followed)
        ):
            round_start = now
        for row in followed:
            name = ChainName(row.tenant, row.chain)
            job = self._jobs.get(name)
            if _done_with_round(row, round_start) or (job is not None and not job.done()):
                continue
            try:
                if not _pass_running(row):
                    await self.start_pass(name, requested="schedule", started_at=round_start)
                    row = await self._sweep_row(int(row.id))
                await self.rate.acquire(min(self._window, int(row.end_size - row.cursor)))
                read += await self.sweep_window(name)
            except Problem as problem:
                log.warning("sweep of %s/%s: %s", *_n(name), problem.detail)
        return read

    async def _sweep_row(self, chain_id: int) -> Any:
        async with self._engine.connect() as connection:
            return await repository.chain_with_sweep(connection, chain_id=chain_id)

    async def status(self, state: Any) -> dict[str, Any]:
        """The chain's sweep as `verifier.schemas.SweepStatus` says it."""
        capacity = await self.capacity()
        async with self._engine.connect() as connection:
            current = await repository.sweep(connection, chain_id=state.id)
            swept = await repository.last_passed_sweep(
                connection, chain_id=state.id, epoch=int(state.epoch)
            )
            round_start = await repository.latest_round_start(connection)
        now = self._clock()
        running = (
            current is not None
            and current.finished_at is None
            and int(current.epoch) == int(state.epoch)
        )
        done = (
            round_start is None
            or state.halted_by is not None
            or int(state.verified_size) == 0
            or (current is not None and _done_with_round(current, round_start))
        )
        return {
            "current_pass": None if current is None else int(current.number),
            "running": running,
            "requested": None if current is None else current.requested,
            "cursor": 0 if current is None else int(current.cursor),
            "end": 0 if current is None else int(current.end_size),
            "started_at": None if current is None else current.started_at,
            "round_started_at": round_start,
            "next_round_at": None if round_start is None else round_start + self.period,
            "last_full_sweep_finished_at": None if swept is None else swept.finished_at,
            "last_full_sweep_size": None if swept is None else int(swept.size),
            "behind": not done and round_start is not None and now > round_start + self.period,
            "period_seconds": self.period.total_seconds(),
            "rate_entries_per_second": self.rate.per_second,
            "entries_per_period_at_cap": capacity.entries_per_period,
            "watched_entries": capacity.watched_entries,
            "rate_covers_period": capacity.covers_period,
        }

    async def capacity(self) -> SweepCapacity:
        """Whether the cap re-reads every followed entry within a period; a warning when it
        stops doing so."""
        async with self._engine.connect() as connection:
            watched = await repository.watched_entries(connection)
        per_period = int(self.rate.per_second * self.period.total_seconds())
        covers = watched <= per_period
        if not covers and self._covered is not False:
            log.warning(
                "the sweep re-reads at most %d entries per period of %s at %g entries/s, but "
                "the verifier follows %d: chains fall behind the period; raise "
                "AUDIT_TRAIL_VERIFIER_SWEEP_RATE_ENTRIES_PER_SECOND or the period",
                per_period,
                self.period,
                self.rate.per_second,
                watched,
            )
        self._covered = covers
        return SweepCapacity(
            watched_entries=watched, entries_per_period=per_period, covers_period=covers
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="verifier-sweep")

    async def stop(self) -> None:
        tasks = [*self._jobs.values(), *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                read = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Problem as problem:
                log.warning("sweep failed: %s", problem.detail)
                read = 0
            except Exception as error:
                log_failure(log, "sweep failed; retrying", error)
                read = 0
            if not read:
                await asyncio.sleep(self._idle)


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """Log a failure of a background step instead of raising it (cancellation goes through)."""
    try:
        yield
    except Problem as problem:
        log.warning("%s: %s", what, problem.detail)
    except Exception as error:
        log_failure(log, what, error)


def _pass_running(row: Any) -> bool:
    """The chain has a pass of its current epoch that has not ended."""
    return row.number is not None and row.finished_at is None and row.sweep_epoch == row.epoch


def _done_with_round(row: Any, round_start: datetime) -> bool:
    """The chain's pass of the round that started at `round_start` has ended (a row of
    `verifier.sweeps`, alone or joined to its chain)."""
    if row.round_started_at is None or row.round_started_at < round_start:
        return False
    this_rounds_pass = row.requested == "schedule" and row.started_at == row.round_started_at
    return not (this_rounds_pass and row.finished_at is None)


def _store_altered(detail: str, index: int | None) -> Finding:
    return Finding("verifier-store-altered", detail, index=index)


def _n(name: ChainName) -> tuple[str, str]:
    return name.tenant, name.chain
