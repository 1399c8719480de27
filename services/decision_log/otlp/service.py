"""Append the GenAI spans of one OTLP export, in one group commit (no HTTP here).

Every GenAI span of an export goes to the committer in one call, so an export (512 spans is
the Python SDK's default batch) is one transaction under the chain's lock, like a batch of
events. A span that cannot be an entry (bad ids, too large for the chain, an id already used
with other content) is left out and reported, never failing the others: OTLP clients do not
retry a partial success, and a failed export would lose every span in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from decision_log.auth import require_chain, require_role
from decision_log.decisions.access import refuse_producer_append
from decision_log.events.admission import Ticket
from decision_log.events.appender import ChainRef
from decision_log.events.cloudevents import PreparedEvent, check_event
from decision_log.ingest.metrics import count_refused, count_spans
from decision_log.ingest.settings import ChainIngest
from decision_log.keys.service import Principal
from decision_log.otlp.decoding import SpanRejected, received_spans
from decision_log.otlp.genai import genai_event, is_genai
from decision_log.problems import IdempotencyConflict, InvalidInput, Problem
from decision_log.slugs import SLUG
from decision_log.state import AppState


@dataclass(slots=True)
class TracesReceived:
    appended: int = 0
    replayed: int = 0
    skipped: int = 0
    rejections: list[str] = field(default_factory=list)


async def receive_traces(
    state: AppState,
    principal: Principal,
    *,
    chain: str,
    request: ExportTraceServiceRequest,
    ticket: Ticket | None = None,
) -> TracesReceived:
    require_role(principal, "producer")
    if not SLUG.fullmatch(chain):
        raise InvalidInput("chain must be a lowercase slug (a-z, 0-9, '-')", parameter="chain")
    require_chain(principal, chain)
    refuse_producer_append(chain)
    ref = await state.directory.resolve(
        tenant_id=principal.tenant_id, tenant=principal.tenant, chain=chain
    )
    settings = await state.ingest.for_chain(ref.chain_id)
    result = TracesReceived()
    events = _genai_events(request, settings, result)
    prepared = await _prepared(state, ref, principal.tenant_id, events, settings, result)
    while prepared:
        try:
            receipts = await state.committer.append(
                ref, prepared, batch=True, key_id=principal.key_id, ticket=ticket
            )
        except IdempotencyConflict as conflict:
            position = _position(conflict.pointer)
            if position is None:
                raise
            result.rejections.append(conflict.detail)
            del prepared[position]
            continue
        result.appended = sum(1 for receipt in receipts if not receipt.replayed)
        result.replayed = len(receipts) - result.appended
        break
    count_spans(
        chain_id=ref.chain_id,
        appended=result.appended + result.replayed,
        rejected=len(result.rejections),
        skipped=result.skipped,
    )
    return result


def _genai_events(
    request: ExportTraceServiceRequest, settings: ChainIngest, result: TracesReceived
) -> list[dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    for received in received_spans(request):
        if not is_genai(received.span):
            result.skipped += 1
            continue
        try:
            event = check_event(genai_event(received, settings=settings), pointer="")
        except SpanRejected as rejected:
            result.rejections.append(str(rejected))
            continue
        except Problem as problem:  # an attribute no entry can hold, e.g. a NUL in service.name
            result.rejections.append(f"span {received.span.span_id.hex()}: {problem.detail}")
            continue
        earlier = events.setdefault(event["id"], event)
        if earlier is not event and earlier != event:
            result.rejections.append(f"span {event['id']} is sent twice with other content")
    return list(events.values())


async def _prepared(
    state: AppState,
    ref: ChainRef,
    tenant_id: int,
    events: list[dict[str, Any]],
    settings: ChainIngest,
    result: TracesReceived,
) -> list[PreparedEvent]:
    """The events canonicalised and sealed, in one pass over all of them (one query for the
    data subjects' keys); an event that cannot be is left out, and the rest prepared again."""
    pending = list(events)
    while pending:
        try:
            return await state.personal_data.prepare(
                ref,
                tenant_id,
                [(f"/{position}", event) for position, event in enumerate(pending)],
                max_event_bytes=settings.max_event_bytes,
            )
        except Problem as problem:
            position = _position(problem.pointer)
            if position is None:
                raise
            source = pending[position]["source"]
            result.rejections.append(f"span {pending[position]['id']}: {problem.detail}")
            count_refused(chain_id=ref.chain_id, source=source, reason=problem.slug)
            del pending[position]
    return []


def _position(pointer: str | None) -> int | None:
    """The event a problem's pointer names (``/3/...``), if it names one."""
    if not pointer:
        return None
    head = pointer.split("/", 2)[1]
    return int(head) if head.isdigit() else None
