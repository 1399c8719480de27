"""The sweep's schedule: rounds one period apart, a cursor that survives restarts, one window
under the chain's lock at a time, a rate cap, and a warning when the cap is too low.

These run a verifier of their own (its own store, a tenant auditor key, so it follows one chain
only) and move its clocks by hand: nothing waits for a period to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ledger.keys import read_private_key
from ledger.note import NoteVerifier
from sqlalchemy.ext.asyncio import AsyncEngine
from verifier import migrations
from verifier.db import create_engine
from verifier.log_client import LogClient
from verifier.pacing import EntryRate
from verifier.service import ChainVerifier
from verifier.settings import Settings
from verifier.signing import VerifierSigner
from verifier.sweep import Sweeper

from tests.databases import own_database
from tests.verifier.conftest import COSIGNED, Cosigned, grow


class FakeTime:
    """The sweeper's clocks, moved by the test: nothing sleeps."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.monotonic_now = 0.0
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.monotonic_now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.monotonic_now += seconds


@dataclass
class OwnVerifier:
    verifier: ChainVerifier
    engine: AsyncEngine


@pytest.fixture
async def own(
    database_url: str, verifier_settings: Settings, app: FastAPI, cosigned: Cosigned
) -> AsyncIterator[OwnVerifier]:
    """A second verifier with a store of its own, following only the `cosigned` chain (with
    its tenant's auditor key, so it cosigns for itself and posts nothing), caught up."""
    async with own_database(database_url, "audit_trail_verifier") as url:
        async for own_verifier in _own_verifier(url, verifier_settings, app, cosigned):
            yield own_verifier


async def _own_verifier(
    url: str, verifier_settings: Settings, app: FastAPI, cosigned: Cosigned
) -> AsyncIterator[OwnVerifier]:
    await asyncio.to_thread(migrations.upgrade, url)
    engine = create_engine(url, role="audit_trail_verifier")
    log_client = LogClient(
        http=httpx.AsyncClient(base_url="http://decision-log", transport=httpx.ASGITransport(app)),
        api_key=cosigned.keys.auditor,
    )
    verifier = ChainVerifier(
        engine=engine,
        log_client=log_client,
        signer=VerifierSigner.create(
            key=read_private_key(verifier_settings.key_file), name=verifier_settings.name
        ),
        log_verifier=NoteVerifier.from_verifier_key(verifier_settings.log_verifier_key),
        clock=lambda: datetime.now(UTC),
    )
    assert (await verifier.verify(cosigned.name)).verified_size == COSIGNED
    yield OwnVerifier(verifier=verifier, engine=engine)
    await log_client.aclose()
    await engine.dispose()


def sweeper_of(
    own: OwnVerifier, time: FakeTime, *, period: float, rate: float, window: int
) -> Sweeper:
    """What the app builds from its settings, with short values and the test's clocks."""
    return Sweeper(
        verifier=own.verifier,
        engine=own.engine,
        clock=time.clock,
        period_seconds=period,
        rate=EntryRate(rate, monotonic=time.monotonic, sleep=time.sleep),
        window_entries=window,
    )


