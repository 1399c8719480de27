"""The committed OpenAPI document of the verifier is exactly what the app describes."""

from __future__ import annotations

from verifier.openapi import render

from tests.conftest import PROJECT_ROOT


def test_committed_verifier_openapi_matches_the_app() -> None:
    committed = (PROJECT_ROOT / "openapi" / "verifier.json").read_bytes()
    assert committed == render(), (
        "openapi/verifier.json is stale: run `python -m verifier.openapi openapi/verifier.json` "
        "and commit it"
    )
