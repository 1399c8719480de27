"""OTLP/HTTP trace requests: the body under a cap, decompressed, decoded into one normal form.

https://github.com/open-telemetry/opentelemetry-proto/blob/main/docs/specification.md#otlphttp

- The body is ``application/x-protobuf`` (what the Python ``OTLPSpanExporter`` sends, and all it
  sends) or ``application/json`` (OTLP/JSON), optionally ``Content-Encoding: gzip``. The limit
  applies to the decompressed size too, as the specification requires of servers: gzip is
  inflated as it arrives and stopped at the cap, so a small body that inflates to gigabytes
  costs the cap, not the memory (413).
- Both encodings become the same ``opentelemetry.proto`` messages: OTLP/JSON through the
  protobuf JSON mapping, after its one deviation is undone (``traceId``, ``spanId`` and
  ``parentSpanId`` are hex, not base64); unknown members are ignored, as OTLP/JSON receivers
  MUST. From the messages, a span is written in OTLP/JSON form (``span_json``), the way it is
  kept in the log, so a span exported once as protobuf and once as JSON is the same event.
- A body that does not decode (protobuf, JSON or gzip) is a 400: nothing of it is written.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.types import Receive

from decision_log.problems import (
    InvalidInput,
    InvalidJSON,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
HEX_ID_MEMBERS = ("traceId", "spanId", "parentSpanId")
# Doubles JSON carries as numbers without tripping the log's integer rule (RFC 7493 §2.2, see
# ledger.canonical): integral values from 2^53 on go as strings, as the protobuf JSON mapping
# allows for any double.
EXACT_INTEGRAL_DOUBLE = 2.0**53


class SpanRejected(Exception):
    """A span this log will not append; listed in the answer's ``partial_success``."""


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    resource: dict[str, Any]  # OTLP/JSON Resource
    scope: dict[str, Any]  # OTLP/JSON InstrumentationScope
    span: Span


async def read_body(
    receive: Receive,
    *,
    gzip: bool,
    wire_limit: int,
    limit: int,
    on_bytes: Callable[[int], None],
) -> bytes:
    """The request body, inflated if ``gzip``; at most ``wire_limit`` bytes arrive and at most
    ``limit`` come out (413 past either). ``on_bytes(n)`` is told of every ``n`` bytes the
    request comes to hold, before they are held (admission)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzip else None
    parts: list[bytes] = []
    received = produced = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem("the client went away before the body was read")
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > wire_limit:
            raise PayloadTooLarge(f"the body exceeds {wire_limit} bytes")
        more = bool(message.get("more_body", False))
        piece = chunk
        if inflater is not None:
            try:
                # At most one byte past the cap comes out of a chunk, however far it would
                # inflate: a gzip bomb stops here.
                piece = inflater.decompress(chunk, limit - produced + 1)
                if not more and produced + len(piece) <= limit:
                    piece += inflater.flush()
            except zlib.error as error:
                raise InvalidInput(f"the gzip body does not inflate: {error}") from None
        if produced + len(piece) > limit:
            what = "once decompressed" if inflater is not None else ""
            raise PayloadTooLarge(f"the body exceeds {limit} bytes {what}".rstrip())
        if piece:
            on_bytes(len(piece))
            produced += len(piece)
            parts.append(piece)
        if not more:
            break
    if inflater is not None:
        if not inflater.eof:
            raise InvalidInput("the gzip body ends before its end (truncated)")
        if inflater.unused_data:
            raise InvalidInput("bytes follow the end of the gzip body")
    return b"".join(parts)


def decode_request(body: bytes, media_type: str) -> ExportTraceServiceRequest:
    if media_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except (DecodeError, RecursionError) as error:
            raise InvalidInput(
                f"the body is not a protobuf ExportTraceServiceRequest: {error}"
            ) from None
    if media_type == JSON:
        return _from_json(body)
    raise UnsupportedMediaType(
        f"content type {media_type or 'none'!r} is not OTLP; send {PROTOBUF} or {JSON}"
    )


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidJSON(f"the body is not JSON: {error}", pointer="") from None
    if not isinstance(document, dict):
        raise InvalidInput("an OTLP/JSON body is an ExportTraceServiceRequest object", pointer="")
    _hex_ids_as_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        raise InvalidInput(f"the body is not OTLP/JSON: {error}", pointer="") from None
    return request


def _hex_ids_as_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids in hex where the protobuf JSON mapping has base64."""
    for r, resource_spans in _members(document, "resourceSpans"):
        for s, scope_spans in _members(resource_spans, "scopeSpans"):
            for n, span in _members(scope_spans, "spans"):
                where = f"/resourceSpans/{r}/scopeSpans/{s}/spans/{n}"
                _convert_ids(span, where)
                for k, link in _members(span, "links"):
                    _convert_ids(link, f"{where}/links/{k}")


