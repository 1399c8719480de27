"""A tenant with keys and a chain on the live decision_log, and what the console tests do to
it from outside the browser: append events, wait for projection, revoke keys, edit rows.

Async set-up runs on a thread of its own, since the Playwright sync API owns the test's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
from audit_trail import admin
from decision_log.keys import service as keys
from decision_log.keys.schemas import KeyCreate
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.decisions.helpers import projected
from tests.service.conftest import TenantKeys, make_tenant

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    found: list[T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            found.append(asyncio.run(coroutine))
        except BaseException as error:  # re-raised on the test's thread
            failed.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return found[0]


@dataclass
class ConsoleWorld:
    base_url: str
    database_url: str
    keys: TenantKeys

    @classmethod
    def create(cls, *, base_url: str, database_url: str, signer: Any) -> ConsoleWorld:
        keys = run_async(make_tenant(database_url, signer))
        return cls(base_url=base_url, database_url=database_url, keys=keys)

    def api(self, method: str, path: str, *, key: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} | kwargs.pop("headers", {})
        return httpx.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def append(self, *events: dict[str, Any]) -> None:
        response = self.api(
            "POST",
            f"/v1/chains/{self.keys.chain}/events",
            key=self.keys.producer,
            content=orjson.dumps(list(events)),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert response.status_code in (200, 201, 202), response.text
        run_async(projected(self.database_url))

    def wait_for_checkpoint(self, *, size: int) -> None:
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chain = self.api("GET", f"/v1/chains/{self.keys.chain}", key=self.keys.auditor).json()
            checkpoint = chain.get("checkpoint") or {}
            if int(checkpoint.get("size", 0)) >= size:
                return
            time.sleep(0.05)
        raise AssertionError(f"no checkpoint of size {size} within 10 s")

    def sign_in(self, page: Page, key: str | None = None) -> None:
        page.goto(self.base_url + "/console/sign-in")
        page.get_by_label("API key").fill(key or self.keys.auditor)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    def key_with_roles(self, *roles: str) -> str:
        async def action(connection: AsyncConnection) -> str:
            created = await keys.create_key(
                connection,
                tenant_id=await admin.tenant_id(connection, self.keys.tenant),
                request=KeyCreate(roles=list(roles)),  # type: ignore[arg-type]
            )
            return created.api_key

        return run_async(admin.in_transaction(self.database_url, action))

    def key_id(self, key: str) -> str:
        return key.split("_")[1]
