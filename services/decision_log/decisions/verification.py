"""Projection verification (``audit-trail projections verify``): the read model rebuilt from the
entries alone, with the projector's own fold, and every difference from the live read model
reported as a ``projection-mismatch``: chain, decision id, column, expected (from the entries)
and found (in the read model).

The read model is an index (DESIGN.md, invariant 7): searches filter on it, and selective
exports take their entry indexes from its timelines. A row edited in place (a decision's
``current_decision``), edited out of a filter (its ``model_name``) or lost (a timeline row, so
that an export of the decision would miss an event) contradicts nothing a view checks on its
own; only a rebuild shows it. One run:

1. takes the verification lock (one run at a time, whatever the process), and opens one
   REPEATABLE READ transaction: everything below sees one snapshot of the live tables;
2. creates scratch tables shadowing the read model's (temporary, dropped with the transaction:
   nothing of a run outlives it, even a crash);
3. folds, for every chain, the entries below the live read model's position into them, with the
   projector's own code (``Projector._project_entries``: the entries' reads, the fold, the
   writes): what the live read model must hold, exactly;
4. compares scratch and live in PostgreSQL (a full join per table, only differing rows come
   back) and turns each differing column into a mismatch.

Mismatches are logged at ERROR, one line each (the first ``LOGGED_MISMATCHES``) and a summary,
and every run is recorded in ``projection_checks`` (with at most ``MAX_ROWS`` mismatches of each
kind; their total is counted). The CLI exits 1 when there is any. ``ScheduledVerification`` runs
it in the decision_log every ``projection_verify_seconds`` (default an hour); deploy/kubernetes
runs the CLI as a CronJob instead.

Cost: one fold of every projected entry (the projector's own work) and a hash join per table,
once per period: about 2 minutes of one core per million entries on a shared 2-core machine
(docs/exports.md, Performance). A chain whose entries were deleted or rewritten in the
store is folded as it is now: its mismatches then show the tamper as the read model sees it
(the verifier reports the tamper itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.background import BackgroundLoop
from decision_log.db import driver_connection
from decision_log.decisions import verification_repository as repository
from decision_log.decisions.projection import DECISION_COLUMNS
from decision_log.decisions.projector import (
    ACCESS_CHAIN,
    MissingEntry,
    Projector,
    database_unavailable,
    describe,
)
from decision_log.decisions.repository import ChainBehind

log = logging.getLogger(__name__)

MISMATCH_KIND = "projection-mismatch"
LOGGED_MISMATCHES = 100
KEEP_DAYS = 90
FOLD_BATCH = 2000


@dataclass(frozen=True, slots=True)
class ReadModelMismatch:
    """One column (or timeline or deployment row) of the read model that the entries do not
    support: ``expected`` is what the fold of the entries gives, ``found`` what is stored."""

    tenant: str
    chain: str
    decision_id: str | None
    column: str
    expected: str | None
    found: str | None
    kind: str = MISMATCH_KIND

    def describe(self) -> str:
        decision = "" if self.decision_id is None else f" decision {self.decision_id!r}"
        return (
            f"{self.kind} in {self.tenant}/{self.chain}{decision}, {self.column}: "
            f"expected {self.expected!r}, found {self.found!r}"
        )


@dataclass
class ProjectionCheck:
    """What one run checked and found."""

    started_at: datetime
    finished_at: datetime
    chains: int
    entries: int
    mismatches: list[ReadModelMismatch] = field(default_factory=list)
    mismatch_count: int = 0  # all of them; ``mismatches`` holds at most MAX_ROWS of each kind

    def summary(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "chains": self.chains,
            "entries": self.entries,
            "mismatch_count": self.mismatch_count,
            "mismatches": [asdict(mismatch) for mismatch in self.mismatches],
        }


Clock = Callable[[], datetime]


async def verify_projections(
    engine: AsyncEngine,
    *,
    clock: Clock,
    wait: bool = True,
    tenants: Sequence[str] | None = None,
    chain_ids: Sequence[int] | None = None,
) -> ProjectionCheck | None:
    """Rebuild the read model of every chain (or only the chains of ``tenants``, or of
    ``chain_ids``) in scratch tables, compare it with the live one, log and record what
    differs. None if another run holds the lock and ``wait`` is false."""
    started = clock()
    async with driver_connection(engine) as connection:
        transaction = connection.transaction(isolation="repeatable_read")
        await transaction.start()
        try:
            if not await repository.take_lock(connection, wait=wait):
                return None
            live = await repository.live_schema(connection)
            chains = await repository.projected_chains(
                connection,
                live=live,
                skip_slug=ACCESS_CHAIN,
                tenants=tenants,
                chain_ids=chain_ids,
            )
            await repository.create_scratch_tables(connection, live=live)
            await repository.insert_scratch_positions(
                connection, chain_ids=[chain.chain_id for chain in chains]
            )
            check = ProjectionCheck(
                started_at=started,
                finished_at=started,
                chains=len(chains),
                entries=sum(chain.position for chain in chains),
            )
            folded = await _fold_all(Projector(engine=engine), connection, chains, check)
            await _compare(connection, live=live, chains=folded, check=check)
        finally:
            await transaction.rollback()  # the scratch tables go with it
        check.finished_at = clock()
        await repository.insert_check(
            connection,
            started_at=check.started_at,
            finished_at=check.finished_at,
            chains=check.chains,
            entries=check.entries,
            mismatch_count=check.mismatch_count,
            mismatches=orjson.dumps([asdict(m) for m in check.mismatches]).decode(),
            keep_days=KEEP_DAYS,
        )
    _log(check)
    return check


async def _fold_all(
    projector: Projector,
    connection: Any,
    chains: Sequence[repository.ProjectedChain],
    check: ProjectionCheck,
) -> list[repository.ProjectedChain]:
    """Fold every chain into the scratch tables; the chains that could be folded."""
    folded = []
    for chain in chains:
        try:
            async with connection.transaction():  # a savepoint: one chain at a time
                await _fold(projector, connection, chain)
        except Exception as error:
            if database_unavailable(error):
                raise
            # Entries the live projector folded and this fold could not: the chain cannot be
            # compared, which is itself a finding.
            check.mismatches.append(
                ReadModelMismatch(chain.tenant, chain.chain, None, "fold", None, describe(error))
            )
            check.mismatch_count += 1
            continue
        folded.append(chain)
    return folded


async def _fold(projector: Projector, connection: Any, chain: repository.ProjectedChain) -> None:
    """The chain's entries below the live position, folded into the scratch tables by the
    projector's own code (reads, fold, writes), a batch at a time."""
    behind = ChainBehind(chain.chain_id, chain.tenant_id, chain.position)
    start = 0
    while start < chain.position:
        limit = min(FOLD_BATCH, chain.position - start)
        try:
            folded = await projector._project_entries(  # the projector's own step, as it runs
                connection, chain=behind, start=start, limit=limit
            )
        except MissingEntry:
            # The rebuild stops where the store does; what the live rows hold beyond it is
            # reported by the comparison.
            return
        if not folded:
            return
        start = await repository.scratch_position(connection, chain_id=chain.chain_id)


