"""The current search result as CSV, safe to open in a spreadsheet.

A producer's text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be
read as a formula by spreadsheet programs (CSV injection, OWASP); such a cell is prefixed with a
single quote, which they show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from decision_log.decisions.schemas import DecisionSummary

COLUMNS = (
    "chain",
    "decision_id",
    "decided_at",
    "system",
    "model_name",
    "model_version",
    "policy_id",
    "policy_version",
    "decision",
    "current_decision",
    "score",
    "data_subject_ref",
    "reviewed",
    "overridden",
    "contested",
    "outcome",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # a number the log stored, not a producer's text
    if isinstance(value, datetime):
        return value.isoformat()
    return neutralised(str(value))


def header_line() -> str:
    return _lines([COLUMNS])


def rows_text(decisions: Iterable[DecisionSummary]) -> str:
    return _lines([_cell(getattr(d, column)) for column in COLUMNS] for d in decisions)


def _lines(rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
