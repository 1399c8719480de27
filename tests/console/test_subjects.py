"""The data subjects page in Chromium: a pseudonym found, an erasure refused by the retention
floor with the API's message and done under an override, legal holds set and lifted."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.world import ConsoleWorld
from tests.service.test_privacy import personal_event

pytestmark = pytest.mark.browser


def test_find_erase_and_hold(world: ConsoleWorld, page: Page) -> None:
    world.append(personal_event("alice@example.com"))
    world.sign_in(page, world.keys.admin)
    page.get_by_role("link", name="Data subjects").click()

    page.get_by_label("The subject's identifier").fill("alice@example.com")
    page.get_by_role("button", name="Find the pseudonym").click()
    pseudonym = page.locator("#pseudonym").inner_text()
    assert pseudonym and "alice" not in pseudonym
    expect(page.get_by_label("Pseudonym", exact=True)).to_have_value(pseudonym)

    page.get_by_label("Reason", exact=True).fill("the subject asked (Art. 17 GDPR)")
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.get_by_role("button", name="Erase").click()
    assert refused.value.status == 409
    expect(page.get_by_role("alert")).to_contain_text("retention")

    page.go_back()
    page.get_by_label("Reason", exact=True).fill("the subject asked (Art. 17 GDPR)")
    page.get_by_label("Override reason").fill("court order 18/2026")
    page.get_by_role("button", name="Erase").click()
    expect(page.get_by_role("status")).to_contain_text(f"Erased {pseudonym}")

    page.get_by_label(f"Reason for a new hold on {world.keys.chain}").fill("inquiry 4711")
    page.get_by_role("button", name="Set a hold").click()
    expect(page.locator("body")).to_contain_text("inquiry 4711")
    page.get_by_label("Reason to lift").fill("inquiry closed")
    page.get_by_role("button", name="Lift").click()
    expect(page.get_by_text("inquiry 4711")).to_have_count(0)


def test_an_auditor_finds_pseudonyms_but_may_not_erase(world: ConsoleWorld, page: Page) -> None:
    world.sign_in(page)
    page.goto(world.base_url + "/console/subjects")
    expect(page.get_by_role("button", name="Find the pseudonym")).to_be_visible()
    expect(page.get_by_role("button", name="Erase")).to_have_count(0)
    expect(page.get_by_role("button", name="Set a hold")).to_have_count(0)