async def _compare(
    connection: Any,
    *,
    live: str,
    chains: Sequence[repository.ProjectedChain],
    check: ProjectionCheck,
) -> None:
    names = {chain.chain_id: (chain.tenant, chain.chain) for chain in chains}
    ids = list(names)

    def mismatch(
        chain_id: int, decision_id: str | None, column: str, expected: Any, found: Any
    ) -> None:
        tenant, chain = names.get(chain_id, ("?", f"chain #{chain_id}"))
        check.mismatches.append(
            ReadModelMismatch(tenant, chain, decision_id, column, _text(expected), _text(found))
        )

    rows, total = await repository.differing_decisions(connection, live=live, chain_ids=ids)
    counted = 0
    for row in rows:
        if row["s_chain_id"] is None or row["l_chain_id"] is None:
            absent = row["l_chain_id"] is None
            mismatch(
                row["chain_id"],
                row["decision_id"],
                "row",
                "a row" if absent else None,
                None if absent else "a row",
            )
            counted += 1
            continue
        for column in DECISION_COLUMNS:
            if row[f"s_{column}"] != row[f"l_{column}"]:
                mismatch(
                    row["chain_id"],
                    row["decision_id"],
                    column,
                    row[f"s_{column}"],
                    row[f"l_{column}"],
                )
                counted += 1
    check.mismatch_count += counted + max(0, total - len(rows))
    rows, total = await repository.differing_timelines(connection, live=live, chain_ids=ids)
    for row in rows:
        mismatch(
            row["chain_id"],
            row["decision_id"],
            "timeline",
            None if row["s_event_type"] is None else f"entry {row['idx']}: {row['s_event_type']}",
            None if row["l_event_type"] is None else f"entry {row['idx']}: {row['l_event_type']}",
        )
    check.mismatch_count += total
    rows, total = await repository.differing_deployments(connection, live=live, chain_ids=ids)
    for row in rows:
        deployment = f"{row['model_name']} {row['model_version']} at entry {row['idx']}"
        mismatch(
            row["chain_id"],
            None,
            "model_deployments",
            deployment if row["in_scratch"] else None,
            None if row["in_scratch"] else deployment,
        )
    check.mismatch_count += total
    rows, total = await repository.differing_spans(connection, live=live, chain_ids=ids)
    for row in rows:
        span = f"span {row['span']}"
        mismatch(
            row["chain_id"],
            row["decision_id"],
            "genai_spans",
            span if row["in_scratch"] else None,
            span + (" (differs)" if row["in_scratch"] else "") if row["in_live"] else None,
        )
    check.mismatch_count += total
    rows, total = await repository.differing_positions(connection, live=live, chain_ids=ids)
    for row in rows:
        for column in ("unprojectable_entries", "last_unprojectable_idx"):
            if row[f"s_{column}"] != row[f"l_{column}"]:
                mismatch(row["chain_id"], None, column, row[f"s_{column}"], row[f"l_{column}"])
    check.mismatch_count += total


