"""Receipts checked against the log's key (and refused when tampered with), heartbeats while
idle and the closing event, as the completeness contract has them."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from audit_trail_sdk import (
    PRODUCER_CLOSED,
    PRODUCER_HEARTBEAT,
    AsyncAuditLog,
    AuditLog,
    EventRefused,
    ReceiptVerificationError,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.sdk.conftest import chain_events, sdk_settings
from tests.sdk.relay import relay_to
from tests.service.conftest import TenantKeys

MODEL = {"name": "credit-gbm", "version": "4.2.0"}


async def log_public_key(url: str) -> str:
    async with httpx.AsyncClient() as http:
        key: str = (await http.get(f"{url}/v1/log/keys")).json()["keys"][0]["public_key"]
        return key


async def test_receipts_are_verified_against_the_configured_key(
    tenant: TenantKeys, live_url: str
) -> None:
    key = await log_public_key(live_url)
    log = AuditLog(**sdk_settings(live_url, tenant, log_public_key=key))
    receipt = await asyncio.to_thread(
        log.decision(decision_id="loan-1", model=MODEL, output="approved").result, 30
    )
    assert receipt.verified and receipt.index >= 0 and len(receipt.leaf_hash) == 64
    # A replay of the same event gets its original receipt, still signed.
    again = log.emit(
        "dev.audit-trail.decision.recorded.v1",
        data={"model": MODEL, "output": {"decision": "approved"}},
        subject="loan-1",
        event_id=receipt.event_id,
    )
    with pytest.raises(EventRefused):  # same id, other content (a new sequence): a conflict
        await asyncio.to_thread(again.result, 30)
    await asyncio.to_thread(log.close, 30)


@pytest.mark.parametrize("tampering", ["wrong key", "changed index"])
async def test_receipts_that_do_not_verify_are_reported(
    tenant: TenantKeys, live_url: str, tampering: str
) -> None:
    key = await log_public_key(live_url)
    if tampering == "wrong key":
        other = Ed25519PrivateKey.generate().public_key()
        key = other.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def change_index(content: bytes) -> bytes:
        answer: dict[str, Any] = json.loads(content)
        answer["receipts"][0]["index"] += 1
        return json.dumps(answer).encode()

    failures: list[EventRefused] = []
    with relay_to(live_url) as (relay, url):
        if tampering == "changed index":
            relay.rewrite_answer = change_index
        log = AuditLog(
            **sdk_settings(url, tenant, log_public_key=key, heartbeat_interval=0),
            on_failure=lambda _, error: failures.append(error),
        )
        delivery = log.decision(decision_id="loan-1", model=MODEL, output="approved")
        with pytest.raises(EventRefused) as refused:
            await asyncio.to_thread(delivery.result, 30)
        await asyncio.to_thread(log.close, 30)
    assert isinstance(refused.value.__cause__, ReceiptVerificationError)
    assert failures[0] is refused.value


async def test_fetching_the_key_from_the_log_is_an_opt_in_that_warns(
    tenant: TenantKeys, live_url: str
) -> None:
    with pytest.warns(UserWarning, match="taken from the log itself"):
        log = AuditLog(**sdk_settings(live_url, tenant, fetch_log_key=True))
    receipt = await asyncio.to_thread(
        log.decision(decision_id="loan-1", model=MODEL, output="approved").result, 30
    )
    assert receipt.verified
    await asyncio.to_thread(log.close, 30)


async def test_heartbeats_while_idle_then_a_closing_event(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    log = AsyncAuditLog(**sdk_settings(live_url, tenant, heartbeat_interval=1))
    receipt = await (await log.decision(decision_id="loan-1", model=MODEL, output="approved"))
    await asyncio.sleep(2.6)  # idle: two heartbeats
    await log.close(30)
    events = [e for e in await chain_events(client, tenant) if e["source"] == log.source]
    types = [e["type"] for e in events]
    heartbeats = len(types) - 2
    assert heartbeats >= 1
    assert types == [
        "dev.audit-trail.decision.recorded.v1",
        *[PRODUCER_HEARTBEAT] * heartbeats,
        PRODUCER_CLOSED,
    ]
    assert events[0]["id"] == receipt.event_id
    count = len(events)
    assert [e["sequence"] for e in events] == [f"{n:020d}" for n in range(1, count + 1)]
    assert all(e["heartbeatinterval"] == "1" for e in events)
    assert all(e["data"] == {} for e in events[1:-1])
    # Each heartbeat came after a second without any event.
    times = [datetime.fromisoformat(e["time"]) for e in events[: heartbeats + 1]]
    assert all((b - a).total_seconds() >= 1 for a, b in itertools.pairwise(times))
    assert events[-1]["data"] == {"last_sequence": f"{count:020d}"}
