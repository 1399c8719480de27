"""The limits producers read in docs/api.md are the limits the log applies."""

from __future__ import annotations

import re

from decision_log import limits
from decision_log.settings import Settings

from tests.conftest import PROJECT_ROOT


def documented_limits() -> dict[str, str]:
    text = (PROJECT_ROOT / "docs" / "api.md").read_text()
    section = text.split("## Limits", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \| .+ \|$", section, flags=re.MULTILINE)
    return {what: limit for what, limit in rows if not set(what) <= {"-", " "}}


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_limits_table_states_the_configured_limits() -> None:
    table = documented_limits()
    defaults = {name: field.default for name, field in Settings.model_fields.items()}

    def row(start: str) -> str:
        return next(limit for what, limit in table.items() if what.startswith(start))

    assert row("append body").startswith(f"{defaults['max_body_bytes'] // 2**20} MiB")
    assert row("any other request body").startswith(
        f"{defaults['max_request_body_bytes'] // 2**20} MiB"
    )
    assert row("one event").startswith(f"{defaults['max_event_bytes'] // 2**10} KiB")
    assert (
        f"from {limits.MIN_EVENT_BYTES // 2**10} KiB to "
        f"{limits.MAX_EVENT_BYTES_CEILING // 2**20} MiB" in row("one event")
    )
    otlp = row("OTLP traces body")
    assert otlp.startswith(f"{defaults['max_body_bytes'] // 2**20} MiB on the wire")
    assert f"{defaults['max_otlp_bytes'] // 2**20} MiB once decompressed" in otlp
    assert row("events in one batch") == (
        f"1 to {defaults['max_batch_events']:,} (`AUDIT_TRAIL_MAX_BATCH_EVENTS`)"
    )
    assert row("nesting depth").startswith(str(defaults["max_json_depth"]))
    for attribute, most in limits.ATTRIBUTE_MAX_CHARS.items():
        assert row(f"`{attribute}`").startswith(f"1 to {most} characters"), attribute
    assert row("texts of the log's own event types").startswith(
        f"{limits.MAX_INDEXED_TEXT_CHARS} characters"
    )
    low, high = (number(n) for n in re.findall(r"[\d,]+(?= days)", row("retention")))
    assert (low, high) == (limits.MIN_RETENTION_DAYS, limits.MAX_RETENTION_DAYS)
    assert "2^63 − 1" in row("indexes, sizes and ids") and limits.MAX_BIGINT == 2**63 - 1
