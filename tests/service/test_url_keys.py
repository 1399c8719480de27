"""Webhook auth for senders that cannot set headers: ``?access_token=<key>`` (CloudEvents
http-webhook.md §3.2), taken only on the ingest routes and only from a key that can do nothing
but append to that one chain; the key never shows up in logs or answers."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import orjson
import pytest
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from tests.service.conftest import TenantKeys
from tests.service.helpers import STRUCTURED, chain_size, decision_event, headers

# The test's own HTTP client logs the URLs it requests; only the service's logs count here.
CLIENT_LOGGERS = ("httpx", "httpcore")


def service_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(CLIENT_LOGGERS)
    )


async def create_key(
    client: httpx.AsyncClient, tenant: TenantKeys, roles: list[str], chains: list[str] | None
) -> str:
    body: dict[str, object] = {"roles": roles}
    if chains is not None:
        body["chains"] = chains
    created = await client.post("/v1/keys", json=body, headers=headers(tenant.admin))
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


def kserve_message() -> tuple[dict[str, str], bytes]:
    message = to_binary_event(
        CloudEvent(
            attributes={
                "type": "org.kubeflow.serving.inference.request",
                "source": "http://localhost:9081/",
                "inferenceservicename": "sklearn-iris",
                "namespace": "default",
                "endpoint": "",
                "metadata": "{}",
                "datacontenttype": "application/json",
            },
            data={"instances": [[6.8, 2.8, 4.8, 1.4]]},
        )
    )
    return message.headers, message.body


async def test_a_chain_limited_producer_key_in_the_url_appends(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    key = await create_key(client, tenant, ["producer"], [tenant.chain])
    message_headers, body = kserve_message()
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events?access_token={quote(key, safe='')}",
        content=body,
        headers=message_headers,
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "private"
    assert await chain_size(client, tenant.auditor, tenant.chain) == 1


@pytest.mark.parametrize(
    ("roles", "chains"),
    [
        (["producer"], None),  # every chain
        (["producer"], ["credit", "other"]),  # more than this chain
        (["producer", "auditor"], ["credit"]),  # more than appending
        (["auditor"], ["credit"]),
        (["admin"], None),
    ],
)
async def test_any_other_key_in_the_url_is_refused_though_valid(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    roles: list[str],
    chains: list[str] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await create_key(client, tenant, roles, chains)
    message_headers, body = kserve_message()
    caplog.set_level(logging.DEBUG)
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events?access_token={key}",
        content=body,
        headers=message_headers,
    )
    assert response.status_code == 401, response.text
    assert "sole role is producer" in response.json()["detail"]
    assert key not in response.text and key not in service_log(caplog)
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


async def test_a_key_in_the_url_of_any_other_route_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    key = await create_key(client, tenant, ["producer"], [tenant.chain])
    for path in (f"/v1/chains/{tenant.chain}", f"/v1/chains/{tenant.chain}/entries", "/v1/keys"):
        response = await client.get(f"{path}?access_token={key}", headers=headers(tenant.admin))
        assert response.status_code == 401, (path, response.text)
        assert key not in response.text


async def test_a_key_sent_twice_is_refused(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    key = await create_key(client, tenant, ["producer"], [tenant.chain])
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events?access_token={key}",
        content=orjson.dumps(decision_event()),
        headers=headers(key, STRUCTURED),
    )
    assert response.status_code == 400 and response.json()["parameter"] == "access_token"
    assert key not in response.text


async def test_a_url_key_never_reaches_logs_or_answers_whatever_fails(
    client: httpx.AsyncClient, tenant: TenantKeys, caplog: pytest.LogCaptureFixture
) -> None:
    key = await create_key(client, tenant, ["producer"], [tenant.chain])
    message_headers, body = kserve_message()
    caplog.set_level(logging.DEBUG)
    failures = [
        ({**message_headers, "ce-id": "%C0%A0"}, body),  # a bad header
        ({"content-type": "application/cloudevents+json"}, b"{"),  # bad JSON
        ({"content-type": "application/cloudevents+avro"}, b"{}"),  # 415
    ]
    answers = []
    for sent_headers, sent_body in failures:
        answers.append(
            await client.post(
                f"/v1/chains/{tenant.chain}/events?access_token={key}",
                content=sent_body,
                headers=sent_headers,
            )
        )
    answers.append(await client.post(f"/v1/chains/no-such/events?access_token={key}", content=body))
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert key not in answer.text and key not in str(answer.headers)
    assert key not in service_log(caplog)
