"""POST /v1/chains/{chain}/events, served as plain ASGI before FastAPI sees the request.

This one route carries every event producers send, so it skips FastAPI's middleware, routing,
dependency solving and request/response objects, which cost more CPU per request than the
append itself (measured in bench/ingest.py; see README, Performance); ``DecisionLogApp`` in
``decision_log.app`` sends it here. It authenticates, reads and answers exactly as the other
routes do, through the same authenticator, service and problem bodies.
Its OpenAPI description is added by ``document_append`` so the published document stays whole.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter
from http_edge.guard import problem_for_exception
from http_edge.logs import log_request
from http_edge.metrics import observe_request
from http_edge.request_ids import SAFE_REQUEST_ID, new_request_id, set_request_id
from starlette.types import Message, Receive, Scope, Send

from decision_log.auth import ingest_caller
from decision_log.boundary import SLUG_PATTERN
from decision_log.events import service
from decision_log.events.admission import Ticket
from decision_log.events.cloudevents import BATCH, STRUCTURED
from decision_log.events.schemas import (
    CLOUDEVENT_SCHEMA,
    AppendBatchResponse,
    AppendResponse,
)
from decision_log.metrics import count_refused_request
from decision_log.problems import (
    PROBLEM_MEDIA_TYPE,
    InternalError,
    PayloadTooLarge,
    Problem,
)
from decision_log.settings import Settings
from decision_log.state import AppState

APPEND_PATH = re.compile(r"^/v1/chains/([^/]+)/events$")
APPEND_ROUTE = "/v1/chains/{chain}/events"  # as routes are named in logs and metrics
# A success answered to a key sent in the URL is not to be kept by shared caches
# (CloudEvents http-webhook.md §3.2).
URL_KEY_ANSWER_HEADERS = {"Cache-Control": "private"}

# The append route as FastAPI knows it: never reached (DecisionLogApp serves POST before
# routing), it makes other methods on the path a 405 with Allow: POST rather than a 404.
router = APIRouter()


@router.post("/v1/chains/{chain}/events", include_in_schema=False)
async def append_served_before_routing() -> None:
    raise InternalError()


def append_chain(scope: Scope) -> str | None:
    """The chain named by an append request's path, or None for any other request."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    match = APPEND_PATH.match(scope["path"])
    return None if match is None else match.group(1)


async def serve_append(
    state: AppState, scope: Scope, receive: Receive, send: Send, chain: str
) -> None:
    """Serve one append. It guards itself as ``http_edge.guard`` guards every other route
    (request id, no exception answered with a bare 500), inline, so the hot path pays for no
    extra middleware layer; its body is capped here, after authentication."""
    began = time.perf_counter()
    authorization = b""
    content_type: bytes | None = None
    content_length = -1
    caller_request_id = b""
    ce_headers: list[tuple[bytes, bytes]] = []
    for name, value in scope["headers"]:
        if name.startswith(b"ce-"):
            ce_headers.append((name, value))  # binary mode's attributes (events.binary)
        elif name == b"authorization":
            authorization = value
        elif name == b"content-type":
            content_type = value
        elif name == b"content-length" and value.isdigit():
            content_length = int(value)
        elif name == b"x-request-id":
            caller_request_id = value
    request_id = (
        caller_request_id.decode("ascii")
        if SAFE_REQUEST_ID.fullmatch(caller_request_id)
        else new_request_id()
    )
    set_request_id(request_id)
    try:
        status, answer, headers = await _append(
            state,
            scope,
            receive,
            chain,
            authorization=authorization,
            content_type=content_type,
            content_length=content_length,
            ce_headers=ce_headers,
        )
        media_type = b"application/json"
    except Exception as error:
        problem = problem_for_exception(error, scope)
        status, answer = problem.status, problem.to_json()
        media_type, headers = PROBLEM_MEDIA_TYPE.encode(), problem.headers
        count_refused_request(content_type)
    await respond(send, status, media_type, answer, headers, request_id=request_id)
    # What http_edge.guard does for every other route, inlined (a few microseconds).
    observe_request(
        route=APPEND_ROUTE, method="POST", status=status, seconds=time.perf_counter() - began
    )
    log_request(
        method="POST", route=APPEND_ROUTE, status=status, started=began, headers=scope["headers"]
    )


