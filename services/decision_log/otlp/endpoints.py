"""POST /v1/chains/{chain}/otlp/v1/traces: an OTLP/HTTP traces receiver, served as plain ASGI
before FastAPI sees the request, as the append route is (``events.endpoints``).

It is served before routing for its body: OTLP bodies are larger than the 1 MiB the request
guard lets other routes read, and may be gzip, whose decompressed size is what must be capped
(``decoding.read_body``). Everything else the guard does for other routes it does here too:
the request id (``X-Request-Id``), the path and query refused if they hold a NUL or bytes that
are not UTF-8, and no exception answered with a bare 500. Point an OpenTelemetry SDK at it with
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<log>/v1/chains/<chain>/otlp/v1/traces`` and
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <key>``.

Answers follow OTLP/HTTP: 200 with an ``ExportTraceServiceResponse`` in the request's encoding
(``partial_success`` when spans were rejected), and for a failure a ``google.rpc.Status`` in the
request's encoding (protobuf; for JSON, the problem details with ``code`` and ``message`` added),
or an RFC 9457 problem where the encoding is not known (415). 503 carries Retry-After.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter
from http_edge.guard import check_target, problem_for_exception
from http_edge.request_ids import request_id_from, set_request_id
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.types import Receive, Scope, Send

from decision_log.auth import ingest_caller
from decision_log.boundary import SLUG_PATTERN
from decision_log.events.admission import Ticket
from decision_log.events.binary import media_type_of
from decision_log.events.endpoints import URL_KEY_ANSWER_HEADERS, URL_KEY_PARAMETER, respond
from decision_log.otlp import service
from decision_log.otlp.decoding import JSON, PROTOBUF, decode_request, read_body
from decision_log.problems import (
    PROBLEM_MEDIA_TYPE,
    InternalError,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
)
from decision_log.state import AppState

OTLP_TRACES_PATH = re.compile(r"^/v1/chains/([^/]+)/otlp/v1/traces$")
# The gRPC status code (google.rpc.Code) closest to each HTTP status of a failure; OTLP clients
# go by the HTTP status, and may log this.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 413: 8, 415: 3, 503: 14}
GRPC_INTERNAL = 13
MAX_REJECTION_MESSAGES = 10

router = APIRouter()


@router.post("/v1/chains/{chain}/otlp/v1/traces", include_in_schema=False)
async def otlp_served_before_routing() -> None:
    """Never reached (served before routing); makes other methods a 405 with Allow: POST."""
    raise InternalError()


def otlp_chain(scope: Scope) -> str | None:
    """The chain named by an OTLP traces request's path, or None for any other request."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    match = OTLP_TRACES_PATH.match(scope["path"])
    return None if match is None else match.group(1)


async def serve_otlp_traces(
    state: AppState, scope: Scope, receive: Receive, send: Send, chain: str
) -> None:
    request_id = request_id_from(scope["headers"])
    set_request_id(request_id)
    headers = {name: value for name, value in scope["headers"]}
    media_type = media_type_of(headers.get(b"content-type"))
    try:
        check_target(scope)
        answer, extra = await _export(state, scope, receive, headers, media_type, chain)
        status = 200
    except Exception as error:
        problem = problem_for_exception(error, scope)
        status, extra = problem.status, problem.headers
        media_type, answer = failure_body(problem, media_type)
    content_type = PROBLEM_MEDIA_TYPE if media_type not in (PROTOBUF, JSON) else media_type
    await respond(send, status, content_type.encode(), answer, extra, request_id=request_id)


async def _export(
    state: AppState,
    scope: Scope,
    receive: Receive,
    headers: dict[bytes, bytes],
    media_type: str,
    chain: str,
) -> tuple[bytes, dict[str, str]]:
    if media_type not in (PROTOBUF, JSON):
        raise UnsupportedMediaType(
            f"content type {media_type or 'none'!r} is not OTLP; send {PROTOBUF} or {JSON}"
        )
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding not in (b"identity", b"gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding.decode('latin-1')!r} is not accepted; send gzip or none"
        )
    principal, key_in_url = await ingest_caller(
        state.authenticator,
        authorization=headers.get(b"authorization", b""),
        query=scope.get("query_string", b""),
        chain=chain,
    )
    settings = state.settings
    declared = headers.get(b"content-length", b"")
    length = int(declared) if declared.isdigit() else -1
    if length > settings.max_body_bytes:
        raise PayloadTooLarge(
            f"the body is {length} bytes; at most {settings.max_body_bytes} are accepted"
        )
    admission = state.committer.admission
    ticket = Ticket(principal.tenant)
    # As for appends, the body's bytes are reserved before one is read; inflated bytes are
    # reserved as they come out (events.admission).
    admission.reserve(ticket, "bytes", settings.max_body_bytes if length < 0 else length)
    try:
        gzip = encoding == b"gzip"
        body = await read_body(
            receive,
            gzip=gzip,
            wire_limit=settings.max_body_bytes,
            limit=settings.max_otlp_bytes,
            on_bytes=(lambda size: admission.reserve(ticket, "bytes", size)) if gzip else _nothing,
        )
        request = decode_request(body, media_type)
        del body
        received = await service.receive_traces(
            state, principal, chain=chain, request=request, ticket=ticket
        )
    finally:
        admission.release(ticket, "bytes")
    return success_body(received, media_type), URL_KEY_ANSWER_HEADERS if key_in_url else {}


