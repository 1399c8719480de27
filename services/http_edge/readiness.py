"""When a replica should be sent traffic: the rules behind ``/readyz``.

Liveness (``/livez``) says only that the process answers. Readiness is narrower than "the
database answered this instant", because a load balancer that drops every replica at once turns
a short database outage into a proxy's 502 for every client, where the service itself would have
answered a clear 503 with ``Retry-After``; and a rolling upgrade whose migration runs first must
not take every old replica out. So a replica is unready only:

- while it shuts down (from the termination signal on);
- when the schema is older than the oldest revision its code can run on (a newer schema, written
  by a newer release's expand-only migration, is fine: migrations expand, then contract);
- when the database has not answered for longer than a stated grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cache
from types import FrameType

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from http_edge.outages import log_failure, sqlstate

log = logging.getLogger(__name__)

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A probe that waits longer than this on the database counts as the database not answering.
PROBE_TIMEOUT_SECONDS = 2.0
UNDEFINED_TABLE = "42P01"


class SchemaFit(Enum):
    RUNNABLE = "runnable"  # the code's own revisions, from the oldest it runs on to its head
    NEWER = "newer"  # a revision this release does not know: written by a newer release
    OLDER = "older"  # missing, or before the oldest revision the code runs on


@dataclass(frozen=True)
class SchemaRange:
    """The revisions one release of the code runs on: ``oldest`` up to the head it ships."""

    known: frozenset[str]
    runnable: frozenset[str]
    oldest: str
    head: str

    @classmethod
    def of(cls, script: ScriptDirectory, *, oldest: str) -> SchemaRange:
        head = script.get_current_head()
        if head is None:
            raise RuntimeError("no migrations found")
        runnable = {revision.revision for revision in script.iterate_revisions(head, oldest)}
        runnable.add(oldest)
        known = {revision.revision for revision in script.walk_revisions()}
        return cls(known=frozenset(known), runnable=frozenset(runnable), oldest=oldest, head=head)

    def fit(self, current: str | None) -> SchemaFit:
        if current in self.runnable:
            return SchemaFit.RUNNABLE
        if current is None or current in self.known:
            return SchemaFit.OLDER
        return SchemaFit.NEWER


@cache
def schema_range(script_location: str, oldest: str) -> SchemaRange:
    """The range of a migrations folder, read once per process (scanning it costs milliseconds)."""
    return SchemaRange.of(ScriptDirectory(script_location), oldest=oldest)


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str  # why not, or what a ready replica still reports (an outage within its grace)


class Readiness:
    """A replica's readiness, kept between probes: whether it is shutting down and since when
    the database has failed to answer."""

    def __init__(
        self, *, outage_grace_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.outage_grace_seconds = outage_grace_seconds
        self._clock = clock
        self._shutting_down = False
        self._unreachable_since: float | None = None

    def mark_shutting_down(self) -> None:
        self._shutting_down = True

    def database_answered(self) -> None:
        self._unreachable_since = None

    def database_failed(self) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = self._clock()

    def verdict(self, schema_problem: str | None = None) -> Verdict:
        """``schema_problem`` says why the schema just read is too old for this release."""
        if self._shutting_down:
            return Verdict(False, "shutting down")
        if self._unreachable_since is not None:
            down = self._clock() - self._unreachable_since
            if down > self.outage_grace_seconds:
                return Verdict(False, f"the database has not answered for {down:.0f} s")
            return Verdict(
                True,
                f"the database has not answered for {down:.0f} s; requests that need it are "
                f"answered 503 until it does, and this replica turns unready after "
                f"{self.outage_grace_seconds:.0f} s",
            )
        if schema_problem is not None:
            return Verdict(False, schema_problem)
        return Verdict(True, "")

    @contextmanager
    def watching_termination(self) -> Iterator[None]:
        """Turn unready as soon as the server is told to stop, then let the server's own
        handler stop it as before. The server (uvicorn) has installed its handlers by the time
        the application starts; they are put back when the application ends."""
        previous = {sig: signal.getsignal(sig) for sig in TERMINATION_SIGNALS}

        def handle(sig: int, frame: FrameType | None) -> None:
            self.mark_shutting_down()
            handler = previous[signal.Signals(sig)]
            if callable(handler):
                handler(sig, frame)
            elif handler == signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
                signal.raise_signal(sig)

        installed = False
        try:
            for sig in TERMINATION_SIGNALS:
                signal.signal(sig, handle)
            installed = True
        except ValueError:
            pass  # not the main thread (an application run in a test's thread): nothing to watch
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if installed and signal.getsignal(sig) is handle:
                    signal.signal(sig, handler)


@dataclass(frozen=True)
class Probe:
    verdict: Verdict
    schema: str | None  # the revision read (None when the database did not answer)
    fit: SchemaFit | None  # None when the database did not answer
    details: dict[str, object] | None  # what ``also`` found, when the schema is runnable


async def probe_database(
    readiness: Readiness,
    engine: AsyncEngine,
    *,
    version_table: str,
    revisions: SchemaRange,
    also: Callable[[AsyncConnection], Awaitable[dict[str, object]]] | None = None,
) -> Probe:
    """Read the schema's revision (and ``also``, on the same connection) and judge readiness."""
    current: str | None = None
    fit: SchemaFit | None = None
    details: dict[str, object] | None = None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), engine.connect() as connection:
            try:
                current = (
                    await connection.execute(text(f"SELECT version_num FROM {version_table}"))
                ).scalar()
            except Exception as error:
                if sqlstate(error) != UNDEFINED_TABLE:
                    raise
                await connection.rollback()  # a database never migrated: it did answer
            fit = revisions.fit(current)
            if fit is not SchemaFit.OLDER and also is not None:
                details = await also(connection)
        readiness.database_answered()
    except TimeoutError:
        log.warning("readiness: the database did not answer in %.0f s", PROBE_TIMEOUT_SECONDS)
        readiness.database_failed()
        fit = None
    except Exception as error:
        log_failure(log, "readiness: reading the schema", error)
        readiness.database_failed()
        fit = None
    problem = None
    if fit is SchemaFit.OLDER:
        problem = (
            f"the schema is at {current or 'no revision'}; this release runs on "
            f"{revisions.oldest} up to {revisions.head}: run the migrations"
        )
    return Probe(verdict=readiness.verdict(problem), schema=current, fit=fit, details=details)
