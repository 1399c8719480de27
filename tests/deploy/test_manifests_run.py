"""The rendered deployment, run: each workload's own command line and environment, as the
manifests give them, on this machine (ports and paths mapped to local ones, Secrets made as
docs/deployment.md makes them). The migrations Job migrates, the decision-log and the verifier
become ready on their probes, the projector projects, the projections-verify CronJob finds the
read model whole, the verifier cosigns, and every scraped service serves its metrics to the
ServiceMonitor's bearer token."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from audit_trail.admin import ensure_key
from decision_log.signing import LogSigner
from ledger.keys import read_private_key

from tests.databases import own_database
from tests.decisions.helpers import recorded
from tests.deploy.conftest import named, pod_spec
from tests.service.conftest import make_tenant
from tests.service.helpers import append


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def databases(database_url: str) -> AsyncIterator[tuple[str, str]]:
    """Two empty databases: the log's and the verifier's own."""
    async with (
        own_database(database_url, "deploy_log") as log,
        own_database(database_url, "deploy_verifier") as verifier,
    ):
        yield log, verifier


class Cluster:
    """Secrets, Service addresses and mounted files of the manifests, on this machine."""

    def __init__(self, manifests: list[dict[str, Any]], folder: Path) -> None:
        self.manifests = manifests
        self.folder = folder
        self.secrets: dict[str, dict[str, str]] = {}
        self.ports = {"decision-log": free_port(), "verifier": free_port()}
        self.ports["decision-projector"] = free_port()
        self.services = {
            "http://decision-log": f"http://127.0.0.1:{self.ports['decision-log']}",
            "http://verifier:8001": f"http://127.0.0.1:{self.ports['verifier']}",
        }

    def container(self, kind: str, name: str) -> dict[str, Any]:
        container: dict[str, Any] = pod_spec(named(self.manifests, kind, name))["containers"][0]
        return container

    def command(self, kind: str, name: str) -> list[str]:
        args: list[str] = self.container(kind, name)["args"]
        local = {"0.0.0.0": "127.0.0.1", "8000": "", "8001": "", "9100": ""}
        mapped = [local.get(arg, arg) or str(self.ports[name]) for arg in args]
        assert mapped[0] == "audit-trail"
        return [sys.executable, "-m", "audit_trail", *mapped[1:]]

    def environment(self, kind: str, name: str) -> dict[str, str]:
        """The container's environment: Secrets read, Services and mounts mapped."""
        spec = pod_spec(named(self.manifests, kind, name))
        mounts = {}
        for mount in self.container(kind, name).get("volumeMounts", []):
            local = self.folder / name / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            if "secret" in volume:
                secret = self.secrets[volume["secret"]["secretName"]]
                for item in volume["secret"]["items"]:
                    (local / item["path"]).write_text(secret[item["key"]])
            mounts[mount["mountPath"]] = str(local)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AUDIT_TRAIL_", "PROMETHEUS_")) and k != "DATABASE_URL"
        }
        for variable in self.container(kind, name).get("env", []):
            if "valueFrom" in variable:
                reference = variable["valueFrom"]["secretKeyRef"]
                value = self.secrets[reference["name"]][reference["key"]]
            else:
                value = self.services.get(variable["value"], variable["value"])
                for path in sorted(mounts, key=len, reverse=True):
                    if value == path or value.startswith(path + "/"):
                        value = mounts[path] + value[len(path) :]
                        break
            env[variable["name"]] = value
        return env

    def run(self, kind: str, name: str) -> str:
        """Run a Job's container to completion."""
        return self.execute(kind, name, self.command(kind, name))

    def exec(self, kind: str, name: str, *args: str) -> str:
        """`kubectl exec <workload> -- audit-trail ARGS`: in the container's environment."""
        return self.execute(kind, name, [sys.executable, "-m", "audit_trail", *args])

    def execute(self, kind: str, name: str, command: list[str]) -> str:
        done = subprocess.run(
            command,
            env=self.environment(kind, name),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    @contextmanager
    def started(self, kind: str, name: str) -> Iterator[subprocess.Popen[str]]:
        process = subprocess.Popen(
            self.command(kind, name),
            env=self.environment(kind, name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=40)  # the pod's grace period
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


async def probe(
    cluster: Cluster, kind: str, name: str, kind_of_probe: str, process: subprocess.Popen[str]
) -> None:
    """Wait until the container's probe, as the manifest gives it, answers 200."""
    path = cluster.container(kind, name)[kind_of_probe]["httpGet"]["path"]
    deadline = asyncio.get_running_loop().time() + 90
    async with httpx.AsyncClient(base_url=cluster.url(name), timeout=2) as client:
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"{name} {path}: not 200"
            await asyncio.sleep(0.3)


@asynccontextmanager
async def scraper(cluster: Cluster, name: str) -> AsyncIterator[httpx.AsyncClient]:
    token = cluster.secrets["audit-trail-metrics"]["token"]
    endpoint = named(cluster.manifests, "ServiceMonitor", "audit-trail")["spec"]["endpoints"][0]
    assert endpoint["authorization"]["credentials"]["name"] == "audit-trail-metrics"
    async with httpx.AsyncClient(
        base_url=cluster.url(name), headers={"Authorization": f"Bearer {token}"}, timeout=5
    ) as client:
        yield client


async def series(cluster: Cluster, name: str, metric: str) -> float:
    path = named(cluster.manifests, "ServiceMonitor", "audit-trail")["spec"]["endpoints"][0]
    async with scraper(cluster, name) as client:
        response = await client.get(path["path"])
    assert response.status_code == 200, response.text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line.startswith(metric + " ") or line.startswith(metric + "{")
    ]
    assert values, f"{metric} not served by {name}"
    return sum(values)


async def eventually(check: Any, what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.5)


async def test_the_deployment_runs_as_rendered(
    manifests: list[dict[str, Any]], databases: tuple[str, str], tmp_path: Path
) -> None:
    log_database, verifier_database = databases
    cluster = Cluster(manifests, tmp_path)
    keys = tmp_path / "made-keys"
    keys.mkdir()

    # The log's Secrets, made as docs/deployment.md makes them.
    cluster.secrets["audit-trail-metrics"] = {"token": secrets.token_hex(32)}
    cluster.secrets["audit-trail-owner"] = {"database-url": log_database}
    subprocess.run(
        [
            *(sys.executable, "-m", "audit_trail", "privacy", "create-keys"),
            *("--kek-file", str(keys / "kek.json")),
            *("--pseudonym-key-file", str(keys / "pseudonym")),
        ],
        check=True,
        capture_output=True,
    )
    ensure_key(keys / "log.pem")
    cluster.secrets["audit-trail-decision-log"] = {
        "database-url": log_database,
        "log-ed25519.pem": (keys / "log.pem").read_text(),
        "kek.json": (keys / "kek.json").read_text(),
        "pseudonym.key": (keys / "pseudonym").read_text(),
    }

    cluster.run("Job", "audit-trail-migrate")
    with (
        cluster.started("Deployment", "decision-log") as log,
        cluster.started("Deployment", "decision-projector") as projector,
    ):
        await probe(cluster, "Deployment", "decision-log", "startupProbe", log)
        await probe(cluster, "Deployment", "decision-log", "readinessProbe", log)
        await probe(cluster, "Deployment", "decision-projector", "livenessProbe", projector)

        # Bootstrapping the verifier (docs/deployment.md): its key, registered as a witness
        # from inside a decision-log container, and the log's public key.
        verifier_env = cluster.container("Deployment", "verifier")["env"]
        name = next(v["value"] for v in verifier_env if v["name"] == "AUDIT_TRAIL_VERIFIER_NAME")
        shown = subprocess.run(
            [
                *(sys.executable, "-m", "audit_trail", "verifier", "key"),
                *("--key-file", str(keys / "verifier.pem"), "--name", name),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        witness = json.loads(cluster.exec("Deployment", "decision-log", "witnesses", "add", shown))
        async with httpx.AsyncClient(base_url=cluster.url("decision-log")) as client:
            log_keys = (await client.get("/v1/log/keys")).json()
        password = secrets.token_hex(12)
        cluster.secrets["audit-trail-verifier-db"] = {
            "password": password,
            "database-url": verifier_database,
        }
        cluster.secrets["audit-trail-verifier-witness"] = {
            "verifier-ed25519.pem": (keys / "verifier.pem").read_text(),
            "log-api-key": witness["api_key"],
            "log-verifier-key": log_keys["keys"][0]["verifier_key"],
        }

        with cluster.started("Deployment", "verifier") as verifier:
            await probe(cluster, "Deployment", "verifier", "startupProbe", verifier)
            await probe(cluster, "Deployment", "verifier", "readinessProbe", verifier)

            # A decision appended: projected by the projector, cosigned by the verifier.
            log_env = cluster.container("Deployment", "decision-log")["env"]
            origin = next(v["value"] for v in log_env if v["name"] == "AUDIT_TRAIL_LOG_ORIGIN")
            signer = LogSigner.create(key=read_private_key(keys / "log.pem"), origin=origin)
            tenant = await make_tenant(log_database, signer)
            async with httpx.AsyncClient(base_url=cluster.url("decision-log")) as client:
                response = await append(
                    client, tenant.producer, tenant.chain, [recorded("loan-1")], batch=True
                )
                assert response.status_code == 201, response.text

            async def projected() -> bool:
                connection = await asyncpg.connect(log_database)
                try:
                    return bool(await connection.fetchval("SELECT count(*) FROM decisions"))
                finally:
                    await connection.close()

            async def cosigned() -> bool:
                return (
                    await series(cluster, "verifier", "audit_trail_verifier_cosignatures_total") > 0
                )

            await eventually(projected, "the projector did not project the decision")
            # The hourly check of the read model against the log finds it whole.
            checked = json.loads(cluster.run("CronJob", "projections-verify"))
            assert checked["mismatch_count"] == 0, checked
            await eventually(cosigned, "the verifier did not cosign")
            assert await series(cluster, "decision-log", "audit_trail_events_ingested_total") >= 1
            behind = "audit_trail_projector_behind_entries"
            assert await series(cluster, "decision-projector", behind) == 0
            # Without the token, no metrics.
            async with httpx.AsyncClient(base_url=cluster.url("verifier")) as client:
                assert (await client.get("/metrics")).status_code == 401
