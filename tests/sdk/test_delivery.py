"""Delivery against a live log: nothing lost across a restart of the service, refusals reported
per event while the rest is appended, Retry-After honoured."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from concurrent.futures import Future

import httpx
import pytest
from audit_trail_sdk import DECISION_RECORDED, AuditLog, EventRefused, Receipt

from tests.sdk.conftest import RestartableLog, chain_events, sdk_settings
from tests.sdk.relay import relay_to
from tests.service.conftest import TenantKeys

MODEL = {"name": "credit-gbm", "version": "4.2.0"}


def decide(log: AuditLog, number: int) -> Future[Receipt]:
    return log.decision(decision_id=f"loan-{number}", model=MODEL, output="approved")


async def test_a_restart_of_the_service_mid_stream_loses_nothing(
    client: httpx.AsyncClient, tenant: TenantKeys, restartable_log: RestartableLog
) -> None:
    ids: list[str] = []
    receipts: list[Receipt] = []
    done = threading.Event()

    def produce_ids(count: int) -> None:
        for number in range(count):
            delivery = decide(log, number)
            delivery.add_done_callback(lambda f: receipts.append(f.result()))
            time.sleep(0.002)
        done.set()

    log = AuditLog(
        **sdk_settings(restartable_log.url, tenant, batch_max_events=20),
        on_receipt=lambda receipt: ids.append(receipt.event_id),
    )
    producer = threading.Thread(target=produce_ids, args=(300,))
    producer.start()
    await asyncio.sleep(0.2)
    restartable_log.stop()  # mid-stream: the producer goes on queueing
    await asyncio.sleep(1.0)
    restartable_log.start()
    await asyncio.to_thread(producer.join)
    assert await asyncio.to_thread(log.close, 60)

    events = await chain_events(client, tenant)
    mine = [event for event in events if event["source"] == log.source]
    counts = Counter(event["id"] for event in mine)
    assert len(counts) == 301 and set(counts.values()) == {1}  # 300 decisions + closing
    assert sorted(int(event["sequence"]) for event in mine) == list(range(1, 302))
    assert log.stats.delivered == 301 and log.stats.refused == 0 and log.stats.retries > 0
    assert len(receipts) == 300


async def test_a_poisoned_event_is_reported_and_the_rest_appended(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    failures: list[tuple[str, EventRefused]] = []
    log = AuditLog(
        **sdk_settings(live_url, tenant, flush_interval=60, heartbeat_interval=0),
        on_failure=lambda event_id, error: failures.append((event_id, error)),
    )
    good = [decide(log, number) for number in range(5)]
    poisoned = log.emit(DECISION_RECORDED, data={"model": MODEL}, subject="loan-x")  # no output
    good += [decide(log, number) for number in range(5, 10)]
    assert await asyncio.to_thread(log.flush, 30)

    with pytest.raises(EventRefused) as refused:
        poisoned.result()
    assert refused.value.status == 400
    assert refused.value.problem["pointer"] == "/5/data/output"
    assert [event_id for event_id, _ in failures] == [refused.value.event_id]
    receipts = [delivery.result() for delivery in good]
    stored = {event["id"] for event in await chain_events(client, tenant)}
    assert {receipt.event_id for receipt in receipts} <= stored
    assert refused.value.event_id not in stored
    assert log.stats.refused == 1 and log.stats.delivered == 10
    await asyncio.to_thread(log.close, 30)


async def test_a_refusal_naming_no_event_is_narrowed_to_the_bad_one(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    with relay_to(live_url) as (relay, url):
        relay.refuse_marker = b"loan-poison"
        log = AuditLog(**sdk_settings(url, tenant, flush_interval=60, heartbeat_interval=0))
        deliveries = [decide(log, number) for number in range(7)]
        poisoned = log.decision(decision_id="loan-poison", model=MODEL, output="approved")
        deliveries += [decide(log, number) for number in range(7, 16)]
        assert await asyncio.to_thread(log.flush, 30)
        with pytest.raises(EventRefused, match="no pointer"):
            poisoned.result()
        receipts = [delivery.result() for delivery in deliveries]
        requests = len(relay.arrivals)
        await asyncio.to_thread(log.close, 30)
    stored = {event["id"] for event in await chain_events(client, tenant)}
    assert {receipt.event_id for receipt in receipts} <= stored
    # Halving a batch of 16 isolates one event in at most 1 + 2 * 4 requests.
    assert requests <= 9


async def test_overload_with_retry_after_is_waited_out(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    with relay_to(live_url) as (relay, url):
        relay.canned = [(503, {"Retry-After": "1"})] * 2
        log = AuditLog(**sdk_settings(url, tenant, max_retry_delay=0.1, heartbeat_interval=0))
        delivery = decide(log, 1)
        receipt = await asyncio.to_thread(delivery.result, 30)
        await asyncio.to_thread(log.close, 30)
    times = [moment for moment, _ in relay.arrivals]
    assert [status for _, status in relay.arrivals][:3] == [503, 503, 201]
    # Retry-After (1 s) wins over the configured backoff (at most 0.1 s).
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95
    assert receipt.event_id in {event["id"] for event in await chain_events(client, tenant)}


async def test_a_lost_answer_is_retried_and_the_replay_counts_as_delivered(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    with relay_to(live_url) as (relay, url):
        relay.lost_answers = 1  # appended, but the answer never reaches the producer
        log = AuditLog(**sdk_settings(url, tenant, heartbeat_interval=0))
        receipt = await asyncio.to_thread(decide(log, 1).result, 30)
        await asyncio.to_thread(log.close, 30)
    assert [status for _, status in relay.arrivals][:2] == [502, 200]
    assert receipt.replayed and log.stats.delivered == 2 and log.stats.replayed == 1
    stored = [event["id"] for event in await chain_events(client, tenant)]
    assert stored.count(receipt.event_id) == 1


@pytest.mark.parametrize("internal_errors", [2, 3])
async def test_a_500_is_retried_at_most_twice(
    tenant: TenantKeys, live_url: str, internal_errors: int
) -> None:
    with relay_to(live_url) as (relay, url):
        relay.canned = [(500, {})] * internal_errors
        log = AuditLog(**sdk_settings(url, tenant, max_retry_delay=0.05, heartbeat_interval=0))
        delivery = decide(log, 1)
        assert await asyncio.to_thread(log.flush, 30)
        await asyncio.to_thread(log.close, 30)
    statuses = [status for _, status in relay.arrivals]
    if internal_errors == 2:
        assert statuses[:3] == [500, 500, 201] and delivery.result().index >= 0
    else:
        assert statuses[:3] == [500, 500, 500]
        with pytest.raises(EventRefused) as refused:
            delivery.result()
        assert refused.value.status == 500


async def test_batches_are_cut_by_count_and_by_bytes(tenant: TenantKeys, live_url: str) -> None:
    with relay_to(live_url) as (relay, url):
        log = AuditLog(
            **sdk_settings(url, tenant, flush_interval=60, heartbeat_interval=0, batch_max_events=7)
        )
        by_count = [decide(log, number) for number in range(20)]
        # Two full batches go at once; the last six wait for the interval or a flush.
        await asyncio.to_thread(by_count[13].result, 30)
        assert not by_count[19].done()
        assert [len(json.loads(body)) for body in relay.bodies] == [7, 7]
        assert await asyncio.to_thread(log.flush, 30)
        await asyncio.to_thread(log.close, 30)

        relay.bodies.clear()
        log = AuditLog(**sdk_settings(url, tenant, batch_max_bytes=10_000, heartbeat_interval=0))
        padding = {"note": "x" * 900}
        for number in range(60):
            log.decision(decision_id=f"d-{number}", model=MODEL, output="ok", extra=padding)
        assert await asyncio.to_thread(log.flush, 30)
        await asyncio.to_thread(log.close, 30)
    sizes = [len(body) for body in relay.bodies]
    assert max(sizes) <= 10_000 and sum(len(json.loads(b)) for b in relay.bodies) == 61
    assert len(sizes) >= 6
