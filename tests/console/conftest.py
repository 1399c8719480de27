"""The console in a real browser: the decision_log served by uvicorn on a loopback port, and the
system's Chromium driven by Playwright. Browser tests fail when Chromium is missing; they are
skipped only when AUDIT_TRAIL_BROWSER_TESTS=0 says so."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.console.world import ConsoleWorld
from tests.service.conftest import app, client, live_url, settings, signer, tenant

__all__ = ["app", "client", "live_url", "settings", "signer", "tenant"]

CHROMIUM = os.environ.get("AUDIT_TRAIL_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# Module-scoped, not session-scoped: while Playwright's sync API is running it holds the thread's
# event loop, so async tests (pytest-asyncio) may only run once it has stopped.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if os.environ.get("AUDIT_TRAIL_BROWSER_TESTS") == "0":
        pytest.skip("browser tests turned off by AUDIT_TRAIL_BROWSER_TESTS=0")
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (or set "
            "AUDIT_TRAIL_BROWSER_TESTS=0 to leave the browser tests out)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def outside_requests() -> list[str]:
    """Every request the page tried to send off this machine (each aborted)."""
    return []


@pytest.fixture
def context(browser: Browser, outside_requests: list[str]) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)

    def keep_local(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host in LOOPBACK:
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    made.route("**/*", keep_local)
    yield made
    made.close()
    assert outside_requests == [], f"requests left the machine: {outside_requests}"


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def world(live_url: str, database_url: str, signer: object) -> ConsoleWorld:
    return ConsoleWorld.create(base_url=live_url, database_url=database_url, signer=signer)
