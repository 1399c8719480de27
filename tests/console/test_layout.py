"""The console's pages at 1280 and at 390 pixels wide: nothing wider than the window (no
sideways scrolling of the page), the content reachable by keyboard, a screenshot of each."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.test_decision_page import cosigned_decision, log_key, paste_keys_and_verify
from tests.console.world import ConsoleWorld
from tests.decisions.helpers import overridden, recorded

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_window_and_work_by_keyboard(
    world: ConsoleWorld, page: Page, tmp_path: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    cosigner = cosigned_decision(world, "loan-7")
    world.append(recorded("loan-8"), overridden("loan-8"))

    page.goto(world.base_url + "/console/sign-in")
    assert page.evaluate("document.activeElement.id") == "api_key"  # autofocus
    page.keyboard.type(world.keys.auditor)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    pages = {"overview": world.base_url + "/console/"}
    pages["decisions"] = world.base_url + "/console/decisions"
    pages["decision"] = f"{world.base_url}/console/chains/{world.keys.chain}/decisions/loan-7"
    for name, url in pages.items():
        page.goto(url)
        if name == "decision":
            paste_keys_and_verify(page, log_key=log_key(world), verifier_key=cosigner.verifier_key)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px wider than {width}px"
        page.screenshot(path=tmp_path / f"console-{name}-{width}.png", full_page=True)
        if name == "decision":
            verify = page.get_by_role("region", name="Verify in your browser")
            verify.screenshot(path=tmp_path / f"console-verify-{width}.png")
    page.goto(pages["decisions"])
    page.get_by_role("link", name="loan-8").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Explanation")).to_be_visible()


def test_a_request_leaving_the_machine_is_caught(
    world: ConsoleWorld, page: Page, outside_requests: list[str]
) -> None:
    # A console page's own policy stops it before the network: connect-src is 'self'.
    page.goto(world.base_url + "/console/sign-in")
    blocked = page.evaluate(
        "fetch('http://203.0.113.7/beacon').then(() => 'sent', () => 'blocked')"
    )
    assert blocked == "blocked" and outside_requests == []
    # The guard every browser test runs under, shown to catch what it is there to catch.
    page.goto("about:blank")  # a page without the console's policy
    with page.expect_event("requestfailed"):
        page.set_content('<img src="http://203.0.113.7/pixel.png" alt="">')
    assert outside_requests == ["http://203.0.113.7/pixel.png"]
    outside_requests.clear()
