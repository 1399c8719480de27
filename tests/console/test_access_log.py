"""The access log page in Chromium: sign-ins, searches and views, newest first."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.world import ConsoleWorld
from tests.decisions.helpers import recorded

pytestmark = pytest.mark.browser


def test_the_access_log_shows_who_searched_viewed_and_signed_in(
    world: ConsoleWorld, page: Page
) -> None:
    world.append(recorded("loan-10"))
    world.sign_in(page)
    page.goto(world.base_url + "/console/decisions?decision=declined")
    page.goto(f"{world.base_url}/console/chains/{world.keys.chain}/decisions/loan-10")
    page.get_by_role("link", name="Access log").click()
    rows = page.locator("table.results tbody tr")
    key_id = world.key_id(world.keys.auditor)
    expect(rows.nth(0)).to_contain_text("decision.view")
    expect(rows.nth(0)).to_contain_text("decision loan-10")
    expect(rows.nth(1)).to_contain_text("decisions.search")
    expect(rows.nth(1)).to_contain_text('query {"decision":"declined"}')
    expect(rows.nth(2)).to_contain_text("console.sign-in")
    expect(rows.nth(2)).to_contain_text(f"key {key_id} (auditor)")
    expect(page.locator("table.results")).to_contain_text("key.create")


def test_the_access_log_pages_back_in_time(world: ConsoleWorld, page: Page) -> None:
    world.sign_in(page)
    for n in range(55):
        page.goto(f"{world.base_url}/console/decisions?decision=d{n}")
    page.goto(world.base_url + "/console/access-log")
    rows = page.locator("table.results tbody tr")
    expect(rows).to_have_count(50)
    newest = int(rows.first.locator("td").first.inner_text().split()[0])
    page.get_by_role("link", name="Older").click()
    expect(rows.first.locator("td").first).to_have_text(str(newest - 50))
