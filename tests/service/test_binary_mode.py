"""CloudEvents HTTP binding, binary mode, as the official Python SDK (cloudevents 2.2) sends it:
attributes in ce-* headers, the data as the body (http-protocol-binding.md v1.0.2, §3.1)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from tests.service.conftest import TenantKeys
from tests.service.helpers import all_entries, chain_size, headers, leaf_bytes


def sdk_event(data: Any = None, **attributes: Any) -> CloudEvent:
    return CloudEvent(
        attributes={"type": "com.example.scored.v1", "source": "urn:test:scorer", **attributes},
        data=data,
    )


async def post(
    client: httpx.AsyncClient, tenant: TenantKeys, message_headers: dict[str, str], body: bytes
) -> httpx.Response:
    return await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=body,
        headers=headers(tenant.producer, message_headers),
    )


async def stored_events(client: httpx.AsyncClient, tenant: TenantKeys) -> list[dict[str, Any]]:
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    return [orjson.loads(leaf_bytes(entry))["event"] for entry in entries]


async def test_sdk_binary_event_lands_as_its_structured_form_and_each_replays_the_other(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = sdk_event({"score": 0.37, "features": {"income": 42000}}, subject="loan-1")
    binary = to_binary_event(event)
    assert "content-type" not in binary.headers  # the SDK sends none for dict data
    first = await post(client, tenant, binary.headers, binary.body)
    assert first.status_code == 201, first.text

    structured = to_structured_event(event)
    again = await post(client, tenant, structured.headers, structured.body)
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    assert again.json()["leaf_hash"] == first.json()["leaf_hash"]
    [stored] = await stored_events(client, tenant)
    assert stored == orjson.loads(structured.body)
    assert stored["data"] == {"score": 0.37, "features": {"income": 42000}}

    # And the other way round, for an event first sent structured.
    other = sdk_event({"n": 1}, datacontenttype="application/json")
    assert (await post(client, tenant, *_parts(to_structured_event(other)))).status_code == 201
    replay = await post(client, tenant, *_parts(to_binary_event(other)))
    assert replay.status_code == 200 and replay.json()["index"] == 1


def _parts(message: Any) -> tuple[dict[str, str], bytes]:
    return message.headers, message.body


async def test_json_content_types_store_data_and_others_data_base64(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    cases = [
        ("application/json; charset=utf-8", b'{"a": [1, 2]}', "data", {"a": [1, 2]}),
        ("application/vnd.kserve+json", b'{"b": true}', "data", {"b": True}),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00", "data_base64", None),
        ("text/plain", b"hello", "data_base64", None),
        # JSON by its type, but not under the log's JSON rules: kept as the bytes sent.
        ("application/json", b'{"score": NaN}', "data_base64", None),
        ("application/json", b'{"a": 1, "a": 2}', "data_base64", None),
        ("application/json", b'{"big": 9007199254740993}', "data_base64", None),
    ]
    for position, (content_type, body, _, _) in enumerate(cases):
        message = to_binary_event(sdk_event(body, datacontenttype=content_type, id=f"e{position}"))
        assert message.headers["content-type"] == content_type and message.body == body
        response = await post(client, tenant, message.headers, message.body)
        assert response.status_code == 201, (content_type, response.text)
    stored = await stored_events(client, tenant)
    for (content_type, body, member, data), event in zip(cases, stored, strict=True):
        assert event["datacontenttype"] == content_type
        assert member in event and ({"data", "data_base64"} - {member}).isdisjoint(event)
        if member == "data":
            assert event["data"] == data
        else:
            assert base64.b64decode(event["data_base64"]) == body


async def test_an_empty_body_is_an_event_without_data(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    message = to_binary_event(sdk_event(None, id="no-data"))
    assert message.body == b""
    assert (await post(client, tenant, message.headers, message.body)).status_code == 201
    [stored] = await stored_events(client, tenant)
    assert "data" not in stored and "data_base64" not in stored


async def test_header_values_are_percent_decoded_as_utf8(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    message = to_binary_event(sdk_event({}, note='café "x"', subject="Zoë 😀"))
    assert message.headers["ce-note"] == "caf%C3%A9%20%22x%22"
    assert (await post(client, tenant, message.headers, message.body)).status_code == 201
    # Lower-case hex, and a legacy quoted value, decode too (§3.1.3.2).
    legacy = {**message.headers, "ce-id": "second", "ce-note": '"caf%c3%a9 \\"x\\""'}
    assert (await post(client, tenant, legacy, message.body)).status_code == 201
    first, second = await stored_events(client, tenant)
    assert first["note"] == second["note"] == 'café "x"'
    assert first["subject"] == "Zoë 😀"


@pytest.mark.parametrize(
    ("change", "header", "words"),
    [
        ({"ce-note": "%C0%A0"}, "ce-note", "UTF-8"),
        ({"ce-id": "a%ZZb"}, "ce-id", "percent-encoded"),
        ({"ce-id": "100%"}, "ce-id", "percent-encoded"),
        ({"ce-specversion": None}, "ce-specversion", "needs the header"),
        ({"ce-id": None, "ce-source": None}, "ce-id", "ce-id, ce-source"),
        ({"ce-specversion": "0.3"}, "ce-specversion", "not supported"),
        ({"ce-time": "yesterday"}, "ce-time", "RFC 3339"),
        ({"ce-Bad_Name": "x"}, "ce-bad_name", "lower-case"),
        ({"ce-datacontenttype": "application/json"}, "ce-datacontenttype", "Content-Type"),
        ({"ce-id": "i" * 201}, "ce-id", "at most 200"),
        ({"ce-id": "a%00b"}, "ce-id", "NUL"),
    ],
)
async def test_a_bad_header_is_a_400_naming_it_and_writes_nothing(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    change: dict[str, str | None],
    header: str,
    words: str,
) -> None:
    message = to_binary_event(sdk_event({"a": 1}))
    sent = {**message.headers}
    for name, value in change.items():
        if value is None:
            del sent[name]
        else:
            sent[name] = value
    response = await post(client, tenant, sent, message.body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["header"] == header and words in problem["detail"], problem
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


async def test_a_structured_event_sent_without_its_content_type_is_told_how_to_send_it(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    structured = to_structured_event(sdk_event({"a": 1}))
    response = await post(client, tenant, {"Content-Type": "application/json"}, structured.body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["header"] == "ce-specversion"
    assert "Content-Type: application/cloudevents+json" in problem["detail"]


async def test_a_binary_event_of_the_logs_own_type_is_checked_against_its_schema(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = sdk_event(
        {"model": {"name": "credit-gbm"}, "output": {"decision": "declined"}},
        type="dev.audit-trail.decision.recorded.v1",
        subject="loan-9",
        datacontenttype="application/json",
    )
    message = to_binary_event(event)
    response = await post(client, tenant, message.headers, message.body)
    assert response.status_code == 400
    assert response.json()["pointer"] == "/model/version"  # a pointer into the body
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0
