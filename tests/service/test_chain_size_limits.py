"""The event size limit is a chain's setting, and a chain may keep an over-limit body as its
digest, size and content type instead of refusing it: senders that never retry (KServe,
Seldon) then lose nothing but the bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent
from prometheus_client import REGISTRY

from tests.service.conftest import TenantKeys
from tests.service.helpers import all_entries, chain_size, headers, leaf_bytes

IMAGE = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(300 * 1024)


def image_event(source: str) -> tuple[dict[str, str], bytes]:
    message = to_binary_event(
        CloudEvent(
            attributes={
                "type": "org.kubeflow.serving.inference.request",
                "source": source,
                "datacontenttype": "image/png",
            },
            data=IMAGE,
        )
    )
    return message.headers, message.body


async def post_image(client: httpx.AsyncClient, tenant: TenantKeys, source: str) -> httpx.Response:
    message_headers, body = image_event(source)
    return await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=body,
        headers=headers(tenant.producer, message_headers),
    )


async def configure(
    client: httpx.AsyncClient, tenant: TenantKeys, **settings: object
) -> httpx.Response:
    return await client.put(
        f"/v1/chains/{tenant.chain}/ingest", json=settings, headers=headers(tenant.admin)
    )


SERVICES = Path(__file__).resolve().parents[2] / "services"


def refused() -> float:
    value = REGISTRY.get_sample_value("audit_trail_events_refused_total", {"reason": "too-large"})
    return value or 0.0


async def test_over_the_default_limit_is_refused_and_counted(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    before = refused()
    response = await post_image(client, tenant, "http://pod-a/")
    assert response.status_code == 413, response.text
    assert "at most 262144" in response.json()["detail"]
    assert refused() == before + 1
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


def test_refusals_are_counted_per_chain_and_source_only_when_asked_and_never_by_name() -> None:
    """Labels by chain are the operator's choice, and then an opaque id, never a name."""
    program = (
        "from decision_log.ingest.metrics import count_refused, EVENTS_REFUSED\n"
        "from prometheus_client import generate_latest\n"
        "count_refused(chain_id=42, source='http://pod-a/', reason='too-large')\n"
        "print(generate_latest().decode())"
    )
    environment = {**os.environ, "PYTHONPATH": str(SERVICES)}

    def scrape(per_chain: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", program],
            env={**environment, "AUDIT_TRAIL_METRICS_PER_CHAIN": per_chain},
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert (
        'audit_trail_events_refused_total{reason="too-large"} 1.0' in scrape("false").splitlines()
    )
    assert (
        'audit_trail_events_refused_total{chain_id="42",reason="too-large",source="http://pod-a/"}'
        " 1.0" in scrape("true").splitlines()
    )


async def test_a_chain_with_a_larger_limit_keeps_the_body(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    settings = await configure(client, tenant, max_event_bytes=1024 * 1024)
    assert settings.status_code == 200, settings.text
    assert settings.json()["oversize"] == "refuse"
    response = await post_image(client, tenant, "http://pod-a/")
    assert response.status_code == 201, response.text
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    configured, image = (orjson.loads(leaf_bytes(e))["event"] for e in entries)
    assert configured["type"] == "dev.audit-trail.chain.ingest-configured.v1"
    assert configured["data"]["max_event_bytes"] == 1024 * 1024
    assert base64.b64decode(image["data_base64"]) == IMAGE


async def test_a_digest_chain_keeps_an_over_limit_body_as_its_digest(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    assert (await configure(client, tenant, max_event_bytes=4096, oversize="digest")).is_success
    before = refused()
    response = await post_image(client, tenant, "http://pod-a/")
    assert response.status_code == 201, response.text
    again = await post_image(client, tenant, "http://pod-a/")
    assert again.status_code == 201  # a new id each time (the SDK makes one)
    stored = orjson.loads(leaf_bytes((await all_entries(client, tenant.auditor, tenant.chain))[1]))
    event = stored["event"]
    assert "data_base64" not in event and "data" not in event
    assert event["datadigest"] == "sha256:" + hashlib.sha256(IMAGE).hexdigest()
    assert event["datasize"] == len(IMAGE)
    assert event["datacontenttype"] == "image/png"
    assert refused() == before  # kept as its digest, not refused


async def test_only_an_admin_sets_limits_within_range(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    producer = await client.put(
        f"/v1/chains/{tenant.chain}/ingest",
        json={"max_event_bytes": 4096},
        headers=headers(tenant.producer),
    )
    assert producer.status_code == 403
    for bad in (
        {"max_event_bytes": 10},
        {"max_event_bytes": 2**31},
        {"max_event_bytes": 4096, "oversize": "drop"},
    ):
        response = await configure(client, tenant, **bad)
        assert response.status_code == 400, (bad, response.text)
    read = await client.get(f"/v1/chains/{tenant.chain}/ingest", headers=headers(tenant.auditor))
    assert read.status_code == 200
    assert read.json() == {
        "max_event_bytes": 262144,
        "oversize": "refuse",
        "genai_content": "seal",
        "genai_subject_attribute": "enduser.id",
    }
