"""What the guarded HTTP protocol (audit_trail.server) costs against stock uvicorn httptools.

    python -m bench.http_guard [--seconds 10] [--runs 3] [--clients 64]

A trivial ASGI app (it reads the body and answers 201 with a short JSON) runs in one uvicorn
process, with the stock httptools protocol and with `GuardedHttpToolsProtocol` in turn, under the
same load: single-event POSTs (bench.load's decision event, about 710 bytes) over keep-alive
connections, one request at a time on each, as the append benchmark sends them. Printed per
protocol: requests/s and the server's CPU per request (min / median / max of the runs), then
the ratios of the medians. The application does next to nothing, so every difference is the
protocol's; beside the decision_log's own CPU per append it is a smaller share still.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.load import event_template, generate_load, request_bytes
from bench.machine import describe, machine_line

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {"stock": "stock httptools", "guarded": "GuardedHttpToolsProtocol"}
ANSWER = b'{"accepted":true}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the request body to its end, answers 201."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ANSWER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


def serve(protocol: str, port: int) -> None:
    """Run `app` as the services are run (see audit_trail.cli), with the given protocol."""
    import uvicorn
    from audit_trail.server import GuardedHttpToolsProtocol

    uvicorn.run(
        "bench.http_guard:app",
        http=GuardedHttpToolsProtocol if protocol == "guarded" else "httptools",
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(protocol: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "bench.http_guard", "--serve", protocol, "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the {protocol} server exited with status {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"the {protocol} server did not start")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def measure(protocol: str, clients: int, seconds: float) -> dict[str, float]:
    """requests/s and the server's CPU µs per request, for one run of the load."""
    make_event = event_template()

    def make() -> tuple[bytes, int]:
        body = make_event()
        request = request_bytes(
            host="127.0.0.1",
            path="/v1/chains/decisions/events",
            key="bench",
            content_type="application/cloudevents+json",
            body=body,
        )
        return request, 1

    server, port = start_server(protocol)
    try:
        process = psutil.Process(server.pid)
        before = cpu_seconds(process)
        result = generate_load(
            host="127.0.0.1", port=port, connections=clients, seconds=seconds, make_request=make
        )
        used = cpu_seconds(process) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    if set(result.statuses) != {201}:
        raise RuntimeError(f"the {protocol} server answered {result.statuses}")
    return {
        "requests_per_s": result.requests / result.seconds,
        "cpu_us_per_request": used * 1e6 / max(1, result.requests),
    }


def spread(values: list[float], unit: str) -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low:,.0f} / {middle:,.0f} / {high:,.0f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--serve", choices=list(PROTOCOLS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    rows: dict[str, dict[str, list[float]]] = {
        protocol: {"requests_per_s": [], "cpu_us_per_request": []} for protocol in PROTOCOLS
    }
    for run in range(args.runs):
        # In turn within each run, so that drift in what else the host runs hits both alike.
        for protocol in PROTOCOLS:
            figures = measure(protocol, args.clients, args.seconds)
            for name, value in figures.items():
                rows[protocol][name].append(value)
            print(
                f"run {run + 1} {protocol:<7}: {figures['requests_per_s']:,.0f} requests/s, "
                f"server CPU {figures['cpu_us_per_request']:,.1f} µs per request",
                flush=True,
            )
    machine = describe("none (no database)")
    print("\n" + machine_line(machine))
    print(
        f"settings: {args.runs} runs x {args.seconds:.0f} s per protocol, {args.clients} "
        "keep-alive clients, one uvicorn process, single-event POSTs (bench.load's event)"
    )
    print("figure (min / median / max)")
    for protocol, label in PROTOCOLS.items():
        print(
            f"  {label:<25} {spread(rows[protocol]['requests_per_s'], 'requests/s'):<36} "
            f"server CPU {spread(rows[protocol]['cpu_us_per_request'], 'µs per request')}"
        )
    medians = {
        protocol: {name: statistics.median(values) for name, values in figures.items()}
        for protocol, figures in rows.items()
    }
    throughput = medians["guarded"]["requests_per_s"] / medians["stock"]["requests_per_s"]
    cpu = medians["guarded"]["cpu_us_per_request"] / medians["stock"]["cpu_us_per_request"]
    print(f"  guarded / stock (medians): requests/s {throughput:.3f}x, CPU per request {cpu:.3f}x")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"http_guard-{int(time.time())}.json").write_text(
        json.dumps({"machine": machine, "args": vars(args), "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
