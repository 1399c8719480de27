"""`audit-trail export` takes its API key from the environment or a file, never needing it on
the command line, against a decision_log served on a loopback port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.service.conftest import TenantKeys
from tests.service.helpers import append, decision_event, headers, wait_for_checkpoint


def run_export(
    chain: str, output: Path, url: str, *options: str, key_in_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUDIT_TRAIL_API_KEY"}
    if key_in_env is not None:
        env["AUDIT_TRAIL_API_KEY"] = key_in_env
    command = [sys.executable, "-m", "audit_trail", "export", chain, "-o", str(output)]
    return subprocess.run(
        [*command, "--url", url, *options], env=env, capture_output=True, text=True, timeout=120
    )


async def test_export_reads_the_key_from_the_environment_or_a_file(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str, tmp_path: Path
) -> None:
    appended = await append(client, tenant.producer, tenant.chain, [decision_event()], batch=True)
    assert appended.status_code == 201, appended.text
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=1)
    # This log has no verifier to vouch for an export: an administrator's override builds it.
    created = await client.post(
        "/v1/keys", json={"roles": ["admin", "auditor"]}, headers=headers(tenant.admin)
    )
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    override = ("--override-reason", "no verifier in this test")

    from_env = tmp_path / "from-env.zip"
    ran = await asyncio.to_thread(
        run_export, tenant.chain, from_env, live_url, *override, key_in_env=key
    )
    assert ran.returncode == 0, ran.stderr
    assert from_env.stat().st_size > 0 and "1 entries" in ran.stdout

    key_file = tmp_path / "auditor.key"
    key_file.write_text(f"  {key}\n")
    from_file = tmp_path / "from-file.zip"
    ran = await asyncio.to_thread(
        run_export, tenant.chain, from_file, live_url, *override, "--api-key-file", str(key_file)
    )
    assert ran.returncode == 0, ran.stderr
    assert from_file.stat().st_size > 0

    # A wrong key is the service's 401, said in one line; no key at all is a usage error.
    refused = await asyncio.to_thread(
        run_export, tenant.chain, tmp_path / "refused.zip", live_url, *override, key_in_env="wrong"
    )
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    assert "Traceback" not in refused.stderr
    keyless = await asyncio.to_thread(run_export, tenant.chain, tmp_path / "none.zip", live_url)
    assert keyless.returncode == 2 and "AUDIT_TRAIL_API_KEY" in keyless.stderr
    assert "Traceback" not in keyless.stderr
