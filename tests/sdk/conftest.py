"""The producer SDK against a live decision_log: real uvicorn, real PostgreSQL, real keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from decision_log.settings import Settings

from tests.service.conftest import TenantKeys, app, client, live_url, settings, signer, tenant
from tests.service.helpers import all_entries, leaf_bytes
from tests.service.live import serve_in_thread

__all__ = ["app", "client", "live_url", "settings", "signer", "tenant"]


async def chain_events(client: httpx.AsyncClient, tenant: TenantKeys) -> list[dict[str, Any]]:
    """Every event in the tenant's chain, as the leaves hold them."""
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    return [orjson.loads(leaf_bytes(entry))["event"] for entry in entries]


def sdk_settings(url: str, tenant: TenantKeys, **overrides: Any) -> dict[str, Any]:
    return {
        "url": url,
        "api_key": tenant.producer,
        "chain": tenant.chain,
        "producer": "test-producer",
        "flush_interval": 0.05,
        "max_retry_delay": 0.5,
        **overrides,
    }


class RestartableLog:
    """A decision_log on a fixed loopback port that a test may stop and start again."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._serving: Iterator[str] | None = None
        self.port = 0
        self.url = ""

    def start(self) -> None:
        self._serving = serve_in_thread(self._settings, port=self.port)
        self.url = next(self._serving)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.close()
            self._serving = None


@pytest.fixture
def restartable_log(settings: Settings) -> Iterator[RestartableLog]:
    log = RestartableLog(settings)
    log.start()
    yield log
    log.stop()
