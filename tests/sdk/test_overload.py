"""The log's own overload answer (503 + Retry-After, events.admission) is waited out: the SDK
retries after the time the log asks for, and its event is appended once, when there is room."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from audit_trail_sdk import AuditLog
from decision_log.settings import Settings

from tests.sdk.conftest import chain_events, sdk_settings
from tests.service.conftest import TenantKeys
from tests.service.helpers import BATCH, decision_event, headers
from tests.service.live import serve_in_thread
from tests.service.test_backpressure import hold_chain_lock, no_admin_records_pending


@pytest.fixture
def small_log_url(settings: Settings) -> Iterator[str]:
    """A live log whose worker holds at most ten events waiting for their commit."""
    yield from serve_in_thread(
        settings.model_copy(update={"max_pending_events": 10, "queue_timeout_seconds": 30.0})
    )


async def test_the_logs_overload_answer_is_waited_out(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    small_log_url: str,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await no_admin_records_pending(database_url, tenant)
    lock = await hold_chain_lock(database_url, tenant)
    async with httpx.AsyncClient(base_url=small_log_url, timeout=60) as other:
        # Another producer of the tenant holds its whole share (five events) while the
        # database is stuck, so the SDK's batch is refused with 503 + Retry-After: 1.
        waiting = [
            asyncio.create_task(
                other.post(
                    f"/v1/chains/{tenant.chain}/events",
                    content=orjson.dumps([decision_event() for _ in range(5)]),
                    headers=headers(tenant.producer, BATCH),
                )
            )
        ]
        await asyncio.sleep(0.3)
        log = AuditLog(**sdk_settings(small_log_url, tenant, max_retry_delay=0.05))
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="audit_trail_sdk"):
            delivery = log.decision(
                decision_id="loan-1", model={"name": "m", "version": "1"}, output="ok"
            )
            await asyncio.sleep(1.5)
            assert not delivery.done()
            await lock.execute("ROLLBACK")
            await lock.close()
            receipt = await asyncio.to_thread(delivery.result, 30)
        assert (await waiting[0]).status_code == 201
    await asyncio.to_thread(log.close, 30)
    answered_503 = [r for r in caplog.records if "answered 503" in r.getMessage()]
    assert answered_503 and log.stats.retries == len(answered_503)
    # Retry-After (1 s) sets the pace, not the configured 0.05 s backoff.
    assert len(answered_503) <= 3 and time.monotonic() - began >= 1.5
    stored = [event["id"] for event in await chain_events(client, tenant)]
    assert stored.count(receipt.event_id) == 1
