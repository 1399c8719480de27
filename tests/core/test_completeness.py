"""Completeness folded from events: gaps, late fills, duplicates, closing, silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import orjson
from hypothesis import given
from hypothesis import strategies as st
from ledger.completeness import (
    CLOSED_EVENT_TYPE,
    HEARTBEAT_EVENT_TYPE,
    CompletenessFold,
    SourceState,
    judge,
    parse_sequence,
)
from ledger.leaf import format_received_at

SOURCE = "scorer/0123456789abcdef"
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return format_received_at(T0 + timedelta(seconds=seconds))


def event(sequence: int | None, *, id: str | None = None, **more: object) -> dict[str, object]:
    value: dict[str, object] = {
        "source": SOURCE,
        "id": id or f"e-{sequence}",
        "type": "dev.audit-trail.decision.recorded.v1",
    }
    if sequence is not None:
        value["sequence"] = f"{sequence:020d}"
    return {**value, **more}


def fold(*events: dict[str, object]) -> SourceState:
    folded = CompletenessFold()
    for position, value in enumerate(events):
        folded.add(value, at(position))
    return folded.sources[SOURCE]


def ranges(state: SourceState) -> list[tuple[int, int]]:
    return [(int(low), int(high)) for low, high, _ in state.missing]


def test_consecutive_sequences_leave_no_gap() -> None:
    state = fold(*(event(n) for n in range(1, 6)))
    assert (state.count, state.highest, state.missing, state.findings) == (5, 5, [], [])


def test_a_jump_opens_a_gap_and_late_events_fill_it() -> None:
    state = fold(event(1), event(5), event(9))
    assert ranges(state) == [(2, 4), (6, 8)]
    for late in (3, 7, 2, 4):
        state.add(event(late), at(10))
    assert ranges(state) == [(6, 6), (8, 8)]
    assert state.findings == []


def test_the_first_event_need_not_be_one() -> None:
    assert ranges(fold(event(3))) == [(1, 2)]


def test_a_fold_that_starts_mid_chain_counts_from_the_first_number_it_sees() -> None:
    folded = CompletenessFold(from_start=False)
    for position, n in enumerate((7, 9, 3, 8)):
        folded.add(event(n), at(position))
    state = folded.sources[SOURCE]
    assert (state.floor, ranges(state), state.finding_count) == (7, [], 0)
    assert judge(state, now=T0, gap_age_seconds=600).to_json()["counted_from"] == "7"


def test_a_huge_gap_is_one_range() -> None:
    state = fold(event(1), event(10**19))
    assert ranges(state) == [(2, 10**19 - 1)]
    state.add(event(5 * 10**18), at(3))
    assert ranges(state) == [(2, 5 * 10**18 - 1), (5 * 10**18 + 1, 10**19 - 1)]
    assert state.missing_count == 10**19 - 3


def test_the_same_number_under_two_ids_is_a_finding() -> None:
    state = fold(event(1), event(2), event(2, id="other"))
    assert state.finding_count == 1
    assert state.findings[0]["kind"] == "duplicate-sequence"
    assert state.findings[0]["ids"] == ["e-2", "other"]


def test_the_same_event_twice_is_no_finding() -> None:
    state = fold(event(1), event(2), event(2))
    assert state.finding_count == 0


def test_a_repeat_older_than_the_id_window_is_still_a_finding() -> None:
    state = fold(*(event(n) for n in range(1, 1000)))
    state.add(event(3, id="e-3"), at(2000))
    assert state.finding_count == 1
    assert state.findings[0]["ids"] == [None, "e-3"]
    assert len(state.recent_ids) <= 256


def test_a_closed_source_is_complete_up_to_its_last_sequence() -> None:
    closing = event(3, type=CLOSED_EVENT_TYPE, data={"last_sequence": f"{3:020d}"})
    state = fold(event(1), event(2), closing)
    assert state.closed and state.complete
    judged = judge(state, now=T0 + timedelta(days=1), gap_age_seconds=600)
    assert (judged.status, judged.silent) == ("complete", False)


def test_a_closed_source_with_a_gap_is_not_complete_until_filled() -> None:
    closing = event(3, type=CLOSED_EVENT_TYPE, data={"last_sequence": f"{3:020d}"})
    state = fold(event(1), closing)
    assert state.closed and not state.complete
    state.add(event(2), at(5))
    assert state.complete


def test_a_closing_event_naming_another_number_is_a_finding() -> None:
    state = fold(event(1, type=CLOSED_EVENT_TYPE, data={"last_sequence": "7"}))
    assert [f["kind"] for f in state.findings] == ["closing-mismatch"]


def test_an_event_after_closing_reopens_the_source() -> None:
    closing = event(1, type=CLOSED_EVENT_TYPE, data={"last_sequence": f"{1:020d}"})
    state = fold(closing, event(2))
    assert not state.closed


def test_events_without_a_sequence_are_not_tracked_and_never_silent() -> None:
    odd = [{**event(None), "sequence": "12a"}, {**event(None), "sequence": 7}]
    state = fold(event(None), *odd)
    assert not state.tracked and state.count == 3
    judged = judge(state, now=T0 + timedelta(days=30), gap_age_seconds=600)
    assert (judged.status, judged.silent) == ("not-tracked", False)


def test_sequences_compare_as_integers() -> None:
    assert parse_sequence("00000000000000000042") == parse_sequence("42") == 42
    assert parse_sequence("123456789012345678901") is None
    assert parse_sequence("-1") is None


def test_a_declared_interval_makes_a_quiet_source_silent_after_the_slack() -> None:
    state = fold(event(1, heartbeatinterval="60"), event(2, type=HEARTBEAT_EVENT_TYPE, data={}))
    assert state.heartbeat_interval == 60
    last = T0 + timedelta(seconds=1)
    assert not judge(state, now=last + timedelta(seconds=119), gap_age_seconds=600).silent
    late = judge(state, now=last + timedelta(seconds=121), gap_age_seconds=600)
    assert (late.silent, late.status, late.silent_for_seconds) == (True, "silent", 121.0)


def test_a_gap_is_overdue_only_after_the_allowed_age() -> None:
    state = fold(event(1), event(3))
    opened = T0 + timedelta(seconds=1)
    assert judge(state, now=opened + timedelta(seconds=599), gap_age_seconds=600).status == "ok"
    judged = judge(state, now=opened + timedelta(seconds=601), gap_age_seconds=600)
    assert (judged.status, len(judged.overdue_gaps)) == ("gaps", 1)


def test_state_survives_a_round_trip_through_json() -> None:
    state = fold(event(1, heartbeatinterval="5"), event(4), event(4, id="x"))
    again = SourceState.from_json(orjson.loads(orjson.dumps(state.to_json())))
    assert again == state and list(again.recent_ids) == list(state.recent_ids)
    again.add(event(2), at(9))
    state.add(event(2), at(9))
    assert again == state


@given(
    total=st.integers(min_value=1, max_value=60),
    data=st.data(),
)
def test_any_order_and_any_losses_leave_exactly_the_lost_numbers_missing(
    total: int, data: st.DataObject
) -> None:
    numbers = data.draw(st.permutations(range(1, total + 1)))
    lost = data.draw(st.sets(st.sampled_from(numbers), max_size=total - 1))
    state = fold(*(event(n) for n in numbers if n not in lost))
    highest = max(n for n in numbers if n not in lost)
    expected = sorted(n for n in lost if n < highest)
    seen_missing = [n for low, high in ranges(state) for n in range(low, high + 1)]
    assert seen_missing == expected
    assert state.highest == highest and state.finding_count == 0
    # The ranges are sorted, disjoint and never adjacent to each other.
    pairs = ranges(state)
    assert all(a_high + 1 < b_low for (_, a_high), (b_low, _) in pairwise(pairs))


@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=80))
def test_folding_in_two_parts_equals_folding_at_once(sequences: list[int]) -> None:
    events = [event(n, id=f"e-{n}-{i % 2}") for i, n in enumerate(sequences)]
    whole = fold(*events)
    half = len(events) // 2
    first = CompletenessFold()
    for position, value in enumerate(events[:half]):
        first.add(value, at(position))
    resumed = CompletenessFold([SourceState.from_json(s.to_json()) for s in first.sources.values()])
    for position, value in enumerate(events[half:], start=half):
        resumed.add(value, at(position))
    assert resumed.sources[SOURCE] == whole
