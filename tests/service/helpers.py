"""Small helpers shared by the decision_log tests: events, waiting for checkpoints, reading back."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
import orjson

STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def decision_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test:credit-model",
        "type": "dev.audit-trail.decision.recorded.v1",
        "subject": "decision-" + uuid.uuid4().hex[:8],
        "time": "2026-11-26T10:00:00.123Z",
        "datacontenttype": "application/json",
        "data": {
            "model": {"name": "credit-gbm", "version": "4.2.0"},
            "output": {"decision": "declined", "score": 0.37},
            "features": {"income": 42000, "ratio": 0.35, "name": "Zoë 😀"},
        },
    }
    event.update(overrides)
    return event


def headers(key: str, content: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **(content or {})}


async def append(
    client: httpx.AsyncClient, key: str, chain: str, events: Any, *, batch: bool = False
) -> httpx.Response:
    return await client.post(
        f"/v1/chains/{chain}/events",
        content=orjson.dumps(events),
        headers=headers(key, BATCH if batch else STRUCTURED),
    )


async def chain_size(client: httpx.AsyncClient, key: str, chain: str) -> int:
    response = await client.get(f"/v1/chains/{chain}", headers=headers(key))
    response.raise_for_status()
    return int(response.json()["size"])


async def wait_for_checkpoint(
    client: httpx.AsyncClient, key: str, chain: str, *, size: int, timeout: float = 10.0
) -> dict[str, Any]:
    """The chain as served once its latest checkpoint covers ``size`` entries."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get(f"/v1/chains/{chain}", headers=headers(key))
        body: dict[str, Any] = response.json()
        checkpoint = body.get("checkpoint")
        if checkpoint and checkpoint["size"] >= size:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"no checkpoint of size {size} within {timeout}s: {body}")
        await asyncio.sleep(0.05)


async def all_entries(client: httpx.AsyncClient, key: str, chain: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None:
        response = await client.get(
            f"/v1/chains/{chain}/entries",
            params={"start": start, "limit": 1000},
            headers=headers(key),
        )
        response.raise_for_status()
        page = response.json()
        entries.extend(page["entries"])
        start = page["next_start"]
    return entries


def leaf_bytes(entry: dict[str, Any]) -> bytes:
    return base64.b64decode(entry["leaf"])
