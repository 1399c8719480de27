"""The readiness rules on their own: the grace period of an outage, the termination signal, and
which schema revisions a release runs on (the real migrations folders)."""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest
from decision_log import migrations as log_migrations
from http_edge.readiness import Readiness, SchemaFit, schema_range
from verifier import migrations as verifier_migrations


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_tolerated_for_its_grace_period_then_not() -> None:
    clock = Clock()
    readiness = Readiness(outage_grace_seconds=30, clock=clock)
    assert readiness.verdict().ready
    readiness.database_failed()
    clock.now += 29
    readiness.database_failed()  # a later failure does not restart the count
    within = readiness.verdict()
    assert within.ready and "29 s" in within.reason
    clock.now += 2
    beyond = readiness.verdict()
    assert not beyond.ready and "31 s" in beyond.reason
    readiness.database_answered()
    assert readiness.verdict().ready


def test_a_schema_too_old_is_unready_whatever_the_database_does() -> None:
    readiness = Readiness(outage_grace_seconds=30)
    verdict = readiness.verdict("the schema is at 0001; run the migrations")
    assert not verdict.ready and "run the migrations" in verdict.reason


def test_the_termination_signal_turns_the_replica_unready_and_still_stops_the_server() -> None:
    told: list[int] = []

    def server_handler(sig: int, frame: FrameType | None) -> None:
        told.append(sig)

    before = signal.signal(signal.SIGTERM, server_handler)
    try:
        readiness = Readiness(outage_grace_seconds=30)
        with readiness.watching_termination():
            assert readiness.verdict().ready
            os.kill(os.getpid(), signal.SIGTERM)
            assert told == [signal.SIGTERM]  # the server's own handler ran
            verdict = readiness.verdict()
            assert not verdict.ready and verdict.reason == "shutting down"
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("module", [log_migrations, verifier_migrations])
def test_each_release_runs_on_its_oldest_revision_up_to_its_head(module: object) -> None:
    folder = str(module.migrations_dir())  # type: ignore[attr-defined]
    oldest: str = module.OLDEST_RUNNABLE_SCHEMA  # type: ignore[attr-defined]
    revisions = schema_range(folder, oldest)
    head = module.head_revision()  # type: ignore[attr-defined]
    assert revisions.head == head
    assert revisions.fit(head) is SchemaFit.RUNNABLE
    assert revisions.fit(oldest) is SchemaFit.RUNNABLE
    assert revisions.fit(None) is SchemaFit.OLDER
    assert revisions.fit("of-a-later-release") is SchemaFit.NEWER
    older = revisions.known - revisions.runnable
    assert all(revisions.fit(revision) is SchemaFit.OLDER for revision in older)
