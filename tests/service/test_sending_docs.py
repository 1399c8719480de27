"""Every example of docs/sending.md, run as written against a decision_log on a loopback port:
shell blocks with bash (curl), Python blocks with this interpreter, YAML blocks parsed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.service.conftest import TenantKeys
from tests.service.helpers import chain_size, headers

PAGE = PROJECT_ROOT / "docs" / "sending.md"
BLOCK = re.compile(r"^```(sh|python|yaml)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[str]:
    return [body for found, body in BLOCK.findall(PAGE.read_text()) if found == kind]


def test_the_page_has_an_example_of_each_way_in() -> None:
    text = PAGE.read_text()
    for heading in ("curl", "CloudEvents Python SDK", "KServe", "Seldon", "OpenTelemetry"):
        assert f"## {heading}" in text or heading in text
    assert len(blocks("sh")) >= 6 and len(blocks("python")) >= 1 and len(blocks("yaml")) >= 2


@pytest.mark.parametrize("manifest", blocks("yaml"))
def test_the_manifests_parse(manifest: str) -> None:
    document = yaml.safe_load(manifest)
    assert document["kind"] in ("InferenceService", "SeldonDeployment")


async def test_every_example_runs_and_appends(
    client: httpx.AsyncClient, tenant: TenantKeys, live_url: str, tmp_path: Path
) -> None:
    created = await client.post(
        "/v1/keys",
        json={"roles": ["producer"], "chains": [tenant.chain]},
        headers=headers(tenant.admin),
    )
    assert created.status_code == 201, created.text
    # `python` in the shell examples is this interpreter.
    (tmp_path / "python").symlink_to(sys.executable)
    environment = {
        **os.environ,
        "PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(sys.path),
        "AUDIT_TRAIL_URL": live_url,
        "CHAIN": tenant.chain,
        "PRODUCER_KEY": tenant.producer,
        "INGEST_KEY": created.json()["api_key"],
        "ADMIN_KEY": tenant.admin,
    }
    examples = [("bash", block) for block in blocks("sh")] + [
        (sys.executable, block) for block in blocks("python")
    ]
    for program, code in examples:
        before = await chain_size(client, tenant.auditor, tenant.chain)
        command = (
            [program, "-euo", "pipefail", "-c", code]
            if program == "bash"
            else [
                program,
                "-c",
                code,
            ]
        )
        ran = await asyncio.to_thread(
            subprocess.run, command, env=environment, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, f"{code}\n--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr}"
        assert await chain_size(client, tenant.auditor, tenant.chain) > before, code


def test_the_kserve_deploy_example_posts_to_a_chain_with_a_url_key() -> None:
    manifest = yaml.safe_load(
        (PROJECT_ROOT / "deploy" / "kubernetes" / "kserve-logger.yaml").read_text()
    )
    url = manifest["spec"]["predictor"]["logger"]["url"]
    assert re.fullmatch(
        r"http://decision-log\.[^/]+/v1/chains/[a-z0-9-]+/events\?access_token=atk_.+", url
    )
    assert manifest["spec"]["predictor"]["logger"]["mode"] == "all"