def _members(container: Any, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    items = container.get(name) if isinstance(container, dict) else None
    if isinstance(items, list):
        for position, item in enumerate(items):
            if isinstance(item, dict):
                yield position, item


def _convert_ids(message: dict[str, Any], where: str) -> None:
    for name in HEX_ID_MEMBERS:
        value = message.get(name)
        if not isinstance(value, str):
            continue
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise InvalidInput(
                f"{name} must be hex (OTLP/JSON), not {value[:40]!r}", pointer=f"{where}/{name}"
            ) from None
        message[name] = base64.b64encode(raw).decode("ascii")


def received_spans(request: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    """Every span of the request with its resource and scope in OTLP/JSON form. A resource or
    scope whose attributes nest too deep for an event is a malformed request (400), since
    none of its spans could be appended."""
    try:
        yield from _received_spans(request)
    except SpanRejected as rejected:
        raise InvalidInput(f"a resource or scope cannot be kept: {rejected}") from None


def _received_spans(request: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    for resource_spans in request.resource_spans:
        resource: dict[str, Any] = {
            "attributes": [attribute_json(kv, depth=1) for kv in resource_spans.resource.attributes]
        }
        if resource_spans.resource.dropped_attributes_count:
            resource["droppedAttributesCount"] = resource_spans.resource.dropped_attributes_count
        for scope_spans in resource_spans.scope_spans:
            scope: dict[str, Any] = {}
            if scope_spans.scope.name:
                scope["name"] = scope_spans.scope.name
            if scope_spans.scope.version:
                scope["version"] = scope_spans.scope.version
            if scope_spans.scope.attributes:
                scope["attributes"] = [
                    attribute_json(kv, depth=1) for kv in scope_spans.scope.attributes
                ]
            for span in scope_spans.spans:
                yield ReceivedSpan(resource=resource, scope=scope, span=span)


def span_json(span: Span) -> dict[str, Any]:
    """A span in OTLP/JSON form: hex ids, integer enums, 64-bit integers as decimal strings,
    members at their default value left out (the protobuf JSON mapping), apart from those every
    span has."""
    out: dict[str, Any] = {"traceId": span.trace_id.hex(), "spanId": span.span_id.hex()}
    if span.trace_state:
        out["traceState"] = span.trace_state
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id.hex()
    if span.flags:
        out["flags"] = span.flags
    out["name"] = span.name
    out["kind"] = int(span.kind)
    out["startTimeUnixNano"] = str(span.start_time_unix_nano)
    out["endTimeUnixNano"] = str(span.end_time_unix_nano)
    out["attributes"] = [attribute_json(kv, depth=1) for kv in span.attributes]
    if span.dropped_attributes_count:
        out["droppedAttributesCount"] = span.dropped_attributes_count
    if span.events:
        events = []
        for event in span.events:
            item: dict[str, Any] = {"timeUnixNano": str(event.time_unix_nano), "name": event.name}
            item["attributes"] = [attribute_json(kv, depth=1) for kv in event.attributes]
            if event.dropped_attributes_count:
                item["droppedAttributesCount"] = event.dropped_attributes_count
            events.append(item)
        out["events"] = events
    if span.dropped_events_count:
        out["droppedEventsCount"] = span.dropped_events_count
    if span.links:
        links = []
        for link in span.links:
            linked: dict[str, Any] = {
                "traceId": link.trace_id.hex(),
                "spanId": link.span_id.hex(),
            }
            if link.trace_state:
                linked["traceState"] = link.trace_state
            linked["attributes"] = [attribute_json(kv, depth=1) for kv in link.attributes]
            if link.dropped_attributes_count:
                linked["droppedAttributesCount"] = link.dropped_attributes_count
            if link.flags:
                linked["flags"] = link.flags
            links.append(linked)
        out["links"] = links
    if span.dropped_links_count:
        out["droppedLinksCount"] = span.dropped_links_count
    status: dict[str, Any] = {}
    if span.status.code:
        status["code"] = int(span.status.code)
    if span.status.message:
        status["message"] = span.status.message
    out["status"] = status
    return out


# How deep attribute values may nest, counted as the log counts JSON depth for events
# (AUDIT_TRAIL_MAX_JSON_DEPTH, 32): the event, data, attributes, one attribute and its value
# take five levels, and each array or key-value list below takes two.
MAX_VALUE_DEPTH = 12


def attribute_json(kv: KeyValue, *, depth: int) -> dict[str, Any]:
    return {"key": kv.key, "value": any_value_json(kv.value, depth=depth)}


def any_value_json(value: AnyValue, *, depth: int) -> dict[str, Any]:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return {"stringValue": value.string_value}
    if kind == "int_value":
        return {"intValue": str(value.int_value)}
    if kind == "bool_value":
        return {"boolValue": value.bool_value}
    if kind == "double_value":
        return {"doubleValue": _double(value.double_value)}
    if kind == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode("ascii")}
    if kind in ("array_value", "kvlist_value") and depth >= MAX_VALUE_DEPTH:
        raise SpanRejected(f"an attribute value nests deeper than {MAX_VALUE_DEPTH} levels")
    if kind == "array_value":
        return {
            "arrayValue": {
                "values": [
                    any_value_json(item, depth=depth + 1) for item in value.array_value.values
                ]
            }
        }
    if kind == "kvlist_value":
        return {
            "kvlistValue": {
                "values": [
                    attribute_json(item, depth=depth + 1) for item in value.kvlist_value.values
                ]
            }
        }
    return {}


def _double(number: float) -> float | str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) >= EXACT_INTEGRAL_DOUBLE:
        return repr(number)
    return number