async def test_rounds_resume_after_a_restart_and_come_back_each_period(
    own: OwnVerifier, cosigned: Cosigned
) -> None:
    time = FakeTime()
    sweeper = sweeper_of(own, time, period=60.0, rate=1e9, window=16)
    state = await own.verifier.state(cosigned.name)

    async def status() -> dict[str, Any]:
        return await sweeper.status(state)

    assert await sweeper.run_once() == 16
    first = await status()
    assert (first["running"], first["requested"], first["cursor"], first["end"]) == (
        True,
        "schedule",
        16,
        COSIGNED,
    )
    assert first["round_started_at"] == time.now
    # A restart: a new sweeper picks the pass up at its stored cursor, one window further.
    sweeper = sweeper_of(own, time, period=60.0, rate=1e9, window=16)
    assert await sweeper.run_once() == 16
    assert (await status())["cursor"] == 32
    time.now += timedelta(seconds=5)
    assert await sweeper.run_once() == 8
    done = await status()
    assert (done["running"], done["last_full_sweep_size"]) == (False, COSIGNED)
    assert done["last_full_sweep_finished_at"] == time.now
    assert done["next_round_at"] == first["round_started_at"] + timedelta(seconds=60)
    # Nothing until the period is over; then the next round starts a new pass.
    assert await sweeper.run_once() == 0
    time.now += timedelta(seconds=56)
    assert await sweeper.run_once() == 16
    again = await status()
    assert again["current_pass"] == first["current_pass"] + 1
    assert again["round_started_at"] == time.now and not again["behind"]
    # A chain not done with a round that started more than a period ago is behind.
    time.now += timedelta(seconds=61)
    assert (await status())["behind"] is True


async def test_a_chain_busy_with_a_job_gets_its_round_s_pass_after_it(
    own: OwnVerifier, cosigned: Cosigned
) -> None:
    time = FakeTime()
    sweeper = sweeper_of(own, time, period=60.0, rate=1e9, window=16)
    state = await own.verifier.state(cosigned.name)
    await sweeper.start_pass(cosigned.name, requested="on-demand")
    # The round drives the pass already running, then starts its own.
    while (await sweeper.status(state))["requested"] == "on-demand":
        assert await sweeper.run_once() > 0
    own = await sweeper.status(state)
    assert (own["requested"], own["running"]) == ("schedule", True)


async def test_a_cap_too_low_for_the_period_is_a_warning_and_a_status(
    own: OwnVerifier, cosigned: Cosigned, caplog: pytest.LogCaptureFixture
) -> None:
    time = FakeTime()
    sweeper = sweeper_of(own, time, period=10.0, rate=3.0, window=16)
    with caplog.at_level("WARNING", logger="verifier.sweep"):
        capacity = await sweeper.capacity()
    assert (capacity.watched_entries, capacity.entries_per_period) == (COSIGNED, 30)
    assert not capacity.covers_period
    assert "chains fall behind the period" in caplog.text
    status = await sweeper.status(await own.verifier.state(cosigned.name))
    assert (status["rate_covers_period"], status["entries_per_period_at_cap"]) == (False, 30)
    enough = sweeper_of(own, time, period=10.0, rate=4.0, window=16)
    assert (await enough.capacity()).covers_period


async def test_the_rate_cap_paces_the_windows(own: OwnVerifier, cosigned: Cosigned) -> None:
    time = FakeTime()
    sweeper = sweeper_of(own, time, period=60.0, rate=100.0, window=16)
    while await sweeper.run_once():
        pass
    # 16 + 16 + 8 entries at 100 entries/s: the first window at once, each next one after the
    # one before was paid for.
    assert time.slept == pytest.approx([0.16, 0.16])


async def test_a_window_holds_the_cosigning_lock_for_itself_only(
    own: OwnVerifier, cosigned: Cosigned
) -> None:
    """Between two windows of a pass, the incremental check gets the lock and cosigns."""
    time = FakeTime()
    sweeper = sweeper_of(own, time, period=60.0, rate=1e9, window=8)
    await sweeper.start_pass(cosigned.name, requested="schedule")
    assert await sweeper.sweep_window(cosigned.name) == 8
    await grow(cosigned.client, cosigned.keys, 3)
    assert (await own.verifier.verify(cosigned.name)).verified_size == COSIGNED + 3
    windows = [8]
    while read := await sweeper.sweep_window(cosigned.name):
        windows.append(read)
    assert windows == [8, 8, 8, 8, 8]
    status = await sweeper.status(await own.verifier.state(cosigned.name))
    # The pass re-read what was cosigned when it started; the new entries wait for the next.
    assert (status["running"], status["last_full_sweep_size"]) == (False, COSIGNED)
