"""Each typed helper builds an event that the log's published schema accepts and that a live
log appends (201), with the attributes the SDK promises: id, time, source, sequence."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import httpx
import jsonschema_rs
import pytest
from audit_trail_sdk import AuditLog, EventTooLarge, Receipt
from decision_log.decisions.event_types import SCHEMA_DIR

from tests.sdk.conftest import chain_events, sdk_settings
from tests.service.conftest import TenantKeys

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
MODEL = {"name": "credit-gbm", "version": "4.2.0"}

HELPERS: dict[str, Callable[[AuditLog], Future[Receipt]]] = {
    "dev.audit-trail.decision.recorded.v1": lambda log: log.decision(
        decision_id="loan-1",
        model=MODEL,
        policy={"id": "credit-policy", "version": "7"},
        input={"features": {"income": 42000, "ratio": 0.35}},
        output={"decision": "declined", "score": 0.37},
        explanation={"method": "shap", "attributions": [{"feature": "ratio", "weight": 0.2}]},
        solely_automated=True,
    ),
    "dev.audit-trail.decision.reviewed.v1": lambda log: log.review(
        decision_id="loan-1",
        action="amended",
        reviewer_ref="ps1:ab",
        role="credit-officer",
        new_decision="approved",
    ),
    "dev.audit-trail.decision.overridden.v1": lambda log: log.override(
        decision_id="loan-1",
        action="reversed",
        reviewer_ref="ps1:ab",
        role="credit-officer",
        reason="income proven",
    ),
    "dev.audit-trail.decision.contested.v1": lambda log: log.contest(
        decision_id="loan-1",
        grounds="my income is higher",
        channel="web-form",
    ),
    "dev.audit-trail.outcome.observed.v1": lambda log: log.outcome(
        decision_id="loan-1", outcome="repaid", value=1.0
    ),
    "dev.audit-trail.model.deployed.v1": lambda log: log.model_deployed(
        model={**MODEL, "digest": "sha256:" + "ab" * 32},
        deployment="eu-prod-3",
        lineage={"training_data": [{"uri": "s3://data/credit-2026"}]},
    ),
    "dev.audit-trail.genai.invocation.v1": lambda log: log.genai_invocation(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        name="chat gpt-4o",
        start_time_unix_nano=1_764_000_000_000_000_000,
        end_time_unix_nano=1_764_000_001_000_000_000,
        attributes=[{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}],
        resource={"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
    ),
}


def validator(event_type: str) -> Any:
    return jsonschema_rs.validator_for(json.loads((SCHEMA_DIR / f"{event_type}.json").read_text()))


async def test_every_helper_makes_a_valid_event_the_log_appends(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    log = AuditLog(**sdk_settings(live_url, tenant))
    deliveries = {event_type: helper(log) for event_type, helper in HELPERS.items()}
    receipts = {
        event_type: await asyncio.to_thread(delivery.result, 30)
        for event_type, delivery in deliveries.items()
    }
    assert await asyncio.to_thread(log.close, 30)

    assert all(not receipt.replayed for receipt in receipts.values())
    stored = {event["id"]: event for event in await chain_events(client, tenant)}
    sequences = []
    for event_type, receipt in receipts.items():
        event = stored[receipt.event_id]
        assert event["type"] == event_type
        validator(event_type).validate(event["data"])
        assert event["source"] == log.source
        assert re.fullmatch(r"test-producer/[0-9a-f]{32}", event["source"])
        assert RFC3339_UTC.fullmatch(event["time"])
        assert event["heartbeatinterval"] == "60"
        sequences.append(int(event["sequence"]))
    assert sequences == list(range(1, len(HELPERS) + 1))
    # The closing event follows, naming itself as the last.
    closed = [e for e in stored.values() if e["type"] == "dev.audit-trail.producer.closed.v1"]
    assert [e["data"]["last_sequence"] for e in closed] == [f"{len(HELPERS) + 1:020d}"]
    assert closed[0]["sequence"] == closed[0]["data"]["last_sequence"]


async def test_personal_fields_are_marked_and_sealed_by_the_log(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    log = AuditLog(**sdk_settings(live_url, tenant, heartbeat_interval=0))
    delivery = log.decision(
        decision_id="loan-2",
        model=MODEL,
        input={"features": {"income": 42000, "name": "Zoë Martin"}},
        output="declined",
        personal=["/input/features/name", "/input/features/income"],
        data_subject="customer-981",
    )
    receipt = await asyncio.to_thread(delivery.result, 30)
    await asyncio.to_thread(log.close, 30)
    event = {e["id"]: e for e in await chain_events(client, tenant)}[receipt.event_id]
    assert event["personaldata"] == "/input/features/name,/input/features/income"
    assert event["datasubject"].startswith("ps1:")  # the log keeps only the pseudonym
    assert event["data"]["input"]["features"]["name"]["enc"] == "A256GCM"
    assert "heartbeatinterval" not in event


def test_an_oversize_event_is_refused_at_once(tenant: TenantKeys) -> None:
    log = AuditLog(**sdk_settings("http://127.0.0.1:9", tenant))
    with pytest.raises(EventTooLarge):
        log.decision(decision_id="x", model=MODEL, output="approved", extra={"blob": "a" * 300_000})
    with pytest.raises(ValueError, match="data subject"):
        log.decision(decision_id="x", model=MODEL, output="approved", personal=["/output"])
    assert log.stats.queued == 0
    assert log.close(1)
