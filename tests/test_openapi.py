"""The committed OpenAPI document is exactly what the app describes."""

from __future__ import annotations

from decision_log.openapi import render

from tests.conftest import PROJECT_ROOT


def test_committed_openapi_matches_the_app() -> None:
    committed = (PROJECT_ROOT / "openapi" / "decision_log.json").read_bytes()
    assert committed == render(), (
        "openapi/decision_log.json is stale: run `python -m decision_log.openapi "
        "openapi/decision_log.json` and commit it"
    )
