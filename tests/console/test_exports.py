"""Exports in Chromium: decisions chosen on the search page, the export built, its report shown
in a frame without scripts, the bundle downloaded and checked by `audit-trail verify-bundle`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import typer
from audit_trail.bundles import NOT_WITNESSED, verify_bundle_command
from playwright.sync_api import Page, expect

from tests.console.world import ConsoleWorld
from tests.decisions.helpers import recorded

pytestmark = pytest.mark.browser

REASON = "no verifier runs beside this log in the test"


def test_chosen_decisions_are_exported_downloaded_and_verified(
    world: ConsoleWorld, page: Page, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.append(recorded("loan-11"), recorded("loan-12"), recorded("loan-13"))
    world.wait_for_checkpoint(size=3)
    world.sign_in(page, world.key_with_roles("admin", "auditor"))
    page.goto(f"{world.base_url}/console/decisions?chain={world.keys.chain}")
    page.get_by_label("Choose loan-12 for export").check()
    page.get_by_role("button", name="Export the chosen decisions").click()
    expect(page.get_by_label("Decisions: their ids, one a line")).to_have_value("loan-12")
    expect(page.get_by_label("Kind")).to_have_value("decisions")
    page.get_by_label("Override reason").fill(REASON)
    page.get_by_role("button", name="Create the export").click()
    expect(page.locator("#export-status")).to_have_text("ready", timeout=20000)
    report = page.frame_locator("iframe.report")
    expect(report.locator("body")).to_contain_text(world.keys.tenant, timeout=10000)
    expect(report.locator("body")).to_contain_text(REASON)
    assert page.locator("iframe.report").get_attribute("sandbox") == ""

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the bundle").click()
    bundle = tmp_path / "bundle.zip"
    download.value.save_as(bundle)
    log_key = httpx.get(world.base_url + "/v1/log/keys").json()["keys"][0]["verifier_key"]
    try:
        verify_bundle_command(bundle, log_key=log_key, verifier_key=None)
        status = 0
    except typer.Exit as stopped:
        status = stopped.exit_code
    printed = capsys.readouterr().out
    # No verifier runs here, so the bundle is the log's word only: every check under the log's
    # key passes, and verify-bundle says it is not witnessed rather than verified.
    assert status == NOT_WITNESSED, printed
    assert "OK manifest" in printed and "OK checkpoint" in printed
    assert "OK entries     1 (indexes 1..1), each leaf proved included" in printed


def test_an_export_the_log_refuses_shows_its_problem(world: ConsoleWorld, page: Page) -> None:
    world.append(recorded("loan-14"))
    world.sign_in(page)
    page.goto(world.base_url + "/console/exports")
    page.get_by_label("Kind").select_option("range")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create the export").click()
    assert answer.value.status == 409
    expect(page.get_by_role("alert")).to_be_visible()
