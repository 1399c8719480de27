"""report.html speaks words, not Python: the selection is described, and what a producer left
out is said to be so."""

from __future__ import annotations

from decision_log.decisions.event_types import DECISION_RECORDED
from decision_log.exports.report import BundleSummary, render_report
from ledger.bundle import DECISIONS_EXPORT_LIMIT, describe_selection


def info(selection: dict[str, object]) -> dict[str, object]:
    return {
        "tenant": "acme",
        "chain": "decisions",
        "origin": "audit-trail.example/acme/decisions",
        "selection": selection,
        "checkpoint": {"size": 25, "root_hash": "ab" * 32, "cosigned": True},
        "created_at": "2026-01-02T03:04:05.000000Z",
    }


def recorded(data: dict[str, object]) -> dict[str, object]:
    return {
        "received_at": "2026-01-01T00:00:00.000000Z",
        "event": {"type": DECISION_RECORDED, "subject": "loan-1", "data": data},
    }


def test_a_range_is_described_in_words_and_a_missing_system_is_not_stated() -> None:
    summary = BundleSummary()
    summary.add(recorded({"output": {"decision": "approve"}, "model": {"name": "gbm"}}))
    page = render_report(
        info=info({"kind": "range", "start": 0, "end": 25}), summary=summary, verification=[]
    ).decode()
    assert "entries 0 to 24 of chain decisions" in page
    assert "{" not in page.split("<body>")[1] and "'kind'" not in page
    assert "None" not in page
    assert "<td>(not stated)</td>" in page  # the AI system
    assert "<td>gbm (not stated)</td>" in page  # the model's version
    assert DECISIONS_EXPORT_LIMIT not in page


def test_a_decisions_export_says_it_does_not_prove_a_timeline_complete() -> None:
    selection = {"kind": "decisions", "decision_ids": ["loan-1", "loan-2"]}
    page = render_report(info=info(selection), summary=BundleSummary(), verification=[]).decode()
    assert "the events of 2 decision(s) of chain decisions: loan-1, loan-2" in page
    assert "does not prove that a decision&#x27;s timeline is complete" in page


def test_a_time_export_is_described_by_its_window() -> None:
    selection = {
        "kind": "time",
        "since": "2026-01-01T00:00:00.000000Z",
        "until": None,
        "start": 3,
        "end": 3,
    }
    assert describe_selection(selection, chain="decisions") == (
        "decisions received from 2026-01-01T00:00:00.000000Z to before the checkpoint: "
        "no entries of chain decisions"
    )
