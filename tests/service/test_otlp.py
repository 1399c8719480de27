"""The OTLP/HTTP traces receiver, driven by the real OpenTelemetry SDK and OTLPSpanExporter
(protobuf, plain and gzip) over real HTTP, and by hand-written OTLP/JSON."""

from __future__ import annotations

import asyncio
import base64
import gzip
import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.service.conftest import TenantKeys
from tests.service.helpers import all_entries, chain_size, headers, leaf_bytes

GENAI = "dev.audit-trail.genai.invocation.v1"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def agent_trace(service: str = "support-agent") -> list[ReadableSpan]:
    """An HTTP request handled by an agent that asks a model, calls a tool, asks again."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.genai", "1.0")
    with (
        tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER),
        tracer.start_as_current_span(
            "invoke_agent support",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support",
                "gen_ai.provider.name": "openai",
                "gen_ai.conversation.id": "conv-1",
                "enduser.id": "customer-42",
            },
        ),
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.input.messages": '[{"role":"user","parts":[{"content":"Refund?"}]}]',
                "enduser.id": "customer-42",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool lookup_order",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.arguments": '{"order": "A-17"}',
            },
        ):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def exporter(live_url: str, key: str, chain: str, **options: Any) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"{live_url}/v1/chains/{chain}/otlp/v1/traces",
        headers={"Authorization": f"Bearer {key}"},
        **options,
    )


async def export(target: OTLPSpanExporter, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    try:
        return await asyncio.to_thread(target.export, spans)
    finally:
        target.shutdown()


async def stored(client: httpx.AsyncClient, tenant: TenantKeys) -> list[dict[str, Any]]:
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    return [orjson.loads(leaf_bytes(entry)) for entry in entries]


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_the_sdk_exporter_gets_its_genai_spans_in_and_skips_the_others(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str, compression: Compression
) -> None:
    spans = agent_trace()
    target = exporter(live_url, tenant.producer, tenant.chain, compression=compression)
    assert await export(target, spans) is SpanExportResult.SUCCESS
    leaves = await stored(client, tenant)
    events = [leaf["event"] for leaf in leaves]
    assert [event["data"]["name"] for event in events] == [
        "chat gpt-4o",
        "execute_tool lookup_order",
        "invoke_agent support",
    ]
    by_name = {span.name: span for span in spans}
    chat = by_name["chat gpt-4o"]
    trace_id = f"{chat.context.trace_id:032x}"
    event = events[0]
    assert event["type"] == GENAI and event["source"] == "otlp:support-agent"
    assert event["id"] == f"{trace_id}-{chat.context.span_id:016x}"
    assert event["subject"] == trace_id
    assert (
        event["data"]["parentSpanId"] == f"{by_name['invoke_agent support'].context.span_id:016x}"
    )
    nanos = str(chat.start_time)
    assert event["time"].endswith(f".{nanos[-9:]}Z")  # every nanosecond kept
    attributes = {a["key"]: a["value"] for a in event["data"]["attributes"]}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "120"}
    assert attributes["gen_ai.request.model"] == {"stringValue": "gpt-4o"}
    # Message content is sealed for the end user named on the span.
    sealed = attributes["gen_ai.input.messages"]
    assert set(sealed) == {"enc", "kid", "iv", "ct"}
    assert event["datasubject"].startswith("ps1:")
    assert "Refund" not in orjson.dumps(leaves).decode()
    # One export, one group commit.
    assert len({leaf["received_at"] for leaf in leaves}) == 1

    # Exporting again is a replay: nothing new.
    again = exporter(live_url, tenant.producer, tenant.chain, compression=compression)
    assert await export(again, spans) is SpanExportResult.SUCCESS
    assert await chain_size(client, tenant.auditor, tenant.chain) == 3


async def test_an_export_of_512_spans_is_one_group_commit(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "batch-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for turn in range(512):
        with tracer.start_as_current_span(
            "chat small-model",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": f"m-{turn}"},
        ):
            pass
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    assert len(spans) == 512  # the SDK's default max_export_batch_size
    assert await export(exporter(live_url, tenant.producer, tenant.chain), spans) is (
        SpanExportResult.SUCCESS
    )
    leaves = await stored(client, tenant)
    assert [leaf["index"] for leaf in leaves] == list(range(512))
    # Every entry of a group commit carries the group's one receive time.
    assert len({leaf["received_at"] for leaf in leaves}) == 1


def otlp_json(spans: list[dict[str, Any]], service: str = "json-agent") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "hand"}, "spans": spans}],
            }
        ]
    }


def json_span(**overrides: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "name": "chat claude",
        "kind": 3,
        "startTimeUnixNano": "1764662400123456789",
        "endTimeUnixNano": 1764662401000000000,
        "attributes": [
            {"key": "gen_ai.system", "value": {"stringValue": "anthropic"}},
            {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": 12}},
            {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "9007199254740993"}},
            {"key": "temperature", "value": {"doubleValue": "NaN"}},
            {"key": "big", "value": {"doubleValue": 1e16}},
        ],
        "unknownMember": "ignored, as OTLP/JSON receivers must",
    }
    span.update(overrides)
    return span


async def post_traces(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    body: bytes,
    content: dict[str, str],
    **extra: str,
) -> httpx.Response:
    return await client.post(
        f"/v1/chains/{tenant.chain}/otlp/v1/traces",
        content=body,
        headers=headers(tenant.producer, {**content, **extra}),
    )


async def test_hand_written_otlp_json_lands_and_its_protobuf_twin_replays_it(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    body = orjson.dumps(otlp_json([json_span()]))
    response = await post_traces(client, tenant, body, JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [leaf] = await stored(client, tenant)
    event = leaf["event"]
    assert event["id"] == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert event["time"] == "2025-12-02T08:00:00.123456789Z"
    values = {a["key"]: a["value"] for a in event["data"]["attributes"]}
    assert values["gen_ai.usage.prompt_tokens"] == {"intValue": "12"}
    assert values["gen_ai.usage.completion_tokens"] == {"intValue": "9007199254740993"}
    assert values["temperature"] == {"doubleValue": "NaN"}
    assert values["big"] == {"doubleValue": "1e+16"}
    assert "unknownMember" not in event["data"]

    # The same request as protobuf is the same event: a replay.
    request = ExportTraceServiceRequest()
    from google.protobuf import json_format

    document = otlp_json([json_span()])
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for name in ("traceId", "spanId"):
            span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
    json_format.ParseDict(document, request, ignore_unknown_fields=True)
    twin = await post_traces(client, tenant, request.SerializeToString(), PROTOBUF)
    assert twin.status_code == 200, twin.text
    assert twin.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(twin.content).HasField("partial_success")
    assert await chain_size(client, tenant.auditor, tenant.chain) == 1


async def test_invalid_genai_spans_are_rejected_with_a_message_and_the_rest_land(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    spans = [
        json_span(spanId="00000000000000AA"),
        json_span(traceId="ABCD", spanId="00000000000000BB"),  # not 16 bytes
        json_span(spanId="0000000000000000"),  # all zeros
        json_span(spanId="00000000000000CC", startTimeUnixNano="0"),
        json_span(spanId="00000000000000DD", name="GET /health", attributes=[]),  # not GenAI
    ]
    response = await post_traces(client, tenant, orjson.dumps(otlp_json(spans)), JSON)
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "3"
    assert "traceId 'abcd' is not 16 bytes" in partial["errorMessage"]
    assert "startTimeUnixNano is required" in partial["errorMessage"]
    assert await chain_size(client, tenant.auditor, tenant.chain) == 1


def deep_resource() -> bytes:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(20):
        value = {"arrayValue": {"values": [value]}}
    document = otlp_json([json_span()])
    document["resourceSpans"][0]["resource"]["attributes"].append({"key": "deep", "value": value})
    return orjson.dumps(document)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)


@pytest.mark.parametrize(
    ("body", "content", "encoding", "status"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, None, 400),  # not protobuf
        (b'{"resourceSpans": [', JSON, None, 400),  # not JSON
        (b'{"resourceSpans": 7}', JSON, None, 400),  # not OTLP/JSON
        (orjson.dumps(otlp_json([json_span(traceId="xyz")])), JSON, None, 400),  # not hex
        (deep_resource(), JSON, None, 400),  # a resource no event can hold
        (b"\x1f\x8b\x08\x00garbage", PROTOBUF, "gzip", 400),  # not gzip
        (gzipped(b"\x00" * 1000)[:-12], PROTOBUF, "gzip", 400),  # truncated gzip
        (gzipped(b"\x00" * (40 * 1024 * 1024)), PROTOBUF, "gzip", 413),  # inflates past the cap
        (b"{}", {"Content-Type": "text/plain"}, None, 415),
        (b"{}", JSON, "br", 415),
    ],
    ids=[
        "protobuf",
        "json",
        "otlp-json",
        "hex",
        "deep-resource",
        "gzip",
        "truncated-gzip",
        "gzip-bomb",
        "content-type",
        "encoding",
    ],
)
async def test_a_malformed_body_is_a_4xx_naming_the_problem_and_writes_nothing(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    body: bytes,
    content: dict[str, str],
    encoding: str | None,
    status: int,
) -> None:
    extra = {} if encoding is None else {"Content-Encoding": encoding}
    response = await post_traces(client, tenant, body, content, **extra)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    if content is PROTOBUF:
        assert response.headers["content-type"] == "application/x-protobuf"
        assert response.content[:1] == b"\x08"  # a google.rpc.Status, code first
    elif content is JSON:
        problem = response.json()
        assert problem["status"] == status and problem["code"] and problem["message"]
    else:
        assert response.headers["content-type"] == "application/problem+json"
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


async def test_the_url_key_and_the_guards_of_other_routes_hold_here(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    created = await client.post(
        "/v1/keys",
        json={"roles": ["producer"], "chains": [tenant.chain]},
        headers=headers(tenant.admin),
    )
    key = created.json()["api_key"]
    body = orjson.dumps(otlp_json([json_span(spanId=secrets.token_hex(8))]))
    by_url = await client.post(
        f"/v1/chains/{tenant.chain}/otlp/v1/traces?access_token={key}", content=body, headers=JSON
    )
    assert by_url.status_code == 200 and by_url.headers["cache-control"] == "private"
    wide = await client.post(
        f"/v1/chains/{tenant.chain}/otlp/v1/traces?access_token={tenant.producer}",
        content=body,
        headers=JSON,
    )
    assert wide.status_code == 401 and tenant.producer not in wide.text
    nul = await client.post(
        f"/v1/chains/{tenant.chain}/otlp/v1/traces?x=%00", content=body, headers=headers(key, JSON)
    )
    assert nul.status_code == 400
    named = await client.post(
        f"/v1/chains/{tenant.chain}/otlp/v1/traces",
        content=body,
        headers=headers(tenant.producer, {**JSON, "X-Request-Id": "otlp-42"}),
    )
    assert named.headers["x-request-id"] == "otlp-42"
    get = await client.get(f"/v1/chains/{tenant.chain}/otlp/v1/traces")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
