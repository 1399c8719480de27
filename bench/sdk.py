"""Producer SDK benchmark: one producer process sending decisions through ``AuditLog``, beside
the peer, plain httpx posting the same batches directly.

    python -m bench.sdk [--events 50000] [--runs 3] [--batch-size 500] [--database-url ...]

The decision_log runs alone under uvicorn on a fresh database (as ``bench.ingest`` starts it);
this process is the producer. For each client the bench reports how fast events are handed
over (the caller's side: time spent in ``decision()``), how fast they are delivered (until
``flush`` returns: every event appended and its receipt read) and the producer's own CPU time
per event, all of its threads included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from audit_trail_sdk import AuditLog

from bench.ingest import ROOT, create_database, fresh_service, spread
from bench.machine import describe, machine_line
from bench.postgres import postgres_server

MODEL = {"name": "credit-gbm", "version": "4.2.0"}
POLICY = {"id": "credit-policy", "version": "7", "thresholds": {"approve": 0.5}}


def decision_data(number: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "policy": POLICY,
        "input": {"features": {"income": 42000 + number, "ratio": 0.35, "age_band": "30-39"}},
        "output": {"decision": "declined", "score": 0.37},
    }


def measure_sdk(url: str, key: str, chain: str, events: int, batch_size: int) -> dict[str, float]:
    log = AuditLog(
        url=url,
        api_key=key,
        chain=chain,
        producer="bench-sdk",
        batch_max_events=batch_size,
        max_queue_events=max(events, 10_000),
        heartbeat_interval=0,
    )
    cpu_before, began = time.process_time(), time.perf_counter()
    for number in range(events):
        log.decision(decision_id=f"loan-{number}", **decision_data(number))
    handed = time.perf_counter() - began
    if not log.flush(600):
        raise RuntimeError("the SDK did not deliver within 600 s")
    delivered = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    if log.stats.delivered != events or log.stats.refused:
        raise RuntimeError(f"the SDK delivered {log.stats}")
    log.close(30)
    return {
        "handed_per_s": events / handed,
        "delivered_per_s": events / delivered,
        "cpu_us_per_event": cpu * 1e6 / events,
    }


def measure_peer(url: str, key: str, chain: str, events: int, batch_size: int) -> dict[str, float]:
    """The same events, built and posted in the same batches by plain httpx, one request at a
    time: what a producer does without the SDK (no queue, no thread, no retries)."""
    source = f"bench-peer/{uuid.uuid4().hex}"
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    endpoint = f"{url}/v1/chains/{chain}/events"
    cpu_before, began = time.process_time(), time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for start in range(0, events, batch_size):
            batch = [
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": source,
                    "type": "dev.audit-trail.decision.recorded.v1",
                    "subject": f"loan-{number}",
                    "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "datacontenttype": "application/json",
                    "data": decision_data(number),
                }
                for number in range(start, min(events, start + batch_size))
            ]
            body = json.dumps(batch, separators=(",", ":")).encode()
            response = http.post(endpoint, content=body, headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"the peer got {response.status_code}: {response.text}")
            response.json()
    delivered = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    return {
        "handed_per_s": events / delivered,
        "delivered_per_s": events / delivered,
        "cpu_us_per_event": cpu * 1e6 / events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"sdk": [], "peer": []}
    with postgres_server(args.database_url) as server_url:
        _, credentials, port, service = fresh_service(server_url, 1)
        url, key = f"http://127.0.0.1:{port}", credentials["keys"]["producer"]
        chain = credentials["chain"]
        try:
            for run in range(args.runs):
                sdk = measure_sdk(url, key, chain, args.events, args.batch_size)
                peer = measure_peer(url, key, chain, args.events, args.batch_size)
                rows["sdk"].append(sdk)
                rows["peer"].append(peer)
                print(
                    f"run {run + 1}: SDK handed {sdk['handed_per_s']:,.0f} ev/s, delivered "
                    f"{sdk['delivered_per_s']:,.0f} ev/s, {sdk['cpu_us_per_event']:,.0f} µs CPU "
                    f"per event; peer delivered {peer['delivered_per_s']:,.0f} ev/s, "
                    f"{peer['cpu_us_per_event']:,.0f} µs CPU per event",
                    flush=True,
                )
        finally:
            service.terminate()
            service.wait(timeout=30)

    machine = describe(getattr(create_database, "version", "?"))
    print("\n" + machine_line(machine))
    print(
        f"settings: {args.runs} runs x {args.events:,} decision events, batches of "
        f"{args.batch_size}, one producer process, decision_log with 1 worker"
    )
    print("figure (min / median / max)")
    figures = [
        ("SDK: handed over (decision() calls)", "sdk", "handed_per_s", "events/s"),
        ("SDK: delivered (until flush returns)", "sdk", "delivered_per_s", "events/s"),
        ("SDK: producer CPU per event", "sdk", "cpu_us_per_event", "µs"),
        ("peer: plain httpx, delivered", "peer", "delivered_per_s", "events/s"),
        ("peer: producer CPU per event", "peer", "cpu_us_per_event", "µs"),
    ]
    for label, client, name, unit in figures:
        print(f"  {label:<40} {spread([row[name] for row in rows[client]])} {unit}")
    ratio = statistics.median(r["delivered_per_s"] for r in rows["sdk"]) / statistics.median(
        r["delivered_per_s"] for r in rows["peer"]
    )
    print(f"  SDK vs peer, delivered (median)          {ratio:.2f}x")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"sdk-{int(time.time())}.json").write_text(
        json.dumps({"machine": machine, "args": vars(args), "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
