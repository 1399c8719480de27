"""Which decision an event is of, from the events alone (ledger/membership.py): the rule the
read model, selective exports and the offline bundle check share."""

from __future__ import annotations

from typing import Any

from ledger.membership import decision_ids_of

from tests.decisions.helpers import deployed, genai_span, recorded, reviewed

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT, CHAT, TOOL, INNER = "a" * 16, "b" * 16, "c" * 16, "d" * 16


def inference(kind: str, **attributes: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "source": "pod-7", "type": kind, "data": {}, **attributes}


def test_each_kind_of_event_names_its_decision_where_its_producer_puts_it() -> None:
    events = [
        recorded("loan-1"),
        reviewed("loan-1"),
        deployed(),
        # KServe's request and response share the id; Seldon's nodes share the request id.
        inference("org.kubeflow.serving.inference.request", id="inf-9", subject="ignored"),
        inference("org.kubeflow.serving.inference.response", id="inf-9"),
        inference("io.seldon.serving.inference.request", id="m-1", requestid="puid-4"),
        inference("io.seldon.serving.inference.response", id="m-2"),  # no request id
        {
            "specversion": "1.0",
            "id": "x",
            "source": "s",
            "type": "com.example.other",
            "subject": "k",
        },
    ]
    assert decision_ids_of(enumerate(events)) == {
        0: "loan-1",
        1: "loan-1",
        2: None,
        3: "inf-9",
        4: "inf-9",
        5: "puid-4",
        6: None,
        7: "k",
    }


def test_genai_spans_group_under_the_agent_invocation_among_the_spans_given() -> None:
    agent = genai_span(TRACE, AGENT, parent="f" * 16, operation="invoke_agent")
    chat = genai_span(TRACE, CHAT, parent=AGENT)
    tool = genai_span(TRACE, TOOL, parent=AGENT, operation="execute_tool")
    inner = genai_span(TRACE, INNER, parent=TOOL, operation="invoke_agent")
    under_inner = genai_span(TRACE, "e" * 16, parent=INNER)
    events = [under_inner, tool, inner, chat, agent]
    found = decision_ids_of(enumerate(events))
    assert found == {
        0: f"{TRACE}-{INNER}",
        1: f"{TRACE}-{AGENT}",
        2: f"{TRACE}-{INNER}",  # an agent is a decision of its own wherever it sits
        3: f"{TRACE}-{AGENT}",
        4: f"{TRACE}-{AGENT}",
    }
    # Without their agent, its spans are each the top of a decision of their own.
    assert decision_ids_of(enumerate([chat, tool])) == {0: f"{TRACE}-{CHAT}", 1: f"{TRACE}-{TOOL}"}


def test_parents_that_loop_back_are_one_decision_wherever_the_walk_starts() -> None:
    first = genai_span(TRACE, CHAT, parent=TOOL)
    second = genai_span(TRACE, TOOL, parent=CHAT)
    for events in ([first, second], [second, first]):
        assert set(decision_ids_of(enumerate(events)).values()) == {f"{TRACE}-{CHAT}"}


def test_a_genai_event_that_is_no_span_is_of_no_decision() -> None:
    broken = genai_span(TRACE, CHAT) | {"data": {"traceId": 7}}
    assert decision_ids_of([(0, broken)]) == {0: None}