async def _append(
    state: AppState,
    scope: Scope,
    receive: Receive,
    chain: str,
    *,
    authorization: bytes,
    content_type: bytes | None,
    content_length: int,
    ce_headers: list[tuple[bytes, bytes]],
) -> tuple[int, bytes, dict[str, str]]:
    """(status, answer, extra headers) of an append."""
    principal, key_in_url = await ingest_caller(
        state.authenticator,
        authorization=authorization,
        query=scope.get("query_string", b""),
        chain=chain,
    )
    limit = state.settings.max_body_bytes
    if content_length > limit:
        raise PayloadTooLarge(f"the body is {content_length} bytes; at most {limit} are accepted")
    # The body's bytes are reserved before one is read: a flood of large batches is refused
    # here, not buffered (events.admission).
    admission = state.committer.admission
    ticket = Ticket(principal.tenant)
    admission.reserve(ticket, "bytes", limit if content_length < 0 else content_length)
    try:
        body = await read_body(receive, limit=limit)
        admission.release(ticket, "bytes", ticket.bytes - len(body))
        status, answer = await service.append_events(
            state,
            principal,
            chain=chain,
            content_type=content_type,
            body=body,
            ce_headers=ce_headers,
            ticket=ticket,
        )
        return status, answer, URL_KEY_ANSWER_HEADERS if key_in_url else {}
    finally:
        admission.release(ticket, "bytes")


async def read_body(receive: Receive, *, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem("the client went away before the body was read")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    media_type: bytes,
    body: bytes,
    headers: dict[str, str],
    *,
    request_id: str,
) -> None:
    raw_headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode("ascii")),
        *((name.lower().encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


URL_KEY_PARAMETER = {
    "name": "access_token",
    "in": "query",
    "required": False,
    "description": "For senders that cannot set headers (CloudEvents http-webhook.md §3.2): the "
    "API key, instead of Authorization. Only a key whose sole role is producer and that is "
    "limited to this one chain is taken here; any other key is refused (401). A key in a URL "
    "counts as exposed: scope it narrowly and rotate it",
    "schema": {"type": "string"},
}


def document_append(openapi: dict[str, Any]) -> None:
    """Add the append operation and the shapes it uses to an OpenAPI document."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (AppendResponse, AppendBatchResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["CloudEvent"] = CLOUDEVENT_SCHEMA
    receipts = {
        "oneOf": [
            {"$ref": "#/components/schemas/AppendResponse"},
            {"$ref": "#/components/schemas/AppendBatchResponse"},
        ]
    }
    attribute_headers = [
        {
            "name": f"ce-{name}",
            "in": "header",
            "required": False,
            "description": f"Binary mode: the event's `{name}` attribute, percent-encoded UTF-8 "
            "(HTTP binding §3.1.3.2); required in binary mode. Every other attribute and "
            "extension travels as a `ce-<name>` header too",
            "schema": {"type": "string"},
        }
        for name in ("specversion", "id", "source", "type")
    ]
    openapi.setdefault("paths", {})["/v1/chains/{chain}/events"] = {
        "post": {
            "tags": ["events"],
            "summary": "Append one event (structured or binary mode) or a batch of events",
            "description": (
                "Each event is appended at the next index of the chain once committed; the "
                "answer carries its receipt, signed by the log (DSSE). The CloudEvents mode "
                "follows the HTTP binding (§3): `application/cloudevents+json` is one event, "
                "`application/cloudevents-batch+json` a batch, any other "
                "`application/cloudevents...` type is refused (415), and every other content "
                "type, or none, is binary mode: the attributes are `ce-*` headers and the body is "
                "the data (`data` when it is JSON, else `data_base64`). `(chain, source, type, "
                "id)` is the idempotency key: a retry with the same content gets the original "
                "receipt."
            ),
            "operationId": "append_events",
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
                *attribute_headers,
            ],
            "requestBody": {
                "required": True,
                "content": {
                    STRUCTURED: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
                    BATCH: {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/CloudEvent"},
                            "minItems": 1,
                            "maxItems": Settings.model_fields["max_batch_events"].default,
                        }
                    },
                    "application/json": {
                        "schema": {"description": "Binary mode: the data of one event"}
                    },
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "description": "Binary mode: the data of one event, any bytes",
                        }
                    },
                },
            },
            "responses": {
                "201": {
                    "description": "Appended; receipts are sent only after the commit",
                    "content": {"application/json": {"schema": receipts}},
                },
                "200": {
                    "description": "Every event had been appended before: original receipts",
                    "content": {"application/json": {"schema": receipts}},
                },
                "400": {
                    "description": "Invalid JSON or CloudEvent; `pointer` names the field in "
                    "the body, `header` the ce-* header at fault"
                },
                "404": {"description": "No such chain for this key"},
                "409": {
                    "description": "Same (source, type, id) already appended with other content"
                },
                "413": {"description": "Body, batch or event too large"},
                "415": {
                    "description": "An event format other than JSON (application/cloudevents+x)"
                },
                "503": {
                    "description": "Overloaded or database unavailable: retry after Retry-After"
                },
            },
        }
    }
