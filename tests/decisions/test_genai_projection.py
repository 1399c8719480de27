"""GenAI spans grouped into decisions by the pure fold (decisions/genai.py): each agent
invocation is a decision, spans arrive in any order, and the result depends only on which
spans have arrived."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from decision_log.decisions import genai
from decision_log.decisions.projection import ProjectedEntry, fold_decision
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger.membership import decision_ids_of

from tests.decisions.helpers import genai_span

TRACE = "0af7651916cd43dd8448eb211c80319c"
AGENT, CHAT, TOOL, LATER_CHAT = "a" * 16, "b" * 16, "c" * 16, "d" * 16
RECEIVED = datetime(2026, 12, 2, tzinfo=UTC)


def agent_trace() -> dict[str, dict[str, Any]]:
    return {
        AGENT: genai_span(
            TRACE,
            AGENT,
            parent="f" * 16,  # an HTTP span above, which is no GenAI span and never arrives
            operation="invoke_agent",
            gen_ai__agent__name="support",
            gen_ai__provider__name="openai",
            gen_ai__conversation__id="conv-7",
        ),
        CHAT: genai_span(
            TRACE,
            CHAT,
            parent=AGENT,
            start=1_764_662_400_000_001_000,
            gen_ai__request__model="gpt-4o",
            gen_ai__response__model="gpt-4o-2024-05-13",
            gen_ai__usage__input_tokens=100,
            gen_ai__usage__output_tokens=20,
        ),
        TOOL: genai_span(
            TRACE,
            TOOL,
            parent=AGENT,
            operation="execute_tool",
            start=1_764_662_400_000_002_000,
            gen_ai__tool__name="lookup_order",
        ),
        # A model call made from inside the tool, by an older instrumentation.
        LATER_CHAT: genai_span(
            TRACE,
            LATER_CHAT,
            parent=TOOL,
            start=1_764_662_400_000_003_000,
            gen_ai__system="openai",
            gen_ai__request__model="gpt-4o-mini",
            gen_ai__response__model="gpt-4o-mini-2024-07-18",
            gen_ai__usage__prompt_tokens=7,
            gen_ai__usage__completion_tokens=3,
        ),
    }


def nodes(events: list[dict[str, Any]]) -> list[genai.SpanNode]:
    found = [genai.span_node(idx, RECEIVED, event) for idx, event in enumerate(events)]
    assert all(node is not None for node in found)
    return [node for node in found if node is not None]


@pytest.mark.parametrize("order", list(itertools.permutations([AGENT, CHAT, TOOL, LATER_CHAT])))
def test_every_arrival_order_makes_the_agent_invocation_one_decision(order: tuple[str]) -> None:
    spans = agent_trace()
    fold = genai.fold_spans({}, nodes([spans[span] for span in order]))
    decisions = {node.decision_id for node in fold.nodes.values()}
    assert decisions == {f"{TRACE}-{AGENT}"}
    assert sorted(idx for _, idx in fold.timeline) == [0, 1, 2, 3]


def test_arriving_over_several_batches_gives_what_one_batch_gives() -> None:
    spans = agent_trace()
    first = genai.fold_spans({}, nodes([spans[LATER_CHAT], spans[CHAT]]))
    # Before their parents come, each stands for itself.
    assert {node.decision_id for node in first.nodes.values()} == {
        f"{TRACE}-{LATER_CHAT}",
        f"{TRACE}-{CHAT}",
    }
    later = [
        genai.span_node(2, RECEIVED, spans[TOOL]),
        genai.span_node(3, RECEIVED, spans[AGENT]),
    ]
    second = genai.fold_spans(first.nodes, [node for node in later if node is not None])
    assert sorted(second.merges) == [
        (f"{TRACE}-{CHAT}", f"{TRACE}-{AGENT}"),
        (f"{TRACE}-{TOOL}", f"{TRACE}-{AGENT}"),
        (f"{TRACE}-{LATER_CHAT}", f"{TRACE}-{TOOL}"),
    ]
    assert second.decisions == {f"{TRACE}-{AGENT}"}
    assert {node.decision_id for node in second.nodes.values()} == {f"{TRACE}-{AGENT}"}


def test_a_nested_agent_is_a_decision_of_its_own() -> None:
    spans = agent_trace()
    inner = genai_span(
        TRACE, "e" * 16, parent=TOOL, operation="invoke_agent", gen_ai__agent__name="billing"
    )
    under_inner = genai_span(TRACE, "1" * 16, parent="e" * 16, gen_ai__request__model="m")
    fold = genai.fold_spans({}, nodes([under_inner, inner, *spans.values()]))
    grouped = {node.span_id: node.decision_id for node in fold.nodes.values()}
    assert grouped["e" * 16] == grouped["1" * 16] == f"{TRACE}-{'e' * 16}"
    assert grouped[TOOL] == grouped[CHAT] == f"{TRACE}-{AGENT}"


def test_without_an_agent_the_topmost_genai_span_is_the_decision() -> None:
    root = genai_span(TRACE, CHAT, parent="f" * 16)  # its parent is an HTTP span
    child = genai_span(TRACE, TOOL, parent=CHAT, operation="execute_tool")
    fold = genai.fold_spans({}, nodes([child, root]))
    assert {node.decision_id for node in fold.nodes.values()} == {f"{TRACE}-{CHAT}"}


def test_the_row_names_the_agent_the_answering_model_and_both_spellings_of_usage() -> None:
    events = list(agent_trace().values())
    entries = [
        ProjectedEntry(idx, RECEIVED, event["type"], event["subject"], event)
        for idx, event in enumerate(events)
    ]
    row = fold_decision(entries, decision_id=f"{TRACE}-{AGENT}", chain_id=1, tenant_id=1)
    assert row is not None
    assert (row.genai_agent, row.genai_provider, row.genai_conversation) == (
        "support",
        "openai",
        "conv-7",
    )
    # The last model call to start answered: its requested and its responding model.
    assert (row.model_name, row.model_version) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert row.decided_at == datetime(2025, 12, 2, 8, 0, tzinfo=UTC)
    assert row.decision_idx is None and row.last_idx == 3
    node = genai.span_node(3, RECEIVED, events[3])
    assert node is not None and (node.provider, node.input_tokens, node.output_tokens) == (
        "openai",
        7,
        3,
    )


def test_a_span_of_another_decision_in_a_timeline_is_found_out() -> None:
    spans = agent_trace()
    stranger = genai_span("1" * 32, "2" * 16)
    events = [*spans.values(), stranger]
    found = decision_ids_of(enumerate(events))
    assert [i for i, of in found.items() if of != f"{TRACE}-{AGENT}"] == [4]
    assert set(decision_ids_of(enumerate(events[:4])).values()) == {f"{TRACE}-{AGENT}"}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_fold_groups_as_the_shared_membership_rule_does(data: st.DataObject) -> None:
    """The projector's incremental fold, in any arrival order and over any batches, makes the
    decisions that ledger/membership.py finds from the spans at once (the rule exports and
    offline checks apply)."""
    count = data.draw(st.integers(1, 8))
    ids = [f"{i:016x}" for i in range(1, count + 1)]
    events = []
    for position, span_id in enumerate(ids):
        parent = data.draw(st.sampled_from([None, "f" * 16, *ids[:position]]))
        agent = data.draw(st.booleans())
        operation = "invoke_agent" if agent else "chat"
        events.append(genai_span(TRACE, span_id, parent=parent, operation=operation))
    order = data.draw(st.permutations(range(count)))
    arrived = [events[i] for i in order]
    cut = data.draw(st.integers(0, count))
    first = genai.fold_spans({}, nodes(arrived[:cut]))
    later = [genai.span_node(cut + i, RECEIVED, event) for i, event in enumerate(arrived[cut:])]
    folded = genai.fold_spans(first.nodes, [node for node in later if node is not None])
    by_span = {node.span_id: node.decision_id for node in folded.nodes.values()}
    shared = decision_ids_of(enumerate(arrived))
    assert {arrived[i]["data"]["spanId"]: found for i, found in shared.items()} == by_span