def _text(value: Any) -> str | None:
    """A column's value as the mismatch shows it."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _log(check: ProjectionCheck) -> None:
    seconds = (check.finished_at - check.started_at).total_seconds()
    if not check.mismatch_count:
        log.info(
            "projection verify: %d chains, %d entries folded in %.1f s: the read model agrees",
            check.chains,
            check.entries,
            seconds,
        )
        return
    for mismatch in check.mismatches[:LOGGED_MISMATCHES]:
        log.error("projection verify: %s", mismatch.describe())
    log.error(
        "projection verify: %d mismatches between the read model and its entries (%d chains, "
        "%d entries folded in %.1f s; at most %d listed in projection_checks)",
        check.mismatch_count,
        check.chains,
        check.entries,
        seconds,
        repository.MAX_ROWS,
    )


class ScheduledVerification(BackgroundLoop):
    """Runs ``verify_projections`` in the decision_log every ``period_seconds``.

    Every worker and replica runs this loop; a run is skipped when another one started less
    than ``period_seconds`` ago (``projection_checks``) or holds the lock, so a deployment
    verifies about once a period whatever its number of processes.
    """

    name = "projection-verification"

    def __init__(self, *, engine: AsyncEngine, period_seconds: float, clock: Clock) -> None:
        self._engine = engine
        self._period = period_seconds
        self._clock = clock
        super().__init__()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._period)
            if self._stopping:
                return
            try:
                await self.verify_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if database_unavailable(error):
                    log.warning("projection verify waits for the database: %s", error)
                else:
                    log.exception("projection verify failed; next try in one period")

    async def verify_if_due(self) -> ProjectionCheck | None:
        async with driver_connection(self._engine) as connection:
            last = await repository.last_check_started(connection)
        # A little early still counts as due: periods measured by different processes drift.
        if last is not None and self._clock() - last < timedelta(seconds=self._period * 0.9):
            return None
        return await verify_projections(self._engine, clock=self._clock, wait=False)
