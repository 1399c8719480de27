"""GenAI spans as decisions: each agent invocation is one, whatever order its spans arrive in.

A span of ``dev.audit-trail.genai.invocation.v1`` (otlp/genai.py) belongs to the decision of its
nearest ``invoke_agent`` ancestor-or-self, or, where there is none, of its topmost GenAI
ancestor (the root of the GenAI part of the trace: the spans above it, an HTTP server span say,
are not GenAI spans and never reach the log). The decision id is the trace id + "-" + that
span's id, which is the id of that span's own event.

Exporters send a span when it ends, so children arrive before their parent, often in another
export. A span whose parent has not arrived is the root of a decision of its own for the time
being; when the parent arrives, that provisional decision is merged into the parent's (unless
the span is an ``invoke_agent``, which is a decision of its own wherever it sits). The result
depends only on which spans have arrived, not on their order, so rebuilding the read model
gives the same decisions, and a view can recompute a decision from its timeline alone.

Everything here is pure: ``fold_spans`` takes the spans known so far and new entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from decision_log.decisions.event_types import GENAI_INVOCATION
from decision_log.limits import MAX_INDEXED_TEXT_CHARS

INVOKE_AGENT = "invoke_agent"
EXECUTE_TOOL = "execute_tool"
MODEL_OPERATIONS = frozenset(
    ("chat", "text_completion", "generate_content", "embeddings", "create_agent")
)
# Older instrumentations still send the names before the semantic conventions' renames.
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system")
INPUT_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKEN_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")


@dataclass(frozen=True, slots=True)
class SpanNode:
    """What the read model keeps of one GenAI span (a row of ``genai_spans``)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    decision_span_id: str
    idx: int
    received_at: datetime
    started_at: datetime
    operation: str | None = None
    service: str | None = None
    agent_name: str | None = None
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    conversation: str | None = None
    tool_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    source: str | None = None  # the CloudEvents source of the span's event

    @property
    def key(self) -> tuple[str, str]:
        return self.trace_id, self.span_id

    @property
    def is_agent(self) -> bool:
        return self.operation == INVOKE_AGENT

    @property
    def decision_id(self) -> str:
        return decision_id(self.trace_id, self.decision_span_id)


SPAN_COLUMNS = tuple(SpanNode.__dataclass_fields__)


def decision_id(trace_id: str, span_id: str) -> str:
    return f"{trace_id}-{span_id}"


def span_node(idx: int, received_at: datetime, event: dict[str, Any]) -> SpanNode | None:
    """The node of a GenAI event (its data was checked against the type's schema on the way in);
    None for one that is not a span as that schema says."""
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    trace_id, span_id = data.get("traceId"), data.get("spanId")
    attributes = _attributes(data.get("attributes"))
    resource = _attributes((data.get("resource") or {}).get("attributes"))
    started = _nanos(data.get("startTimeUnixNano"))
    if not isinstance(trace_id, str) or not isinstance(span_id, str) or started is None:
        return None
    parent = data.get("parentSpanId")
    return SpanNode(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent if isinstance(parent, str) and parent else None,
        decision_span_id=span_id,
        idx=idx,
        received_at=received_at,
        started_at=started,
        operation=_text(attributes.get("gen_ai.operation.name")),
        service=_text(resource.get("service.name")),
        agent_name=_text(attributes.get("gen_ai.agent.name")),
        provider=_first_text(attributes, PROVIDER_KEYS),
        request_model=_text(attributes.get("gen_ai.request.model")),
        response_model=_text(attributes.get("gen_ai.response.model")),
        conversation=_text(attributes.get("gen_ai.conversation.id")),
        tool_name=_text(attributes.get("gen_ai.tool.name")),
        input_tokens=_first_int(attributes, INPUT_TOKEN_KEYS),
        output_tokens=_first_int(attributes, OUTPUT_TOKEN_KEYS),
        source=_text(event.get("source")),
    )


@dataclass(slots=True)
class SpanFold:
    """The spans of the traces a batch touched, after it: what changed and what merged."""

    nodes: dict[tuple[str, str], SpanNode]
    changed: set[tuple[str, str]] = field(default_factory=set)
    # Provisional decisions merged into another, in the order it happened: (from, into).
    merges: list[tuple[str, str]] = field(default_factory=list)
    # Every decision whose members changed, and the new entries with their decision.
    decisions: set[str] = field(default_factory=set)
    timeline: list[tuple[str, int]] = field(default_factory=list)


