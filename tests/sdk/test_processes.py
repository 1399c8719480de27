"""What happens across processes, run for real in subprocesses: the journal outlives a process
and is replayed by the next, a process's exit delivers what it queued, a forked child is a
producer of its own."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.sdk.conftest import chain_events
from tests.service.conftest import TenantKeys

JOURNAL_KEY = "11" * 32


def run(code: str, environment: dict[str, str]) -> list[dict[str, Any]]:
    """Run a Python program; its stdout is one JSON object per line."""
    ran = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, f"--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr}"
    return [json.loads(line) for line in ran.stdout.splitlines()]


def producer_environment(url: str, tenant: TenantKeys, **settings: str) -> dict[str, str]:
    return {
        "AUDIT_TRAIL_URL": url,
        "AUDIT_TRAIL_API_KEY": tenant.producer,
        "AUDIT_TRAIL_CHAIN": tenant.chain,
        "AUDIT_TRAIL_PRODUCER": "subprocess",
        "AUDIT_TRAIL_MAX_RETRY_DELAY": "0.2",
        **{"AUDIT_TRAIL_" + name.upper(): value for name, value in settings.items()},
    }


def unreachable_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


SEND_AND_EXIT = """
    import json
    from audit_trail_sdk import AuditLog

    log = AuditLog()
    deliveries = [
        log.decision(decision_id=f"loan-{n}", model={"name": "m", "version": "1"}, output="ok")
        for n in range(COUNT)
    ]
    ids = [f"{n}" for n in range(COUNT)]
    print(json.dumps({"source": log.source}), flush=True)
    # No close, no flush: the interpreter's exit must deliver or keep what is queued.
"""


async def test_the_journal_survives_a_restart_and_is_replayed(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    # 1. The log is unreachable: the queue spills to the journal, the exit keeps the rest.
    first = run(
        SEND_AND_EXIT.replace("COUNT", "40"),
        producer_environment(
            unreachable_url(),
            tenant,
            overflow="journal",
            journal_dir=str(journal),
            journal_key=JOURNAL_KEY,
            max_queue_events="5",
            exit_timeout="0.5",
            heartbeat_interval="0",
        ),
    )
    source = first[0]["source"]
    segments = sorted(journal.glob("segment-*"))
    assert segments
    for segment in segments:
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600
        assert b"loan-" not in segment.read_bytes()  # sealed with the journal key
    # 2. The next process replays it to the live log and deletes it once acknowledged.
    second = run(
        """
        import json
        from audit_trail_sdk import AuditLog

        delivered = []
        log = AuditLog(on_receipt=lambda receipt: delivered.append(receipt.event_id))
        assert log.flush(60)
        print(json.dumps({"delivered": len(delivered), "source": log.source}), flush=True)
        log.close(30)
        """,
        producer_environment(live_url, tenant, journal_dir=str(journal), journal_key=JOURNAL_KEY),
    )
    assert second[0]["delivered"] == 41  # 40 decisions and the first process's closing event
    assert second[0]["source"] != source
    assert not list(journal.glob("segment-*"))
    events = [event for event in await chain_events(client, tenant) if event["source"] == source]
    assert Counter(event["data"].get("last_sequence") is None for event in events) == {
        True: 40,
        False: 1,
    }
    # Replayed in sequence order: what the exit kept (the queue) before what was spilled.
    assert [int(event["sequence"]) for event in events] == list(range(1, 42))
    assert len({event["id"] for event in events}) == 41


async def test_exit_delivers_what_was_queued(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    ran = run(
        SEND_AND_EXIT.replace("COUNT", "50"),
        producer_environment(live_url, tenant, flush_interval="60"),
    )
    source = ran[0]["source"]
    events = [event for event in await chain_events(client, tenant) if event["source"] == source]
    assert len(events) == 51
    assert events[-1]["type"] == "dev.audit-trail.producer.closed.v1"
    assert events[-1]["data"]["last_sequence"] == f"{51:020d}"


async def test_a_forked_child_is_a_producer_of_its_own(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str
) -> None:
    ran = run(
        """
        import json, os
        from audit_trail_sdk import AuditLog

        log = AuditLog()
        model = {"name": "m", "version": "1"}
        queued = log.decision(decision_id="before-fork", model=model, output="ok")
        pid = os.fork()
        if pid == 0:
            mine = log.decision(decision_id="in-child", model=model, output="ok")
            log.close(30)
            print(json.dumps({"role": "child", "source": log.source,
                              "delivered": log.stats.delivered}), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        log.close(30)
        print(json.dumps({"role": "parent", "source": log.source,
                          "delivered": log.stats.delivered}), flush=True)
        """,
        producer_environment(live_url, tenant, flush_interval="60", heartbeat_interval="0"),
    )
    child, parent = ran
    assert child["source"] != parent["source"]
    # Each delivered its own decision and closing event: the child did not resend the
    # parent's queue.
    assert child["delivered"] == parent["delivered"] == 2
    events = await chain_events(client, tenant)
    by_source = {
        role["source"]: sorted(
            (event["sequence"], event["subject"] if "subject" in event else event["type"])
            for event in events
            if event["source"] == role["source"]
        )
        for role in ran
    }
    closed = "dev.audit-trail.producer.closed.v1"
    assert by_source[parent["source"]] == [(f"{1:020d}", "before-fork"), (f"{2:020d}", closed)]
    assert by_source[child["source"]] == [(f"{1:020d}", "in-child"), (f"{2:020d}", closed)]
    await asyncio.sleep(0)
