"""The fold that builds the read model, on plain lists (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from decision_log.decisions.projection import (
    DecisionRow,
    ProjectedBatch,
    ProjectedEntry,
    decisions_touched,
    fold_batch,
    parse_time,
    project_entry,
    timeline_subject,
)
from decision_log.limits import MAX_INDEXED_TEXT_CHARS, MAX_SUBJECT_CHARS

from tests.decisions.helpers import contested, deployed, outcome, overridden, recorded, reviewed

RECEIVED = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def fold(events: list[dict[str, Any]]) -> DecisionRow | None:
    row: DecisionRow | None = None
    for index, event in enumerate(events):
        entry = ProjectedEntry(
            idx=index,
            received_at=RECEIVED,
            event_type=event["type"],
            subject=event.get("subject"),
            event=event,
        )
        row = project_entry(row, entry, chain_id=1, tenant_id=2)
    return row


def test_a_recorded_decision_is_indexed_as_recorded() -> None:
    row = fold([recorded("d-1")])
    assert row is not None
    assert (row.model_name, row.model_version, row.policy_version) == ("credit-gbm", "4.2.0", "7")
    assert (row.decision, row.current_decision, row.score) == ("declined", "declined", 0.37)
    assert row.decided_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert row.received_at == RECEIVED
    assert row.decision_idx == 0 and row.data_subject_ref == "hmac:subject-1"
    assert not (row.reviewed or row.overridden or row.contested)


def test_reviews_overrides_contests_and_outcomes_change_the_state_in_order() -> None:
    row = fold(
        [
            recorded("d-1"),
            reviewed("d-1"),
            overridden("d-1"),
            contested("d-1"),
            outcome("d-1", "repaid"),
        ]
    )
    assert row is not None
    assert row.reviewed and row.overridden and row.contested
    assert (row.decision, row.current_decision, row.outcome) == ("declined", "approved", "repaid")
    assert row.last_idx == 4


def test_events_before_the_record_are_kept_and_the_record_fills_in() -> None:
    row = fold([overridden("d-1"), recorded("d-1")])
    assert row is not None
    assert row.decision_idx == 1 and row.overridden
    assert row.current_decision == "approved" and row.decision == "declined"


def test_a_second_record_does_not_rewrite_the_first() -> None:
    second = recorded("d-1", output={"decision": "approved", "score": 0.9})
    row = fold([recorded("d-1"), second])
    assert row is not None and row.decision == "declined" and row.decision_idx == 0


def test_other_types_do_not_make_decisions() -> None:
    unknown = recorded("d-1")
    unknown["type"] = "com.example.other.v1"
    assert fold([unknown, deployed()]) is None
    entry = ProjectedEntry(0, RECEIVED, "com.example.other.v1", "d-1", None)
    assert timeline_subject(entry) == "d-1"  # listed in the timeline, as unknown
    entry = ProjectedEntry(0, RECEIVED, deployed()["type"], "x", None)
    assert timeline_subject(entry) is None


# Values no read-model column can take: projected as unprojectable, never a stop.
LONG = "x" * (MAX_INDEXED_TEXT_CHARS + 1)


def test_a_nul_in_a_text_member_leaves_that_column_null_and_says_so() -> None:
    row = fold(
        [
            recorded(
                "d-1",
                model={"name": "credit\x00gbm", "version": "4.2.0"},
                system={"name": "credit\x00scoring", "deployment": "eu-prod"},
            )
        ]
    )
    assert row is not None
    assert (row.model_name, row.system_name) == (None, None)
    assert set(row.unprojectable) == {"model_name", "system_name"}
    assert (row.model_version, row.deployment, row.decision) == ("4.2.0", "eu-prod", "declined")


def test_a_text_too_long_for_an_index_is_unprojectable_and_one_that_fits_is_kept() -> None:
    fits = "y" * MAX_INDEXED_TEXT_CHARS
    row = fold(
        [
            recorded(
                "d-1",
                model={"name": fits, "version": LONG},
                policy={"id": LONG, "version": LONG},
                data_subject_ref=LONG,
            )
        ]
    )
    assert row is not None
    assert (row.model_name, row.model_version, row.policy_version) == (fits, None, None)
    assert row.data_subject_ref is None
    assert row.policy_id == LONG  # no index covers it: any length fits
    assert set(row.unprojectable) == {"model_version", "policy_version", "data_subject_ref"}


def test_an_unprojectable_decision_value_leaves_the_current_decision_unknown_too() -> None:
    row = fold([recorded("d-1", output={"decision": LONG, "score": 0.4})])
    assert row is not None
    assert (row.decision, row.current_decision, row.score) == (None, None, 0.4)
    assert set(row.unprojectable) == {"decision", "current_decision"}


@pytest.mark.parametrize(
    "time", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-13-01T00:00:00Z"]
)
def test_a_time_outside_the_stored_years_falls_back_to_the_receive_time(time: str) -> None:
    event = recorded("d-1")
    event["time"] = time
    row = fold([event])
    assert row is not None
    assert row.decided_at == RECEIVED and row.unprojectable == ("decided_at",)
    assert parse_time(time) is None


def test_times_at_the_edges_of_the_stored_years_are_kept() -> None:
    assert parse_time("9999-12-31T09:59:59-14:00") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_time("0001-01-01T13:00:00+13:00") == datetime(1, 1, 1, 0, 0, tzinfo=UTC)
    event = recorded("d-1")
    del event["time"]
    row = fold([event])
    assert row is not None and row.decided_at == RECEIVED and row.unprojectable == ()


def test_a_later_value_that_fits_takes_the_note_off() -> None:
    row = fold(
        [
            recorded("d-1"),
            overridden("d-1", new_decision="approved\x00"),
            outcome("d-1", "repaid\x00"),
        ]
    )
    assert row is not None
    assert (row.decision, row.current_decision, row.outcome) == ("declined", None, None)
    assert set(row.unprojectable) == {"current_decision", "outcome"}
    row = fold(
        [
            recorded("d-1"),
            overridden("d-1", new_decision="approved\x00"),
            outcome("d-1", "repaid\x00"),
            reviewed("d-1"),  # no new decision: changes nothing of it
            overridden("d-1", new_decision="referred"),
            outcome("d-1", "repaid"),
        ]
    )
    assert row is not None
    assert (row.current_decision, row.outcome, row.unprojectable) == ("referred", "repaid", ())


def test_an_unprojectable_override_before_the_record_still_wins() -> None:
    row = fold([overridden("d-1", new_decision="approved\x00"), recorded("d-1")])
    assert row is not None
    assert (row.decision, row.current_decision) == ("declined", None)
    assert row.unprojectable == ("current_decision",)


def batch(events: list[dict[str, Any]]) -> ProjectedBatch:
    entries = [
        ProjectedEntry(index, RECEIVED, event["type"], event.get("subject"), event)
        for index, event in enumerate(events)
    ]
    rows: dict[str, DecisionRow | None] = dict.fromkeys(decisions_touched(entries))
    return fold_batch(entries, rows, chain_id=1, tenant_id=2)


@pytest.mark.parametrize("subject", ["d" * (MAX_SUBJECT_CHARS + 1), "d-\x00"])
def test_an_entry_whose_subject_cannot_be_a_decision_id_is_left_out_and_counted(
    subject: str,
) -> None:
    fits = "d" * MAX_SUBJECT_CHARS
    projected = batch([recorded(fits), recorded(subject), reviewed(subject), reviewed(fits)])
    assert set(projected.decisions) == {fits}
    assert [(idx, decision_id) for _, decision_id, idx, _ in projected.timeline] == [
        (0, fits),
        (3, fits),
    ]
    assert projected.unprojectable == [1, 2]
    unknown = ProjectedEntry(0, RECEIVED, "com.example.other.v1", subject, None)
    assert timeline_subject(unknown) is None


def test_a_deployment_whose_model_no_column_can_take_is_left_out_and_counted() -> None:
    projected = batch([deployed(), deployed(version=LONG), deployed(name="gbm\x00")])
    assert projected.deployments == [(1, "credit-gbm", "4.2.0", 0)]
    assert projected.unprojectable == [1, 2]