def fold_spans(known: dict[tuple[str, str], SpanNode], new: Iterable[SpanNode]) -> SpanFold:
    """Add spans, in index order, to those known of their traces."""
    fold = SpanFold(nodes=dict(known))
    nodes = fold.nodes
    children: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for known_node in nodes.values():
        if known_node.parent_span_id:
            children.setdefault((known_node.trace_id, known_node.parent_span_id), []).append(
                known_node.key
            )
    for node in new:
        if node.key in nodes:
            continue  # appended once; never seen twice in a chain
        parent = nodes.get((node.trace_id, node.parent_span_id)) if node.parent_span_id else None
        if not node.is_agent and parent is not None:
            node = replace(node, decision_span_id=parent.decision_span_id)
        nodes[node.key] = node
        if node.parent_span_id:
            children.setdefault((node.trace_id, node.parent_span_id), []).append(node.key)
        fold.changed.add(node.key)
        fold.decisions.add(node.decision_id)
        # Children that arrived first and stood for themselves join this span's decision now.
        for key in children.get(node.key, ()):
            child = nodes[key]
            if child.decision_span_id == child.span_id and not child.is_agent:
                _merge(fold, child.decision_id, node.decision_id)
    for node in new:
        final = nodes.get(node.key)
        if final is not None and final.idx == node.idx:
            fold.timeline.append((final.decision_id, node.idx))
    return fold


def _merge(fold: SpanFold, merged: str, into: str) -> None:
    trace_id, _, merged_span = merged.rpartition("-")
    _, _, into_span = into.rpartition("-")
    for key, node in list(fold.nodes.items()):
        if node.trace_id == trace_id and node.decision_span_id == merged_span:
            fold.nodes[key] = replace(node, decision_span_id=into_span)
            fold.changed.add(key)
    fold.merges.append((merged, into))
    fold.decisions.discard(merged)
    fold.decisions.add(into)


def members(nodes: Iterable[SpanNode], decision: str) -> list[SpanNode]:
    """The spans of one decision, in index order."""
    return sorted((node for node in nodes if node.decision_id == decision), key=lambda n: n.idx)


@dataclass(frozen=True, slots=True)
class GenAISummary:
    """What a GenAI decision's row holds, from its spans alone."""

    decided_at: datetime
    received_at: datetime
    system_name: str | None
    deployment: str | None
    model_name: str | None
    model_version: str | None
    agent: str | None
    provider: str | None
    conversation: str | None
    source: str | None
    last_idx: int


def summary(spans: Sequence[SpanNode]) -> GenAISummary:
    """The decision span gives the time, agent, service and producer (its event's source); the
    model that answered is the last model call to start (its requested model, and the model its
    response named)."""
    root = next(
        (span for span in spans if span.span_id == span.decision_span_id), min(spans, key=_start)
    )
    calls = sorted(
        (span for span in spans if span.operation in MODEL_OPERATIONS or span.request_model),
        key=_start,
    )
    answered = calls[-1] if calls else None
    return GenAISummary(
        decided_at=root.started_at,
        received_at=min(span.received_at for span in spans),
        system_name=root.agent_name or _first(span.agent_name for span in spans) or root.service,
        deployment=root.service,
        model_name=None if answered is None else answered.request_model,
        model_version=None if answered is None else answered.response_model,
        agent=root.agent_name or _first(span.agent_name for span in spans),
        provider=root.provider or _first(span.provider for span in spans),
        conversation=root.conversation or _first(span.conversation for span in spans),
        source=root.source,
        last_idx=max(span.idx for span in spans),
    )


def _start(span: SpanNode) -> tuple[datetime, int]:
    return span.started_at, span.idx


def _first(values: Iterable[str | None]) -> str | None:
    return next((value for value in values if value), None)


def _attributes(items: Any) -> dict[str, Any]:
    """OTLP/JSON attributes as {key: the value's scalar}; the first of a repeated key wins."""
    found: dict[str, Any] = {}
    if not isinstance(items, list):
        return found
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        value = item.get("value")
        if isinstance(value, dict) and item["key"] not in found:
            found[item["key"]] = next(
                (value[name] for name in ("stringValue", "intValue", "boolValue") if name in value),
                None,
            )
    return found


def _text(value: object) -> str | None:
    """A text the read model's columns can take (no NUL, within an index row), else None: the
    span is in the log as sent either way."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= MAX_INDEXED_TEXT_CHARS and "\x00" not in value else None


def _first_text(attributes: dict[str, Any], keys: Sequence[str]) -> str | None:
    return _first(_text(attributes.get(key)) for key in keys)


def _first_int(attributes: dict[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    return None


def _nanos(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.isdigit():
        return None
    seconds, nanos = divmod(int(value), 1_000_000_000)
    try:
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
    except (OverflowError, ValueError, OSError):
        return None


def is_genai(event_type: str) -> bool:
    return event_type == GENAI_INVOCATION
