"""What a database error means for the caller: try again later, fix the request, or a bug.

SQLAlchemy wraps the driver's exception (``.orig``), which wraps asyncpg's (``__cause__``), so
the whole chain is looked at. PostgreSQL says what kind of error it is in its SQLSTATE
(https://www.postgresql.org/docs/current/errcodes-appendix.html):

- class 08 (connection exception), 53 (insufficient resources) and 57P (operator intervention:
  shutdown, crash, cannot connect now) mean the database is not there for now: every caller gets
  503 with Retry-After, and nothing is retried behind its back (no retry storm against a database
  that is coming back);
- classes 22 (data exception), 23 (integrity constraint violation) and 54 (program limit
  exceeded, e.g. an index row too large) are about the data sent: a 4xx for the request at fault;
- anything else is a bug, answered 500.

A lock wait that hits the service's ``lock_timeout`` (55P03) is ``BUSY``: a request gets 503
with Retry-After as for an outage, but the database itself is up.

Connection failures seen before PostgreSQL says anything (refused, reset, timed out, a pool
with no connection to lend, a driver left mid-protocol by a server that went away) count as
outages too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from enum import Enum

import asyncpg
import sqlalchemy.exc


class DatabaseFault(Enum):
    UNAVAILABLE = "unavailable"
    BUSY = "busy"
    BAD_DATA = "bad-data"
    OTHER = "other"


UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")
# 55P03 (lock_not_available): the service's own lock_timeout gave up on a row another
# transaction holds too long (decision_log.db). The database is there, the row is busy: a
# request is answered 503 all the same, while background work moves on to other rows.
BUSY_SQLSTATES = ("55P03",)
BAD_DATA_SQLSTATE_PREFIXES = ("22", "23", "54")


def classify(error: BaseException) -> DatabaseFault:
    for link in _chain(error):
        if isinstance(link, sqlalchemy.exc.DBAPIError) and link.connection_invalidated:
            return DatabaseFault.UNAVAILABLE
        if isinstance(
            link,
            OSError
            | asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | sqlalchemy.exc.TimeoutError
            | sqlalchemy.exc.DisconnectionError,
        ):
            return DatabaseFault.UNAVAILABLE
        if isinstance(link, UnicodeError):
            return DatabaseFault.BAD_DATA
        state = sqlstate(link)
        if state is not None:
            if state.startswith(UNAVAILABLE_SQLSTATE_PREFIXES):
                return DatabaseFault.UNAVAILABLE
            if state in BUSY_SQLSTATES:
                return DatabaseFault.BUSY
            if state.startswith(BAD_DATA_SQLSTATE_PREFIXES):
                return DatabaseFault.BAD_DATA
    return DatabaseFault.OTHER


def sqlstate_of(error: BaseException) -> str:
    """The SQLSTATE anywhere in the error's chain, else the exception's class name (for logs and
    problem details: it says what kind of error without quoting the values involved)."""
    for link in _chain(error):
        state = sqlstate(link)
        if state is not None:
            return f"SQLSTATE {state}"
    return type(error).__name__


def sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen or len(seen) > 16:
            continue
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)
        pending.extend(
            (orig if isinstance(orig, BaseException) else None, link.__cause__, link.__context__)
        )


def log_failure(logger: logging.Logger, what: str, error: BaseException) -> None:
    """Log a failed piece of background work: one line for an outage (it passes, and a
    traceback every second would bury everything else), the traceback for anything else."""
    if classify(error) is DatabaseFault.UNAVAILABLE:
        logger.warning("%s: database unavailable (%s)", what, type(error).__name__)
    else:
        logger.error("%s", what, exc_info=error)
