"""docs/sending-python.md's example, run as written against a live log, and the SDK's limits
held to the log's own."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import httpx
from audit_trail_sdk import limits
from decision_log.settings import Settings

from tests.conftest import PROJECT_ROOT
from tests.sdk.conftest import chain_events
from tests.service.conftest import TenantKeys

PAGE = PROJECT_ROOT / "docs" / "sending-python.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


async def test_the_example_runs_and_appends(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    [example] = PYTHON_BLOCK.findall(PAGE.read_text())
    environment = {
        **os.environ,
        "AUDIT_TRAIL_URL": live_url,
        "AUDIT_TRAIL_API_KEY": tenant.producer,
        "AUDIT_TRAIL_CHAIN": tenant.chain,
    }
    ran = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", example],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, f"--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr}"
    index, leaf_hash = ran.stdout.split()
    events = await chain_events(client, tenant)
    sent = [event for event in events if event["source"].startswith("credit-scoring/")]
    assert [event["type"] for event in sent] == [
        "dev.audit-trail.decision.recorded.v1",
        "dev.audit-trail.outcome.observed.v1",
        "dev.audit-trail.producer.closed.v1",
    ]
    assert sent[0]["data"]["input"]["features"]["income"]["enc"] == "A256GCM"
    assert len(leaf_hash) == 64 and int(index) >= 0


def test_the_sdk_stays_within_the_logs_default_limits() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert defaults["max_body_bytes"] == limits.MAX_BODY_BYTES
    assert defaults["max_batch_events"] == limits.MAX_BATCH_EVENTS
    assert defaults["max_event_bytes"] == limits.MAX_EVENT_BYTES
