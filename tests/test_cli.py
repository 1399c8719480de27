"""`audit-trail up` on a fresh data folder: embedded PostgreSQL, keys, demo tenant, API; and a
second start that reuses all of it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_option(port: int) -> list[str]:
    return ["--port", str(port)]


def start_up(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "audit_trail",
            "up",
            "--data-dir",
            str(data_dir),
            *port_option(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"audit-trail up exited early:\n{output}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("audit-trail up did not become ready")


def wait_cosigned(url: str, verifier_url: str, credentials: dict, size: int) -> str:
    """The log's checkpoint once the verifier has cosigned one of at least `size` entries."""
    auditor = {"Authorization": f"Bearer {credentials['keys']['auditor']}"}
    name = httpx.get(f"{verifier_url}/v1/keys").json()["name"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        note = httpx.get(f"{url}/v1/chains/{credentials['chain']}/checkpoint", headers=auditor).text
        if name in note and int(note.splitlines()[1]) >= size:
            return note
        time.sleep(0.3)
    raise AssertionError("the verifier did not cosign")


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit_trail", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def free_port_pair() -> int:
    """A free port whose next one is free too: `up` serves the verifier on port + 1."""
    while True:
        port = free_port()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="embedded mode only")
def test_up_starts_everything_and_restarts_on_the_same_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port_pair()
    url = f"http://127.0.0.1:{port}"
    verifier_url = f"http://127.0.0.1:{port + 1}"

    process = start_up(data_dir, port)
    try:
        wait_ready(url, process)
        wait_ready(verifier_url, process)
        credentials_file = data_dir / "credentials.json"
        key_file = data_dir / "keys" / "log-ed25519.pem"
        assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        credentials = json.loads(credentials_file.read_text())
        # Both services are served with the guarded HTTP protocol (audit_trail.server).
        for base in (url, verifier_url):
            try:
                huge = httpx.get(f"{base}/healthz", headers={"X-Big": "a" * 100 * 1024})
            except httpx.TransportError:
                continue  # closed before the answer could be read: refused all the same
            assert huge.status_code == 431, base
        assert set(credentials) == {"api_url", "tenant", "chain", "keys"}
        assert set(credentials["keys"]) == {"admin", "producer", "auditor"}
        assert credentials["api_url"] == url
        producer = {"Authorization": f"Bearer {credentials['keys']['producer']}"}
        event = {"specversion": "1.0", "id": "e-1", "source": "urn:t", "type": "t.v1", "data": {}}
        appended = httpx.post(
            f"{url}/v1/chains/{credentials['chain']}/events",
            json=event,
            headers=producer | {"Content-Type": "application/cloudevents+json"},
        )
        assert appended.status_code == 201, appended.text
        # The verifier, beside the log, replays the chain and its cosignature is served.
        wait_cosigned(url, verifier_url, credentials, 1)
        # Both services serve /metrics to the bearer of the token `up` keeps (mode 0600).
        token_file = data_dir / "keys" / "metrics-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        scraper = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        for base, series in (
            (url, "audit_trail_group_commit_events_count"),
            (verifier_url, "audit_trail_http_requests_total"),
        ):
            assert httpx.get(f"{base}/metrics").status_code == 401
            scraped = httpx.get(f"{base}/metrics", headers=scraper)
            assert scraped.status_code == 200 and series in scraped.text, base
        verifier_key = httpx.get(f"{verifier_url}/v1/keys").json()["cosignature_verifier_key"]
        status = httpx.get(
            f"{verifier_url}/v1/chains/{credentials['chain']}",
            headers={"Authorization": f"Bearer {credentials['keys']['auditor']}"},
        ).json()
        assert status["verified_size"] == 1 and status["findings"] == []
        # A regulator's round trip: export over HTTP, verify offline with the published keys.
        bundle = tmp_path / "bundle.zip"
        log_key = httpx.get(f"{url}/v1/log/keys").json()["keys"][0]["verifier_key"]
        exported = run_cli(
            "export",
            credentials["chain"],
            "-o",
            str(bundle),
            "--url",
            url,
            "--api-key",
            credentials["keys"]["auditor"],
        )
        assert exported.returncode == 0, exported.stderr
        verified = run_cli(
            "verify-bundle", str(bundle), "--log-key", log_key, "--verifier-key", verifier_key
        )
        assert verified.returncode == 0, verified.stderr
        assert "OK attestation" in verified.stdout and "VERIFIED" in verified.stdout
    finally:
        output = stop(process)
    assert url in output and verifier_url in output
    verifier_key_file = data_dir / "keys" / "verifier-ed25519.pem"
    assert stat.S_IMODE(verifier_key_file.stat().st_mode) == 0o600

    original_key = key_file.read_bytes()
    process = start_up(data_dir, port)
    try:
        wait_ready(url, process)
        assert key_file.read_bytes() == original_key
        assert json.loads(credentials_file.read_text()) == credentials
        auditor = {"Authorization": f"Bearer {credentials['keys']['auditor']}"}
        chain = httpx.get(f"{url}/v1/chains/{credentials['chain']}", headers=auditor).json()
        assert chain["size"] == 1
        wait_ready(verifier_url, process)
        assert httpx.get(f"{verifier_url}/v1/keys").json()["cosignature_verifier_key"] == (
            verifier_key
        )
        producer = {"Authorization": f"Bearer {credentials['keys']['producer']}"}
        event = {"specversion": "1.0", "id": "e-2", "source": "urn:t", "type": "t.v1", "data": {}}
        appended = httpx.post(
            f"{url}/v1/chains/{credentials['chain']}/events",
            json=event,
            headers=producer | {"Content-Type": "application/cloudevents+json"},
        )
        assert appended.status_code == 201, appended.text
        # It resumes from what it remembers: the same witness, the next checkpoint.
        wait_cosigned(url, verifier_url, credentials, 2)
    finally:
        stop(process)


