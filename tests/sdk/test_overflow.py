"""A full queue never drops silently: ``block`` raises after its timeout, ``drop`` counts and
names every event it drops, and what a close could not deliver is named as lost."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

import pytest
from audit_trail_sdk import (
    AsyncAuditLog,
    AuditLog,
    ClientClosed,
    EventDropped,
    JournalFull,
    QueueFull,
)

from tests.sdk.conftest import sdk_settings
from tests.service.conftest import TenantKeys

MODEL = {"name": "credit-gbm", "version": "4.2.0"}


@pytest.fixture
def unreachable_url() -> str:
    """A loopback port nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_block_raises_after_its_timeout(
    tenant: TenantKeys, unreachable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(**sdk_settings(unreachable_url, tenant, max_queue_events=3, block_timeout=0.3))
    queued = []
    with pytest.raises(QueueFull):
        for number in range(20):
            began = time.monotonic()
            queued.append(log.decision(decision_id=f"d-{number}", model=MODEL, output="approved"))
    assert time.monotonic() - began >= 0.3
    assert len(queued) < 20 and log.stats.dropped == 0
    with caplog.at_level(logging.ERROR, logger="audit_trail_sdk"):
        assert not log.close(0.3)
    # Nothing vanishes unreported: the close names every event it could not deliver.
    lost = next(record.getMessage() for record in caplog.records if "lost" in record.getMessage())
    for delivery in queued:
        with pytest.raises(Exception, match="not delivered") as failure:
            delivery.result(1)
        assert failure.value.event_id in lost
    assert log.stats.lost == len(queued) + 1  # with the closing event
    with pytest.raises(ClientClosed):
        log.decision(decision_id="late", model=MODEL, output="approved")


def test_drop_counts_and_names_each_dropped_event(
    tenant: TenantKeys, unreachable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(**sdk_settings(unreachable_url, tenant, max_queue_events=3, overflow="drop"))
    with caplog.at_level(logging.WARNING, logger="audit_trail_sdk"):
        deliveries = [
            log.decision(decision_id=f"d-{n}", model=MODEL, output="approved") for n in range(30)
        ]
    dropped = [d for d in deliveries if d.done() and isinstance(d.exception(), EventDropped)]
    assert log.stats.dropped == len(dropped) > 0
    warnings = [r.getMessage() for r in caplog.records if "dropped event" in r.getMessage()]
    assert len(warnings) == len(dropped)
    for delivery in dropped:
        exception = delivery.exception()
        assert exception is not None
        event_id = str(exception).split()[1]
        assert any(event_id in warning for warning in warnings)
    log.close(0.2)


async def test_the_async_client_blocks_without_blocking_the_loop(
    tenant: TenantKeys, unreachable_url: str
) -> None:
    log = AsyncAuditLog(
        **sdk_settings(unreachable_url, tenant, max_queue_events=2, block_timeout=0.5)
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(QueueFull):
            for number in range(20):
                await log.decision(decision_id=f"d-{number}", model=MODEL, output="approved")
        # The loop kept running while the full queue was waited on.
        assert ticks >= 20
    finally:
        ticker.cancel()
    assert not await log.close(0.2)


def test_the_journal_is_bounded(tenant: TenantKeys, unreachable_url: str, tmp_path: Path) -> None:
    log = AuditLog(
        **sdk_settings(
            unreachable_url,
            tenant,
            overflow="journal",
            journal_dir=tmp_path,
            journal_max_bytes=5_000,
            max_queue_events=1,
            heartbeat_interval=0,
        )
    )
    with pytest.raises(JournalFull):
        for number in range(100):
            log.decision(decision_id=f"d-{number}", model=MODEL, output="approved")
    held = sum(path.stat().st_size for path in tmp_path.glob("segment-*"))
    assert 0 < held <= 5_000 and log.stats.journaled == number - log.stats.queued
    log.close(0.2)
