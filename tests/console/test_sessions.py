"""Signing in and out of the console in Chromium: sessions, cookies, CSRF, revoked keys."""

from __future__ import annotations

import hashlib

import asyncpg
import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.console.world import ConsoleWorld, run_async

pytestmark = pytest.mark.browser


async def _session_rows(database_url: str, key_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(
            "SELECT id_hash FROM console_sessions WHERE key_id = $1", key_id
        )
    finally:
        await connection.close()


async def _access_actions(database_url: str, tenant: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT e.leaf FROM entries e JOIN chains c ON c.id = e.chain_id "
            "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1 AND c.slug = 'access-log' "
            "ORDER BY e.idx",
            tenant,
        )
    finally:
        await connection.close()
    import orjson

    return [orjson.loads(bytes(row["leaf"]))["event"]["data"]["action"] for row in rows]


def test_sign_in_and_out_are_recorded_and_the_session_is_stored_hashed(
    world: ConsoleWorld, page: Page, context: BrowserContext
) -> None:
    world.sign_in(page)
    cookie = next(c for c in context.cookies() if c["name"] == "audit_trail_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP on loopback; over TLS the flag is set
    assert cookie["path"] == "/console"
    rows = run_async(_session_rows(world.database_url, world.key_id(world.keys.auditor)))
    assert [bytes(r["id_hash"]) for r in rows] == [
        hashlib.sha256(cookie["value"].encode()).digest()
    ]
    assert world.keys.auditor not in page.content()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert run_async(_session_rows(world.database_url, world.key_id(world.keys.auditor))) == []
    page.goto(world.base_url + "/console/decisions")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    actions = run_async(_access_actions(world.database_url, world.keys.tenant))
    assert "console.sign-in" in actions and "console.sign-out" in actions


def test_a_new_session_id_at_each_sign_in(
    world: ConsoleWorld, page: Page, context: BrowserContext
) -> None:
    world.sign_in(page)
    first = next(c["value"] for c in context.cookies() if c["name"] == "audit_trail_console")
    world.sign_in(page)
    second = next(c["value"] for c in context.cookies() if c["name"] == "audit_trail_console")
    assert first != second


def test_a_wrong_key_is_refused_on_the_sign_in_page(world: ConsoleWorld, page: Page) -> None:
    page.goto(world.base_url + "/console/sign-in")
    page.get_by_label("API key").fill(world.keys.auditor[:-4] + "xxxx")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("the API key is not valid")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_a_producer_key_opens_no_session(world: ConsoleWorld, page: Page) -> None:
    page.goto(world.base_url + "/console/sign-in")
    page.get_by_label("API key").fill(world.keys.producer)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("auditor, admin or personal-data")


def test_a_revoked_keys_session_dies_at_its_next_request(world: ConsoleWorld, page: Page) -> None:
    world.sign_in(page)
    page.goto(world.base_url + "/console/decisions")
    expect(page.get_by_role("heading", name="Decisions")).to_be_visible()
    key_id = world.key_id(world.keys.auditor)
    revoked = world.api("POST", f"/v1/keys/{key_id}/revoke", key=world.keys.admin)
    assert revoked.status_code == 200, revoked.text
    page.goto(world.base_url + "/console/decisions")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert run_async(_session_rows(world.database_url, key_id)) == []


def test_forms_without_their_csrf_token_are_refused(
    world: ConsoleWorld, page: Page, context: BrowserContext
) -> None:
    # Sign-in: the form's token must match its cookie.
    page.goto(world.base_url + "/console/sign-in")
    refused = context.request.post(
        world.base_url + "/console/sign-in",
        form={"api_key": world.keys.auditor, "csrf_token": "forged"},
    )
    assert refused.status == 403
    assert "CSRF" in refused.text()
    # Sign-out: the session's own token.
    world.sign_in(page)
    refused = context.request.post(
        world.base_url + "/console/sign-out", form={"csrf_token": "forged"}
    )
    assert refused.status == 403
    page.goto(world.base_url + "/console/decisions")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_pages_carry_a_strict_content_security_policy(world: ConsoleWorld) -> None:
    answer = httpx.get(world.base_url + "/console/sign-in")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_api_docs_render_offline(world: ConsoleWorld, page: Page) -> None:
    page.goto(world.base_url + "/docs")
    expect(page.get_by_text("audit-trail decision_log").first).to_be_visible(timeout=15000)
    expect(page.locator(".opblock").first).to_be_visible()
