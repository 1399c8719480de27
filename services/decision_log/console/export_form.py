"""The export form: a browser's fields turned into the API's ``ExportRequest``, checked by it."""

from __future__ import annotations

from typing import Any

from decision_log.console.pages import checked, printable
from decision_log.exports.schemas import ExportRequest
from decision_log.problems import InvalidInput

MAX_DECISION_LINES = 1000


def export_request(fields: dict[str, str]) -> tuple[str, ExportRequest]:
    """(chain, request) from the form; an unfilled field is absent."""
    chain = printable(fields.get("chain", ""), name="chain", max_length=64)
    if not chain:
        raise InvalidInput("choose the chain to export", parameter="chain")
    body: dict[str, Any] = {"kind": printable(fields.get("kind", ""), name="kind", max_length=20)}
    for name in ("start", "end"):
        value = printable(fields.get(name, ""), name=name, max_length=25).strip()
        if value:
            if not value.isdigit():
                raise InvalidInput(f"{name} must be a whole number", parameter=name)
            body[name] = int(value)
    for name in ("since", "until", "override_reason"):
        value = printable(fields.get(name, ""), name=name, max_length=2000).strip()
        if value:
            body[name] = value
    lines = fields.get("decision_ids", "").replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_DECISION_LINES:
        raise InvalidInput(
            f"at most {MAX_DECISION_LINES} decisions at once", parameter="decision_ids"
        )
    ids = [printable(line.strip(), name="decision_ids") for line in lines if line.strip()]
    if ids:
        body["decision_ids"] = ids
    return chain, checked(ExportRequest, body)
