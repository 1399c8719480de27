"""/metrics: Prometheus text for the bearer of the metrics token only, with series that move
when the service works (request counts by route template, group commits, checkpoints)."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest
from http_edge.logs import JsonLineFormatter
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import TenantKeys
from tests.service.helpers import append, decision_event, headers, wait_for_checkpoint

TOKEN = "metrics-token-for-tests"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_need_their_own_token(
    client: httpx.AsyncClient, tenant: TenantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDIT_TRAIL_METRICS_TOKEN", raising=False)
    assert (await client.get("/metrics")).status_code == 404  # off without a token
    monkeypatch.setenv("AUDIT_TRAIL_METRICS_TOKEN", TOKEN)
    assert (await client.get("/metrics")).status_code == 401
    for key in (tenant.admin, "not-the-token"):
        refused = await client.get("/metrics", headers=headers(key))
        assert refused.status_code == 401
    assert "/metrics" not in (await client.get("/openapi.json")).text


async def test_series_move_with_the_work(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AUDIT_TRAIL_METRICS_TOKEN", TOKEN)
    caplog.set_level(logging.INFO, logger="http_edge.requests")
    before = await scrape(client)
    appended = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=orjson.dumps(decision_event()),
        headers=headers(
            tenant.producer,
            {"Content-Type": "application/cloudevents+json", "X-Request-Id": "append-42"},
        ),
    )
    assert appended.status_code == 201
    # The append route bypasses the framework, and still carries the request id and counts.
    assert appended.headers["x-request-id"] == "append-42"
    line = JsonLineFormatter().format(
        next(
            r
            for r in caplog.records
            if r.name == "http_edge.requests" and r.fields["route"].endswith("/events")
        )
    )
    assert orjson.loads(line) | {"time": None, "duration_ms": None} == {
        "time": None,
        "level": "INFO",
        "logger": "http_edge.requests",
        "message": "request",
        "request_id": "append-42",
        "method": "POST",
        "route": "/v1/chains/{chain}/events",
        "status": 201,
        "duration_ms": None,
    }
    refused = await append(client, tenant.producer, tenant.chain, {"specversion": "1.0"})
    assert refused.status_code == 400
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=1)
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("audit_trail_events_ingested_total", mode="structured", outcome="appended") == 1
    assert moved("audit_trail_events_ingested_total", mode="structured", outcome="refused") == 1
    append_route = {"route": "/v1/chains/{chain}/events", "method": "POST"}
    assert moved("audit_trail_http_requests_total", **append_route, status="201") == 1
    assert moved("audit_trail_http_requests_total", **append_route, status="400") == 1
    assert (
        moved("audit_trail_http_request_duration_seconds_count", route=append_route["route"]) == 2
    )
    assert moved("audit_trail_group_commit_events_count") >= 1
    assert moved("audit_trail_checkpoints_signed_total") >= 1
    read = {"route": "/v1/chains/{chain}", "method": "GET", "status": "200"}
    assert moved("audit_trail_http_requests_total", **read) >= 1
    names = {name for name, _ in after}
    assert "audit_trail_http_request_duration_seconds_bucket" in names
    # No series names a tenant or a chain.
    for _, labels in after:
        assert tenant.tenant not in str(labels) and "credit" not in str(labels)
