"""The overview page in Chromium: each chain's size, checkpoint and its age, who cosigned it,
the read model, and the verifier's word."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.test_decision_page import cosigned_decision
from tests.console.world import ConsoleWorld

pytestmark = pytest.mark.browser


def test_the_overview_shows_each_chains_checkpoint_and_cosigner(
    world: ConsoleWorld, page: Page
) -> None:
    cosigned_decision(world, "loan-9")
    world.sign_in(page)  # the overview is the first page after signing in
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    chain = page.get_by_role("region", name=world.keys.chain)
    expect(chain).to_contain_text("Entries2")
    expect(chain).to_contain_text("size 2, signed")
    expect(chain).to_contain_text(f"by witness.test/{world.keys.tenant} at 2026-09-21 14:13:20 UTC")
    expect(chain).to_contain_text("up to date")
    expect(chain).to_contain_text("none configured")
    access = page.get_by_role("region", name="access-log")
    expect(access).to_contain_text("no checkpoint of this chain is cosigned")
    chain.get_by_role("link", name=f"Decisions of {world.keys.chain}").click()
    expect(page.locator("table.results")).to_contain_text("loan-9")
