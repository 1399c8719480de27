"""Which decision an event is of, read from the events alone.

The log's read model groups events into decisions by this rule, a selective export is checked
against it before it is built, and whoever verifies the bundle offline checks it again, from
the entries in the bundle and nothing else:

- an event of KServe's payload logger is of the decision its ``id`` names (the request and its
  response share it); one of Seldon Core's, of its ``requestid`` (every node of the graph logs
  under it);
- a GenAI span (``dev.audit-trail.genai.invocation.v1``) is of the decision of its nearest
  ``invoke_agent`` ancestor-or-self among the spans given, else of its topmost ancestor among
  them; the decision id is the trace id, "-", that span's id. Which spans arrived decides the
  grouping, never their order, so a decision's own spans regroup into that decision alone;
- a model deployment or a record of access is of no decision;
- any other event is of the decision its ``subject`` names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
SELDON_REQUEST = "io.seldon.serving.inference.request"
SELDON_RESPONSE = "io.seldon.serving.inference.response"
SELDON_FEEDBACK = "io.seldon.serving.feedback"
KSERVE_TYPES = frozenset((KSERVE_REQUEST, KSERVE_RESPONSE))
SELDON_TYPES = frozenset((SELDON_REQUEST, SELDON_RESPONSE, SELDON_FEEDBACK))
INFERENCE_TYPES = KSERVE_TYPES | SELDON_TYPES

GENAI_INVOCATION = "dev.audit-trail.genai.invocation.v1"
MODEL_DEPLOYED = "dev.audit-trail.model.deployed.v1"
RECORDS_ACCESSED = "dev.audit-trail.records.accessed.v1"
# Known types that are not about one decision: never part of a decision's timeline.
NOT_DECISION_TYPES = frozenset((MODEL_DEPLOYED, RECORDS_ACCESSED))

INVOKE_AGENT = "invoke_agent"


def event_decision_id(
    event_type: str, subject: str | None, event: Mapping[str, Any] | None
) -> str | None:
    """The decision an event other than a GenAI span names, usable as an id or not; None for
    types about no one decision and for GenAI spans (`genai_decision_ids`)."""
    if event_type in INFERENCE_TYPES:
        if event is None:
            return None
        found = event.get("id") if event_type in KSERVE_TYPES else event.get("requestid")
        return found if isinstance(found, str) and found else None
    if event_type in NOT_DECISION_TYPES or event_type == GENAI_INVOCATION:
        return None
    return subject


@dataclass(frozen=True, slots=True)
class SpanLink:
    """What grouping needs of a GenAI span: where it sits in its trace, and whether it is an
    agent invocation (a decision of its own wherever it sits)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    is_agent: bool


def span_link(event: Mapping[str, Any]) -> SpanLink | None:
    """The link of a GenAI span's event (OTLP/JSON in ``data``); None for one that is no span."""
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    trace_id, span_id, parent = data.get("traceId"), data.get("spanId"), data.get("parentSpanId")
    if not isinstance(trace_id, str) or not isinstance(span_id, str):
        return None
    return SpanLink(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent if isinstance(parent, str) and parent else None,
        is_agent=_operation(data.get("attributes")) == INVOKE_AGENT,
    )


def genai_decision_ids(spans: Mapping[int, SpanLink]) -> dict[int, str]:
    """Each span's decision among ``spans`` (keyed by entry index): walk up the parents present
    until an agent invocation or a span whose parent is absent. A span repeated under another
    index (which the log never appends) counts at its first index."""
    by_key: dict[tuple[str, str], SpanLink] = {}
    for index in sorted(spans):
        by_key.setdefault((spans[index].trace_id, spans[index].span_id), spans[index])
    roots: dict[tuple[str, str], str] = {}
    return {index: _root(span, by_key, roots) for index, span in spans.items()}


def _root(
    span: SpanLink, by_key: Mapping[tuple[str, str], SpanLink], roots: dict[tuple[str, str], str]
) -> str:
    path: list[tuple[str, str]] = []
    on_path: set[tuple[str, str]] = set()
    current = span
    while True:
        key = (current.trace_id, current.span_id)
        if key in roots:
            decision = roots[key]
            break
        path.append(key)
        on_path.add(key)
        parent = (
            None
            if current.is_agent or current.parent_span_id is None
            else by_key.get((current.trace_id, current.parent_span_id))
        )
        if parent is None:
            decision = f"{current.trace_id}-{current.span_id}"
            break
        parent_key = (parent.trace_id, parent.span_id)
        if parent_key in on_path:
            # Parents that loop back (no tracer makes them): the loop is one decision, named
            # after its least span id, wherever the walk entered it.
            loop = path[path.index(parent_key) :]
            decision = f"{current.trace_id}-{min(span_id for _, span_id in loop)}"
            break
        current = parent
    for key in path:
        roots[key] = decision
    return decision


def decision_of(event: Mapping[str, Any]) -> str | None:
    """`event_decision_id` of an event as recorded (its own type and subject)."""
    event_type, subject = event.get("type"), event.get("subject")
    return event_decision_id(
        event_type if isinstance(event_type, str) else "",
        subject if isinstance(subject, str) else None,
        event,
    )


def decision_ids_of(events: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[int, str | None]:
    """The decision of each event given (index, the event as recorded), GenAI spans grouped
    among the spans given."""
    found: dict[int, str | None] = {}
    spans: dict[int, SpanLink] = {}
    for index, event in events:
        link = span_link(event) if event.get("type") == GENAI_INVOCATION else None
        if link is not None:
            spans[index] = link
        found[index] = decision_of(event)  # None for a GenAI span, grouped below
    found.update(genai_decision_ids(spans))
    return found


def _operation(attributes: Any) -> Any:
    """``gen_ai.operation.name``'s scalar from OTLP/JSON attributes, as the read model reads
    it (decisions/genai.py): the first item of that key with a value wins."""
    if not isinstance(attributes, list):
        return None
    for item in attributes:
        if not isinstance(item, dict) or item.get("key") != "gen_ai.operation.name":
            continue
        value = item.get("value")
        if isinstance(value, dict):
            return next(
                (value[name] for name in ("stringValue", "intValue", "boolValue") if name in value),
                None,
            )
    return None
