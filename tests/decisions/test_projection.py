"""The fold that builds the read model, on plain lists (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from decision_log.decisions.projection import (
    DecisionRow,
    ProjectedEntry,
    project_entry,
    timeline_subject,
)

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
