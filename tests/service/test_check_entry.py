"""``audit-trail check-entry`` against a decision_log on a loopback port: an intact entry passes
each step, and a byte changed in the database after the checkpoint fails it."""

from __future__ import annotations

import asyncio

import httpx
from decision_log.signing import LogSigner
from typer.testing import CliRunner

from tests.service.conftest import make_tenant
from tests.service.helpers import append, decision_event, wait_for_checkpoint
from tests.verifier import tamper


async def three_decisions(
    live_url: str, database_url: str, signer: LogSigner
) -> tuple[str, str, str]:
    keys = await make_tenant(database_url, signer)
    async with httpx.AsyncClient(base_url=live_url) as client:
        answer = await append(
            client, keys.producer, keys.chain, [decision_event() for _ in range(3)], batch=True
        )
        assert answer.status_code == 201, answer.text
        await wait_for_checkpoint(client, keys.auditor, keys.chain, size=3)
    return keys.tenant, keys.auditor, keys.chain


def check_entry(
    live_url: str, auditor: str, chain: str, index: int, log_key: str
) -> tuple[int, str]:
    from audit_trail.cli import app

    result = CliRunner().invoke(
        app,
        ["check-entry", chain, str(index), "--log-key", log_key],
        env={"AUDIT_TRAIL_URL": live_url, "AUDIT_TRAIL_API_KEY": auditor},
    )
    return result.exit_code, result.output


def test_an_intact_entry_passes_and_a_changed_byte_fails(
    live_url: str, database_url: str, signer: LogSigner
) -> None:
    tenant, auditor, chain = asyncio.run(three_decisions(live_url, database_url, signer))
    log_key = signer.note_signer.verifier_key

    status, output = check_entry(live_url, auditor, chain, 1, log_key)
    assert "entry 1: leaf hash" in output and "leaf hash" in output, output
    assert "inclusion proof (2 hashes) leads to the checkpoint's root: ok" in output, output
    # No --verifier-key: consistent with the log key, not shown to be witnessed.
    assert status == 2 and "NOT WITNESSED" in output, output

    async def tamper_with_entry_1() -> None:
        async with tamper.superuser(database_url) as connection:
            chain_id = await tamper.chain_id(connection, tenant, chain)
            await tamper.change_one_byte(connection, chain_id, 1)

    asyncio.run(tamper_with_entry_1())
    status, output = check_entry(live_url, auditor, chain, 1, log_key)
    assert status == 1 and "FAILED entry 1" in output, output

    other = "audit-trail.example/log+01020304+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
    status, output = check_entry(live_url, auditor, chain, 0, other)
    assert status != 0 and "VERIFIED" not in output, output
