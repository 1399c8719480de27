"""Explanations of decisions recorded by producers as they are: a model server's inference
(KServe, Seldon Core v1) and an agent invocation traced with OpenTelemetry GenAI spans.

As for ``decision.recorded`` (explanation.py), everything comes from the recorded events:
which system and model answered, with what output, which tools were called with what, how
many tokens were used, and what humans did afterwards. Nothing is recomputed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from decision_log.decisions import genai, inference
from decision_log.decisions.event_types import GENAI_INVOCATION
from decision_log.decisions.explanation import RecordedEvent, human_and_later
from decision_log.decisions.projection import DecisionRow
from decision_log.decisions.schemas import (
    Explanation,
    GenAICall,
    GenAIExplanation,
    InferenceExchange,
    InferenceStep,
)


def explain_producer_decision(
    *, chain: str, state: DecisionRow, events: list[RecordedEvent], now: datetime
) -> Explanation | None:
    """The explanation of an inference or GenAI decision; None for any other."""
    if any(event.type in inference.INFERENCE_TYPES for event in events):
        return _explain_inference(chain=chain, state=state, events=events, now=now)
    if any(event.type == GENAI_INVOCATION for event in events):
        return _explain_genai(chain=chain, state=state, events=events)
    return None


def _base(
    *, chain: str, state: DecisionRow, index: int, events: list[RecordedEvent], first: int
) -> dict[str, Any]:
    later = [event for event in events if event.index > first]
    oversight, contests, outcome, current = human_and_later(later, state.decision)
    model = {
        name: value
        for name, value in (("name", state.model_name), ("version", state.model_version))
        if value is not None
    }
    return {
        "recorded_at": state.decided_at,
        "index": index,
        "system": state.system_name or chain,
        "deployment": state.deployment,
        "model": model,
        "model_deployment": None,
        "policy": None,
        "decision": state.decision,
        "score": state.score,
        "method": None,
        "factors": [],
        "reason_codes": [],
        "counterfactual": None,
        "summary": None,
        "purpose": None,
        "solely_automated": None,
        "legal_or_similar_effect": None,
        "human_oversight": oversight,
        "contests": contests,
        "outcome": outcome,
        "current_decision": current,
    }


def _explain_inference(
    *, chain: str, state: DecisionRow, events: list[RecordedEvent], now: datetime
) -> Explanation:
    exchange = [event for event in events if event.type in inference.INFERENCE_TYPES]
    requests = [event for event in exchange if event.type in inference.REQUEST_TYPES]
    responses = [event for event in exchange if event.type in inference.RESPONSE_TYPES]
    if responses:
        answered = "recorded"
    elif now - state.decided_at > timedelta(seconds=inference.RESPONSE_GRACE_SECONDS):
        answered = "not recorded"
    else:
        answered = "awaited"
    server = "kserve" if exchange[0].type in inference.KSERVE_TYPES else "seldon"
    steps = [
        InferenceStep(
            index=event.index,
            type=event.type,
            node=_text(event.event.get("modelid")) or _text(event.event.get("component")),
            at=_text(event.event.get("time")),
            recorded_at=_text(event.event.get("recordedtime")),
            data=event.event.get("data", event.event.get("data_base64")),
        )
        for event in exchange
    ]
    base = _base(
        chain=chain,
        state=state,
        index=(requests or exchange)[0].index,
        events=[e for e in events if e.type not in inference.INFERENCE_TYPES],
        first=exchange[0].index,
    )
    text = (
        f"On {state.decided_at:%d %B %Y at %H:%M:%S UTC} the model server {server} of "
        f"“{base['system']}” received an inference request (entry {base['index']})"
        + (f" for model {state.model_name}" if state.model_name else "")
        + (f" version {state.model_version}" if state.model_version else "")
        + ". "
        + (
            f"Its response is at entry {responses[-1].index}"
            + (f" and gave “{state.decision}”." if state.decision else ".")
            if responses
            else (
                "No response was recorded: the server logs a response only when the model "
                f"answered HTTP 200, and none came within {inference.RESPONSE_GRACE_SECONDS} s."
                if answered == "not recorded"
                else "No response has been recorded yet."
            )
        )
        + _oversight_text(base)
    )
    return Explanation(
        **base,
        inference=InferenceExchange(server=server, response=answered, steps=steps),
        text=text,
    )


def _explain_genai(*, chain: str, state: DecisionRow, events: list[RecordedEvent]) -> Explanation:
    spans = {
        event.index: (event, node)
        for event in events
        if event.type == GENAI_INVOCATION
        for node in (genai.span_node(event.index, state.received_at, event.event),)
        if node is not None
    }
    ordered = sorted(spans.values(), key=lambda pair: (pair[1].started_at, pair[1].idx))
    calls = [
        GenAICall(
            index=node.idx,
            span_id=node.span_id,
            operation=node.operation,
            name=str(event.event["data"].get("name", "")),
            started_at=node.started_at,
            model=node.request_model,
            response_model=node.response_model,
            provider=node.provider,
            tool=node.tool_name,
            arguments=_attribute(event.event, "gen_ai.tool.call.arguments"),
            result=_attribute(event.event, "gen_ai.tool.call.result"),
            input_tokens=node.input_tokens,
            output_tokens=node.output_tokens,
        )
        for event, node in ordered
        if node.operation != genai.INVOKE_AGENT or node.span_id != node.decision_span_id
    ]
    tools = list(dict.fromkeys(call.tool for call in calls if call.tool))
    root_index = min(
        (node.idx for _, node in spans.values() if node.span_id == node.decision_span_id),
        default=min(spans),
    )
    base = _base(
        chain=chain,
        state=state,
        index=root_index,
        events=[e for e in events if e.type != GENAI_INVOCATION],
        first=-1,
    )
    explained = GenAIExplanation(
        agent=state.genai_agent,
        provider=state.genai_provider,
        conversation=state.genai_conversation,
        model=state.model_name,
        model_version=state.model_version,
        tools=tools,
        input_tokens=sum(node.input_tokens or 0 for _, node in spans.values()),
        output_tokens=sum(node.output_tokens or 0 for _, node in spans.values()),
        calls=calls,
    )
    model_calls = sum(1 for call in calls if call.operation != genai.EXECUTE_TOOL)
    text = (
        f"On {state.decided_at:%d %B %Y at %H:%M:%S UTC} "
        + (f"the agent “{state.genai_agent}”" if state.genai_agent else f"“{base['system']}”")
        + (f" (conversation {state.genai_conversation})" if state.genai_conversation else "")
        + f" made {model_calls} model call{'s' if model_calls != 1 else ''}"
        + (
            f"; the answer came from {state.model_name}"
            + (f" ({state.model_version})" if state.model_version else "")
            if state.model_name
            else ""
        )
        + (f" via {state.genai_provider}" if state.genai_provider else "")
        + ". "
        + ("It called " + ", ".join(tools) + ". " if tools else "It called no tool. ")
        + f"Tokens used: {explained.input_tokens} in, {explained.output_tokens} out."
        + _oversight_text(base)
    )
    return Explanation(**base, genai=explained, text=text)


def _oversight_text(base: dict[str, Any]) -> str:
    actions = base["human_oversight"]
    if not actions:
        return " No human review or override has been recorded."
    return "".join(
        f" A human reviewer{f' ({action.role})' if action.role else ''} "
        f"{action.action or 'acted on it'}"
        + (f" to “{action.new_decision}”" if action.new_decision else "")
        + (f", giving as reason: “{action.reason}”" if action.reason else "")
        + f" (entry {action.index})."
        for action in actions
    )


def _attribute(event: dict[str, Any], key: str) -> Any | None:
    data = event.get("data")
    for attribute in data.get("attributes", ()) if isinstance(data, dict) else ():
        if isinstance(attribute, dict) and attribute.get("key") == key:
            return attribute.get("value")
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
