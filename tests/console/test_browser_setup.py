"""Without Chromium the browser tests fail rather than skip; only AUDIT_TRAIL_BROWSER_TESTS=0
leaves them out, and says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.browser

ONE_BROWSER_TEST = "tests/console/test_verify_js.py::test_rfc6962_roots_and_inclusion_proofs"


def run_one(**environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_BROWSER_TEST],
        cwd=PROJECT_ROOT,
        env=os.environ | environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_missing_chromium_fails_the_browser_tests() -> None:
    ran = run_one(AUDIT_TRAIL_CHROMIUM="/nonexistent/chromium")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "no Chromium at /nonexistent/chromium" in ran.stdout
    assert "1 error" in ran.stdout


def test_browser_tests_are_left_out_only_when_asked() -> None:
    ran = run_one(AUDIT_TRAIL_CHROMIUM="/nonexistent/chromium", AUDIT_TRAIL_BROWSER_TESTS="0")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 skipped" in ran.stdout