def up_command(data_dir: Path, port: int) -> list[str]:
    command = [sys.executable, "-m", "audit_trail", "up", "--data-dir", str(data_dir)]
    return [*command, *port_option(port)]


def start_up_in_a_terminal(data_dir: Path, port: int, stderr: Path) -> subprocess.Popen[bytes]:
    """`up` as started from a shell: the leader of its own process group, which a Ctrl-C in
    the terminal (or a crash of the whole group) signals at once: `up`, its verifier child and
    every command they run, but not PostgreSQL, which pg_ctl starts in a session of its own."""
    env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    with stderr.open("ab") as errors:
        return subprocess.Popen(
            up_command(data_dir, port),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )


def wait_healthy(port: int, process: subprocess.Popen[bytes], stderr: Path) -> None:
    """Until the decision_log and the verifier both answer /healthz."""
    deadline = time.monotonic() + 90
    for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"):
        while True:
            assert process.poll() is None, f"up exited early:\n{stderr.read_text()}"
            assert time.monotonic() < deadline, f"up did not become healthy:\n{stderr.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)


def postgres_of(data_dir: Path) -> list[psutil.Process]:
    """The running processes of the data folder's PostgreSQL (server and backends)."""
    pgdata = str(data_dir.resolve() / "postgres")
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and pgdata in process.cmdline():
                found.append(process)
        except psutil.Error:
            continue
    return found


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie: psutil counts a zombie as running, and a stopped server
    stays one until whatever adopted it (PID 1 of a container, which may be slow) reaps it."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_stopped(processes: list[psutil.Process], data_dir: Path) -> None:
    """Every process gone (or a zombie its parent has yet to reap), the server's too."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            assert process.status() == psutil.STATUS_ZOMBIE, process
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert postgres_of(data_dir) == []


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="embedded mode only")
def test_up_after_a_crash_stops_the_orphaned_postgres_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    data_dir, stderr = tmp_path / "data", tmp_path / "stderr.txt"
    port = free_port_pair()
    crashed = start_up_in_a_terminal(data_dir, port, stderr)
    wait_healthy(port, crashed, stderr)
    orphan = postgres_of(data_dir)
    assert orphan
    os.killpg(crashed.pid, signal.SIGKILL)  # up and its verifier, as a crash of the group
    crashed.wait()
    assert all(alive(process) for process in orphan)  # PostgreSQL outlives its owner

    stderr.write_bytes(b"")
    restarted = start_up_in_a_terminal(data_dir, port, stderr)
    try:
        wait_healthy(port, restarted, stderr)
        # The orphan was stopped and a server started afresh, not adopted.
        assert not any(alive(process) for process in orphan)
        assert f"left running by pid {crashed.pid} " in stderr.read_text()
        # While this `up` runs, another on the same data folder is refused, and names it.
        refused = subprocess.run(
            up_command(data_dir, free_port_pair()),
            env={k: v for k, v in os.environ.items() if "DATABASE_URL" not in k},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 1, refused.stderr
        assert f"in use by pid {restarted.pid} (" in refused.stderr
        assert " -m audit_trail up --data-dir " in refused.stderr
        assert "Traceback" not in refused.stderr
        started = [psutil.Process(restarted.pid), *postgres_of(data_dir)]
        started += psutil.Process(restarted.pid).children(recursive=True)
    finally:
        if restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGINT)  # Ctrl-C
        restarted.wait(timeout=60)
    assert restarted.returncode == 0, stderr.read_text()
    assert_all_stopped(started, data_dir)
    assert "Traceback" not in stderr.read_text()


def wait_for_child(process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if child.name() == name:
                    return
            except psutil.Error:
                continue
        time.sleep(0.01)
    raise AssertionError(f"up ran no {name}")


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="embedded mode only")
def test_up_after_a_crash_in_initdb_starts_and_sigterm_stops_everything(tmp_path: Path) -> None:
    data_dir, stderr = tmp_path / "data", tmp_path / "stderr.txt"
    port = free_port_pair()
    crashed = start_up_in_a_terminal(data_dir, port, stderr)
    wait_for_child(crashed, "initdb")
    time.sleep(0.3)  # well into it: PG_VERSION is among the first files initdb writes
    os.killpg(crashed.pid, signal.SIGKILL)
    crashed.wait()

    restarted = start_up_in_a_terminal(data_dir, port, stderr)
    try:
        wait_healthy(port, restarted, stderr)
        started = [psutil.Process(restarted.pid), *postgres_of(data_dir)]
        started += psutil.Process(restarted.pid).children(recursive=True)
    finally:
        if restarted.poll() is None:
            restarted.terminate()  # to `up` alone, as kill, systemd or docker stop send it
        restarted.wait(timeout=60)
    assert restarted.returncode == 0, stderr.read_text()
    assert_all_stopped(started, data_dir)
    assert "Traceback" not in stderr.read_text()


def serve_environment(database_url: str, **variables: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TRAIL_")}
    return kept | {"DATABASE_URL": database_url} | variables


def test_serve_names_every_setting_it_lacks_before_starting_a_worker(
    database_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "log.pem"
    key.write_text("not a key\n")
    result = subprocess.run(
        [sys.executable, "-m", "audit_trail", "serve", "--workers", "2", "--port", "0"],
        env=serve_environment(database_url, AUDIT_TRAIL_LOG_KEY_FILE=str(key)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    for name in ("AUDIT_TRAIL_KEK_FILE", "AUDIT_TRAIL_PSEUDONYM_KEY_FILE"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_fails_with_status_3_when_its_workers_cannot_start(
    database_url: str, tmp_path: Path
) -> None:
    """With several workers too: a process manager that restarts on failure must see one."""
    (tmp_path / "log.pem").write_text("not a key\n")
    (tmp_path / "pseudonym.key").write_bytes(os.urandom(32))
    files = {
        "AUDIT_TRAIL_LOG_KEY_FILE": str(tmp_path / "log.pem"),
        "AUDIT_TRAIL_KEK_FILE": str(tmp_path / "kek.json"),
        "AUDIT_TRAIL_PSEUDONYM_KEY_FILE": str(tmp_path / "pseudonym.key"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "audit_trail", "serve", "--workers", "2", "--port", "0"],
        env=serve_environment(database_url, **files),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "failed to start" in result.stderr
