"""Append a request's events and answer with signed receipts (no HTTP here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from ledger.canonical import canonicalize

from decision_log.auth import require_chain, require_role
from decision_log.decisions.access import refuse_producer_append
from decision_log.events.admission import Ticket
from decision_log.events.appender import Receipt
from decision_log.events.binary import content_mode, event_from_binary, media_type_of
from decision_log.events.cloudevents import parse_events
from decision_log.ingest.metrics import count_refused
from decision_log.keys.service import Principal
from decision_log.metrics import count_ingested
from decision_log.problems import InvalidInput, PayloadTooLarge
from decision_log.slugs import SLUG
from decision_log.state import AppState


async def append_events(
    state: AppState,
    principal: Principal,
    *,
    chain: str,
    content_type: bytes | None,
    body: bytes,
    ce_headers: Sequence[tuple[bytes, bytes]] = (),
    ticket: Ticket | None = None,
) -> tuple[int, bytes]:
    """Append the events of one request; returns (HTTP status, JSON answer).

    ``content_type`` decides the CloudEvents mode (``binary.content_mode``); a binary-mode
    event's attributes are its ``ce_headers``. ``ticket`` is what the request holds of the
    worker's admission budgets (``events.admission``)."""
    require_role(principal, "producer")
    if not SLUG.fullmatch(chain):
        raise InvalidInput("chain must be a lowercase slug (a-z, 0-9, '-')", parameter="chain")
    require_chain(principal, chain)
    refuse_producer_append(chain)
    media_type = media_type_of(content_type)
    mode = content_mode(media_type)
    ref = await state.directory.resolve(
        tenant_id=principal.tenant_id, tenant=principal.tenant, chain=chain
    )
    settings = state.settings
    batch = mode == "batch"
    if mode == "binary":
        event = event_from_binary(
            ce_headers, content_type, body, max_depth=settings.max_json_depth, media_type=media_type
        )
        checked = [("", event)]
    else:
        checked = parse_events(
            body,
            batch=batch,
            max_depth=settings.max_json_depth,
            max_events=settings.max_batch_events,
        )
    chain_ingest = await state.ingest.for_chain(ref.chain_id)
    try:
        events = await state.personal_data.prepare(
            ref,
            principal.tenant_id,
            checked,
            max_event_bytes=chain_ingest.max_event_bytes,
            oversize_to_digest=chain_ingest.digest_oversize,
        )
    except PayloadTooLarge as problem:
        # Senders that never retry lose such an event: count it per source for the operator.
        source = dict(checked).get(problem.pointer or "", {}).get("source", "")
        count_refused(chain_id=ref.chain_id, source=source, reason="too-large")
        raise
    receipts = await state.committer.append(
        ref, events, batch=batch, key_id=principal.key_id, ticket=ticket
    )
    appended = sum(1 for receipt in receipts if not receipt.replayed)
    count_ingested(mode, appended=appended, replayed=len(receipts) - appended)
    # One signature per request, made after the commit: it never holds up the chain's lock.
    envelope = await state.receipts.sign(receipts_payload(state.signer.origin, receipts))
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
    return (201 if appended else 200), orjson.dumps(content)


async def append_made_event(
    state: AppState, principal: Principal, chain: str, event: dict[str, Any]
) -> dict[str, Any]:
    """Append one event the log makes itself on ``principal``'s behalf (an erasure, a hold, a
    producer closed by an admin) through the same preparation and group commit as a producer's;
    its receipt."""
    ref = await state.directory.resolve(
        tenant_id=principal.tenant_id, tenant=principal.tenant, chain=chain
    )
    prepared = await state.personal_data.prepare(
        ref, principal.tenant_id, [("", event)], max_event_bytes=state.settings.max_event_bytes
    )
    (receipt,) = await state.committer.append(ref, prepared, batch=False)
    return receipt_json(receipt)


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
