"""POST /v1/chains/{chain}/events: append CloudEvents, answer with signed receipts."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from ledger.canonical import canonicalize

from decision_log.auth import require_chain, require_role
from decision_log.events.appender import Receipt
from decision_log.events.cloudevents import BATCH, STRUCTURED, parse_body
from decision_log.events.schemas import AppendBatchResponse, AppendResponse
from decision_log.problems import PayloadTooLarge, UnsupportedMediaType
from decision_log.state import Caller, State

router = APIRouter(tags=["events"])

_REQUEST_BODY = {
    "required": True,
    "content": {
        STRUCTURED: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
        BATCH: {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/CloudEvent"}}},
    },
}


@router.post(
    "/v1/chains/{chain}/events",
    status_code=201,
    summary="Append one event (structured mode) or a batch of events",
    response_model=AppendResponse | AppendBatchResponse,
    responses={
        200: {"description": "Every event was already appended: the original receipts"},
        201: {"description": "Appended; receipts are sent only after the commit"},
        400: {"description": "Invalid JSON or CloudEvent (problem body names the field)"},
        409: {"description": "Same (source, id) already appended with other content"},
        413: {"description": "Body or event too large"},
        415: {"description": "Not application/cloudevents+json or cloudevents-batch+json"},
        503: {"description": "Overloaded: retry after the Retry-After header"},
    },
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def append_events(chain: str, request: Request, state: State, principal: Caller) -> Response:
    require_role(principal, "producer")
    require_chain(principal, chain)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in (STRUCTURED, BATCH):
        raise UnsupportedMediaType(
            f"content type {media_type or 'none'!r} is not accepted; send {STRUCTURED} "
            f"(one event) or {BATCH} (a JSON array of events)"
        )
    settings = state.settings
    ref = await state.directory.resolve(
        tenant_id=principal.tenant_id, tenant=principal.tenant, chain=chain
    )
    body = await read_body(request, limit=settings.max_body_bytes)
    batch = media_type == BATCH
    events = parse_body(
        body,
        batch=batch,
        max_depth=settings.max_json_depth,
        max_events=settings.max_batch_events,
        max_event_bytes=settings.max_event_bytes,
    )
    receipts = await state.committer.append(ref, events, batch=batch)
    appended = sum(1 for receipt in receipts if not receipt.replayed)
    # One signature per request, made after the commit: it never holds up the chain's lock.
    envelope = state.signer.sign_receipts(receipts_payload(state.signer.origin, receipts))
    status = 201 if appended else 200
    content: dict[str, Any]
    if batch:
        content = {
            "appended": appended,
            "receipts": [receipt_json(r) | {"replayed": r.replayed} for r in receipts],
            "signature": envelope,
        }
    else:
        content = receipt_json(receipts[0]) | {
            "replayed": receipts[0].replayed,
            "signature": envelope,
        }
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "tenant": receipt.tenant,
        "chain": receipt.chain,
        "index": receipt.index,
        "leaf_hash": receipt.leaf_hash.hex(),
        "received_at": receipt.received_at,
    }


def receipts_payload(log_origin: str, receipts: list[Receipt]) -> bytes:
    """The signed statement: these events sit at these indexes of this log (RFC 8785 JSON).

    The payload depends only on the receipts, and Ed25519 signatures are deterministic, so a
    retried request gets the same envelope, byte for byte, while the log key is unchanged.
    """
    return canonicalize({"log": log_origin, "receipts": [receipt_json(r) for r in receipts]})


async def read_body(request: Request, *, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
