"""schemathesis against both services, from the committed OpenAPI documents, on a live system.

``python -m tests.fuzz.run`` starts ``audit-trail up`` on a fresh data folder and a free port,
makes one fresh tenant per role (admin, producer, auditor), each with a chain ``fuzz`` and one
key of that role only, and runs schemathesis (the version pinned in ``requirements.txt`` next to
this file, from its own virtual environment so that its dependencies never decide the
service's) once per role against the decision_log and once with the auditor key against the
verifier, with the committed ``schemathesis.toml``. It exits non-zero on any failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ROLES = ("admin", "producer", "auditor")
# The chain name the OpenAPI document gives as its example, so that examples reach real data.
CHAIN = "decisions"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("audit-trail up exited before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} was not ready within {timeout} s")


def cli(data_dir: Path, *args: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-m", "audit_trail", *args, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        env=environment(),
    ).stdout
    result: dict[str, object] = json.loads(output)
    return result


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}


def fresh_tenant(data_dir: Path, log_url: str, role: str) -> str:
    """A new tenant with the chain ``fuzz``; the API key of one role only."""
    tenant = f"fuzz-{role}-{os.getpid()}"
    admin_key = str(cli(data_dir, "tenants", "create", tenant)["admin_key"])
    auth = {"Authorization": f"Bearer {admin_key}"}
    httpx.post(f"{log_url}/v1/chains", json={"chain": CHAIN}, headers=auth).raise_for_status()
    if role == "admin":
        return admin_key
    created = httpx.post(f"{log_url}/v1/keys", json={"roles": [role]}, headers=auth)
    created.raise_for_status()
    return str(created.json()["api_key"])


def schemathesis(document: str, url: str, key: str, report: Path) -> int:
    command = [
        str(ROOT / ".venv-fuzz" / "bin" / "schemathesis"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        str(ROOT / "openapi" / document),
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {key}",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    print("$", " ".join(command[:-6]), "...", flush=True)
    return subprocess.run(command, env=environment()).returncode


def main() -> None:
    """``python -m tests.fuzz.run [ROLE ...]``: every role and the verifier by default."""
    roles = tuple(sys.argv[1:]) or (*ROLES, "verifier")
    port = free_port()
    log_url, verifier_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    failures = 0
    with tempfile.TemporaryDirectory(prefix="audit-trail-fuzz-") as folder:
        data_dir = Path(folder) / "data"
        server_log = (Path(folder) / "up.log").open("wb")
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit_trail",
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            env=environment(),
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(log_url, up)
            wait_ready(verifier_url, up)
            keys = {role: fresh_tenant(data_dir, log_url, role) for role in ROLES}
            for role in (r for r in roles if r in ROLES):
                print(f"== decision_log as {role} ==", flush=True)
                failures += (
                    schemathesis(
                        "decision_log.json", log_url, keys[role], Path(folder) / f"log-{role}"
                    )
                    != 0
                )
            print("== verifier as auditor ==", flush=True)
            failures += (
                schemathesis(
                    "verifier.json", verifier_url, keys["auditor"], Path(folder) / "verifier"
                )
                != 0
            )
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)
            server_log.close()
            if failures:
                # What the services logged about the failures (errors carry the request id).
                for line in (Path(folder) / "up.log").read_text(errors="replace").splitlines():
                    if "ERROR" in line or "Traceback" in line or line.startswith(("  ", "E")):
                        print(line)
    if failures:
        raise SystemExit(f"schemathesis found failures in {failures} run(s)")
    print("schemathesis: 0 failures in every run")


if __name__ == "__main__":
    main()