def _nothing(_: int) -> None:
    return None


def success_body(received: service.TracesReceived, media_type: str) -> bytes:
    rejected = len(received.rejections)
    message = "; ".join(received.rejections[:MAX_REJECTION_MESSAGES])
    if rejected > MAX_REJECTION_MESSAGES:
        message += f"; and {rejected - MAX_REJECTION_MESSAGES} more"
    if media_type == JSON:
        content: dict[str, Any] = {}
        if rejected:
            content["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
        return orjson.dumps(content)
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response.SerializeToString()


def failure_body(problem: Problem, media_type: str) -> tuple[str, bytes]:
    """A failure as OTLP/HTTP answers it: a google.rpc.Status in the request's encoding."""
    code = GRPC_CODES.get(problem.status, GRPC_INTERNAL)
    if media_type == PROTOBUF:
        return media_type, status_protobuf(code, _status_message(problem))
    if media_type == JSON:
        return media_type, orjson.dumps(
            {"code": code, "message": _status_message(problem), **problem.body()}
        )
    return PROBLEM_MEDIA_TYPE, problem.to_json()


def _status_message(problem: Problem) -> str:
    body = problem.body()
    where = "".join(f"; {name} {body[name]}" for name in ("pointer", "request_id") if name in body)
    return f"{problem.title}: {problem.detail}{where}"


def status_protobuf(code: int, message: str) -> bytes:
    """``google.rpc.Status{code, message}`` in the protobuf wire format (field 1 varint, field 2
    length-delimited), written by hand: no other field is sent."""
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


OTLP_ERROR_CONTENT = {
    PROTOBUF: {
        "schema": {"type": "string", "format": "binary", "description": "google.rpc.Status"}
    },
    JSON: {"schema": {"$ref": "#/components/schemas/Problem"}},
}


def document_otlp(openapi: dict[str, Any]) -> None:
    """Add the OTLP traces operation to an OpenAPI document (before ``document_problems``)."""
    openapi.setdefault("paths", {})["/v1/chains/{chain}/otlp/v1/traces"] = {
        "post": {
            "tags": ["events"],
            "summary": "OTLP/HTTP traces receiver: OpenTelemetry GenAI spans become events",
            "description": (
                "An `ExportTraceServiceRequest` as protobuf or OTLP/JSON, optionally gzip "
                "(`Content-Encoding: gzip`; the size limit applies to the decompressed body). "
                "Each span with `gen_ai.*` attributes becomes one "
                "`dev.audit-trail.genai.invocation.v1` event; other spans are skipped. All of "
                "one export is appended in one group commit. Spans that cannot be appended are "
                "counted in `partial_success.rejected_spans` with a message. Failures carry a "
                "`google.rpc.Status` in the request's encoding."
            ),
            "operationId": "export_traces",
            "security": [{"HTTPBearer": []}],
            "parameters": [
                {
                    "name": "chain",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": SLUG_PATTERN,
                        "minLength": 1,
                        "maxLength": 64,
                    },
                },
                URL_KEY_PARAMETER,
            ],
            "requestBody": {
                "required": True,
                "content": {
                    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                    JSON: {
                        "schema": {
                            "type": "object",
                            "description": "OTLP/JSON ExportTraceServiceRequest",
                        }
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "Accepted (ExportTraceServiceResponse; partialSuccess lists "
                    "the rejected spans)",
                    "content": {
                        PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "partialSuccess": {
                                        "type": "object",
                                        "properties": {
                                            "rejectedSpans": {"type": "string"},
                                            "errorMessage": {"type": "string"},
                                        },
                                    }
                                },
                            }
                        },
                    },
                },
                "415": {"description": "Neither protobuf nor OTLP/JSON, or not gzip"},
            },
        }
    }


def document_otlp_failures(openapi: dict[str, Any]) -> None:
    """After ``document_problems``: failures come in the request's encoding too."""
    operation = openapi["paths"]["/v1/chains/{chain}/otlp/v1/traces"]["post"]
    for status, response in operation["responses"].items():
        if int(status) >= 400 and int(status) != 415:
            response["content"] = {**response["content"], **OTLP_ERROR_CONTENT}
