"""OpenTelemetry GenAI spans as events of the log's type ``dev.audit-trail.genai.invocation.v1``.

A span is a GenAI span when it has an attribute of the GenAI semantic conventions (``gen_ai.*``,
https://github.com/open-telemetry/semantic-conventions-genai; every one of them is still
"development", and older instrumentations send ``gen_ai.system`` and
``gen_ai.usage.prompt_tokens`` where newer ones send ``gen_ai.provider.name`` and
``gen_ai.usage.input_tokens``: both are kept, verbatim). Other spans (HTTP, database, ...) are
not the log's business: they are skipped and counted, not rejected.

The event is the span in OTLP/JSON form with its resource and scope, so nothing is lost or
renamed; ``id`` is trace id + "-" + span id, so exporting a span again is a replay, and the
subject is the trace: which agent invocation (decision) a span belongs to follows from the
parent links, which the read model follows (decisions/genai.py), since a child span usually
arrives before its parent.

Message content (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, and the older ``gen_ai.prompt``, ``gen_ai.completion``) is
opt-in and sensitive in the conventions, so it is personal data here: sealed per data subject
(``personaldata`` names where it is, ``datasubject`` whose it is, privacy/service.py), the
subject taken from the chain's subject attribute (``enduser.id`` by default), else the
conversation (``gen_ai.conversation.id``), else the trace. A chain may keep it in clear instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from decision_log.decisions.event_types import GENAI_INVOCATION
from decision_log.events.cloudevents import DATA_SUBJECT, PERSONAL_DATA
from decision_log.ingest.settings import ChainIngest
from decision_log.otlp.decoding import ReceivedSpan, SpanRejected, span_json

GENAI_PREFIX = "gen_ai."
CONTENT_ATTRIBUTES = frozenset(
    (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
    )
)
CONVERSATION_ID = "gen_ai.conversation.id"
SERVICE_NAME = "service.name"
UNKNOWN_SERVICE = "unknown_service"
SOURCE_PREFIX = "otlp:"
NANOS = 1_000_000_000


def is_genai(span: Span) -> bool:
    return any(kv.key.startswith(GENAI_PREFIX) for kv in span.attributes)


def genai_event(received: ReceivedSpan, *, settings: ChainIngest) -> dict[str, Any]:
    """The event of one GenAI span; ``SpanRejected`` says why a span cannot be one."""
    span = received.span
    _check_ids(span)
    if not span.start_time_unix_nano:
        raise SpanRejected(f"span {span.span_id.hex()}: startTimeUnixNano is required")
    if span.end_time_unix_nano and span.end_time_unix_nano < span.start_time_unix_nano:
        raise SpanRejected(f"span {span.span_id.hex()}: it ends before it starts")
    data = span_json(span)
    data["resource"] = received.resource
    if received.scope:
        data["scope"] = received.scope
    trace_id, span_id = data["traceId"], data["spanId"]
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"{trace_id}-{span_id}",
        "source": SOURCE_PREFIX
        + (_text(received.resource["attributes"], SERVICE_NAME) or UNKNOWN_SERVICE),
        "type": GENAI_INVOCATION,
        "subject": trace_id,
        "time": unix_nanos_rfc3339(span.start_time_unix_nano),
        "datacontenttype": "application/json",
        "data": data,
    }
    if settings.genai_content == "seal":
        pointers = _content_pointers(data)
        if pointers:
            event[PERSONAL_DATA] = ",".join(pointers)
            event[DATA_SUBJECT] = _data_subject(data, settings.genai_subject_attribute)
    return event


def _check_ids(span: Span) -> None:
    # OTLP: a valid trace id is 16 bytes, a span id 8, neither all zeros (trace.proto).
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise SpanRejected(f"traceId {span.trace_id.hex()!r} is not 16 bytes, or all zeros")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise SpanRejected(f"spanId {span.span_id.hex()!r} is not 8 bytes, or all zeros")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        raise SpanRejected(
            f"span {span.span_id.hex()}: parentSpanId {span.parent_span_id.hex()!r} is not 8 bytes"
        )


def unix_nanos_rfc3339(nanos: int) -> str:
    """RFC 3339 in UTC with all nine digits of the nanoseconds: nothing of the span's time is
    rounded away."""
    seconds, fraction = divmod(nanos, NANOS)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def _text(attributes: list[dict[str, Any]], key: str) -> str | None:
    for attribute in attributes:
        if attribute["key"] == key:
            value = attribute["value"]
            found = value.get("stringValue", value.get("intValue"))
            return found if isinstance(found, str) and found else None
    return None


def _content_pointers(data: dict[str, Any]) -> list[str]:
    pointers = [
        f"/attributes/{position}/value"
        for position, attribute in enumerate(data["attributes"])
        if attribute["key"] in CONTENT_ATTRIBUTES
    ]
    for event_position, span_event in enumerate(data.get("events", ())):
        pointers.extend(
            f"/events/{event_position}/attributes/{position}/value"
            for position, attribute in enumerate(span_event["attributes"])
            if attribute["key"] in CONTENT_ATTRIBUTES
        )
    return pointers


def _data_subject(data: dict[str, Any], subject_attribute: str) -> str:
    """Whose the message content is: the subject attribute's value (the span's, else the
    resource's), else the conversation's, else the trace's (``<attribute>:<value>`` for the
    latter two, so they never collide with a person's identifier)."""
    subject = _text(data["attributes"], subject_attribute) or _text(
        data["resource"]["attributes"], subject_attribute
    )
    if subject is not None:
        return subject
    conversation = _text(data["attributes"], CONVERSATION_ID)
    if conversation is not None:
        return f"{CONVERSATION_ID}:{conversation}"
    return f"trace:{data['traceId']}"
