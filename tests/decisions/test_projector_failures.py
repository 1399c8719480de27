"""How the projector judges a failure of one chain: retry delays, the cause, the one line it
records (no database needed; the isolation itself is in test_projector_isolation.py)."""

from __future__ import annotations

import asyncpg
from decision_log.decisions.projector import (
    MAX_ERROR_CHARS,
    database_unavailable,
    depends_on_content,
    describe,
    retry_delay,
)


def test_a_failing_chain_is_retried_with_doubling_delays_up_to_a_minute() -> None:
    delays = [retry_delay(attempt, first=1.0, most=60.0) for attempt in range(1, 9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert retry_delay(10_000, first=1.0, most=60.0) == 60


def test_only_errors_of_the_values_are_narrowed_down_to_one_entry() -> None:
    assert depends_on_content(asyncpg.CharacterNotInRepertoireError("invalid byte sequence"))
    assert depends_on_content(asyncpg.ProgramLimitExceededError("index row size 4016 exceeds"))
    assert depends_on_content(KeyError("event"))  # the fold itself failed on an entry
    assert not depends_on_content(asyncpg.LockNotAvailableError("lock timeout"))
    assert not depends_on_content(asyncpg.InsufficientPrivilegeError("permission denied"))


def test_an_unreachable_database_is_not_blamed_on_a_chain() -> None:
    assert database_unavailable(ConnectionRefusedError())
    assert database_unavailable(asyncpg.AdminShutdownError("terminating connection"))
    assert database_unavailable(asyncpg.TooManyConnectionsError("too many clients"))
    wrapped = RuntimeError("the pool could not connect")
    wrapped.__cause__ = asyncpg.CannotConnectNowError("the database system is starting up")
    assert database_unavailable(wrapped)
    assert not database_unavailable(asyncpg.QueryCanceledError("lock timeout"))
    assert not database_unavailable(asyncpg.ProgramLimitExceededError("index row size"))


def test_a_failure_is_recorded_in_one_short_line() -> None:
    error = asyncpg.ProgramLimitExceededError(
        'index row size 4016 exceeds btree version 4 maximum 2704 for index "decisions_pkey"'
    )
    assert describe(error) == (
        "ProgramLimitExceededError (SQLSTATE 54000): index row size 4016 exceeds btree "
        'version 4 maximum 2704 for index "decisions_pkey"'
    )
    long = describe(ValueError("line\n" * 1000))
    assert "\n" not in long and len(long) <= len("ValueError: ") + MAX_ERROR_CHARS
