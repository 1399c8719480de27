"""The README's tour, run as written against a real ``audit-trail up``.

Every ``sh`` block of the section "A five-minute tour" runs, in order, in one bash session in a
fresh folder (as the project folder: ``.venv`` is this project's, ``audit-trail-data`` is the
one ``up`` creates there), and what each prints must match the ``text`` block after it, where
``...`` stands for anything. The only change made to the commands is the port, so that the
test never collides with a service the machine already runs.

The same run is the full session whose logs are searched for secrets: ``up`` logs at debug
level, and after the tour an event with personal data is appended and its subject looked up;
no API key, token, key file's content or personal value may appear in what either service
logged.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_cli import free_port_pair

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK_END = "@@ block end @@"


def tour_blocks() -> list[tuple[str, str | None]]:
    """(commands, expected output or None) for each sh block of the tour, in order."""
    text = README.read_text()
    section = text.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(sh|text)\n(.*?)```", section, flags=re.S)
    pairs: list[tuple[str, str | None]] = []
    for kind, body in blocks:
        if kind == "sh":
            pairs.append((body, None))
        else:
            assert pairs and pairs[-1][1] is None, "a text block must follow an sh block"
            pairs[-1] = (pairs[-1][0], body)
    return pairs


def matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected`` with each ``...`` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("..."))
    return re.fullmatch(pattern, actual.strip(), flags=re.S) is not None


def test_the_tour_has_every_step() -> None:
    blocks = tour_blocks()
    commands = "\n".join(body for body, _ in blocks)
    for step in ("/events", "explanation", "check-entry", "checkpoint", "export", "verify-bundle"):
        assert step in commands
    assert all(expected is not None for _, expected in blocks[1:])


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="the tour is embedded mode")
def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    port = free_port_pair()
    verifier_port = port + 1
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AUDIT_TRAIL_", "DATABASE_URL"))
    }
    log_file = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "audit_trail", "up", "--port", str(port)],
        cwd=tmp_path,
        env={**environment, "AUDIT_TRAIL_LOG_LEVEL": "debug"},
        stdout=log_file.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{verifier_port}", up)
        blocks = tour_blocks()
        script = "".join(
            body.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
                "127.0.0.1:8001", f"127.0.0.1:{verifier_port}"
            )
            + f"\necho '{BLOCK_END}'\n"
            for body, _ in blocks
        )
        run = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # as a person at a terminal sees them, interleaved
            text=True,
            timeout=240,
        )
        outputs = run.stdout.split(BLOCK_END + "\n")
        assert len(outputs) == len(blocks) + 1, run.stdout
        for (commands, expected), actual in zip(blocks, outputs, strict=False):
            if expected is not None:
                assert matches(expected, actual), (
                    f"\n$ {commands}\nexpected:\n{expected}\ngot:\n{actual}"
                )
        personal = send_personal_data(tmp_path, f"http://127.0.0.1:{port}")
    finally:
        stop(up)
    logged = log_file.read_text()
    assert '"route":"/v1/chains/{chain}/events"' in logged, "the run logged no requests"
    for secret in [*secrets_of(tmp_path / "audit-trail-data"), *personal]:
        assert secret not in logged, f"a secret was logged: {secret[:12]}..."
    for line in logged.splitlines():
        if '"logger":"http_edge.requests"' in line:
            assert "?" not in json.loads(line).get("route", ""), line


PERSONAL_NAME = "Ada Sentinel-7731"
PERSONAL_SUBJECT = "subject-sentinel-4242"


def send_personal_data(folder: Path, url: str) -> list[str]:
    """Append an event with a sealed personal field, read it back and look its subject up; return
    the personal values, which must never reach a log."""
    keys = json.loads((folder / "audit-trail-data" / "credentials.json").read_text())["keys"]
    event = {
        "specversion": "1.0",
        "id": "d-personal",
        "source": "urn:credit-model",
        "subject": "loan-personal",
        "type": "dev.audit-trail.decision.recorded.v1",
        "personaldata": "/input/features/name",
        "datasubject": PERSONAL_SUBJECT,
        "data": {
            "model": {"name": "credit-gbm", "version": "4.2.0"},
            "input": {"features": {"name": PERSONAL_NAME}},
            "output": {"decision": "approved"},
        },
    }
    with httpx.Client(base_url=url, timeout=30) as http:
        appended = http.post(
            "/v1/chains/decisions/events",
            json=event,
            headers={
                "Authorization": f"Bearer {keys['producer']}",
                "Content-Type": "application/cloudevents+json",
            },
        )
        assert appended.status_code == 201, appended.text
        auditor = {"Authorization": f"Bearer {keys['auditor']}"}
        index = appended.json()["index"]
        read = http.get(f"/v1/chains/decisions/entries/{index}/event", headers=auditor)
        assert read.status_code == 200 and PERSONAL_NAME not in read.text
        looked_up = http.post(
            "/v1/subjects/pseudonym", json={"subject": PERSONAL_SUBJECT}, headers=auditor
        )
        assert looked_up.status_code == 200, looked_up.text
    return [PERSONAL_NAME, PERSONAL_SUBJECT]


def secrets_of(data_dir: Path) -> list[str]:
    """Every credential ``up`` made: API keys, the witness key, the metrics token, and the key
    material of the log, verifier, KEK and pseudonym key files."""
    keys_dir = data_dir / "keys"
    found = list(json.loads((data_dir / "credentials.json").read_text())["keys"].values())
    found.append(json.loads((keys_dir / "verifier-witness.json").read_text())["api_key"])
    found.append((keys_dir / "metrics-token").read_text().strip())
    found.extend(json.loads((keys_dir / "kek.json").read_text())["keys"].values())
    found.append((keys_dir / "pseudonym.key").read_text().strip())
    for pem in ("log-ed25519.pem", "verifier-ed25519.pem"):
        body = (keys_dir / pem).read_text().splitlines()[1:-1]
        found.extend(line for line in body if line)
    assert all(len(secret) >= 16 for secret in found), "a credential too short to search for"
    return found


def stop(up: subprocess.Popen[bytes]) -> None:
    os.killpg(up.pid, signal.SIGINT)
    try:
        up.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()


def wait_ready(log_url: str, verifier_url: str, up: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if up.poll() is not None:
            output = up.stdout.read().decode() if up.stdout else ""
            raise AssertionError(f"audit-trail up exited: {output}")
        try:
            urls = (log_url, verifier_url)
            if all(httpx.get(f"{url}/readyz", timeout=1).status_code == 200 for url in urls):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("audit-trail up was not ready within 120 s")
