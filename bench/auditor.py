"""Auditor-views benchmark: search and one explained decision on a chain of a million events.

    python -m bench.auditor [--events 1000000] [--requests 300] [--database-url postgresql://...]

Fills one chain with decision events (recorded, and reviews, overrides, contests and outcomes
for some) through the real append API in batches, waits for the projector to build the read
model, has a witness cosign a checkpoint, then measures over real HTTP, one request at a time:
a filtered search page (several filter shapes, first and later pages) and one decision with its
timeline, explanation and evidence. Every measured request also appends its access record.
The EXPLAIN plan of every search shape is checked at this size to stay on an index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.ingest import ROOT, create_database, free_port, prepare, start_service
from bench.machine import describe, machine_line
from bench.postgres import postgres_server

BASE_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z
MODELS = [("credit-gbm", f"4.{minor}.0") for minor in range(4)] + [("credit-lr", "1.3.0")]
FEATURES = ("debt_ratio", "income", "tenure_months", "age_band", "open_accounts", "region")


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def decision_id(n: int) -> str:
    return f"d-{n:07d}"


def events(total: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Decisions in time order (one per 30 s), some followed by reviews and other events."""
    rng = random.Random(seed)
    produced = 0
    n = 0
    while produced < total:
        moment = BASE_TIME + n * 30
        subject = decision_id(n)
        name, version = MODELS[n % len(MODELS)]
        score = round(rng.random(), 4)
        decision = "approved" if score >= 0.5 else "referred" if score >= 0.45 else "declined"
        weights = sorted(((f, round(rng.uniform(-0.3, 0.3), 3)) for f in FEATURES), key=str)
        batch = [
            {
                "type": "dev.audit-trail.decision.recorded.v1",
                "time": iso(moment),
                "data": {
                    "system": {"name": "credit-scoring", "deployment": "eu-prod"},
                    "model": {
                        "name": name,
                        "version": version,
                        "digest": "sha256:" + "9f" * 32,
                    },
                    "policy": {
                        "id": "lending-eu",
                        "version": str(7 + n % 3),
                        "thresholds": {"approve": 0.5, "refer": 0.45},
                    },
                    "input": {"digest": "sha256:" + secrets.token_hex(32)},
                    "output": {"decision": decision, "score": score},
                    "explanation": {
                        "method": "shap",
                        "attributions": [{"feature": f, "weight": w} for f, w in weights],
                        "counterfactual": {"changes": {"debt_ratio": 0.25}, "decision": "approved"}
                        if decision != "approved"
                        else None,
                    },
                    "solely_automated": n % 20 != 0,
                    "legal_or_similar_effect": True,
                    "data_subject_ref": f"hmac:{n % 200_000:06d}",
                },
            }
        ]
        if n % 20 == 0:
            batch.append(
                {
                    "type": "dev.audit-trail.decision.reviewed.v1",
                    "time": iso(moment + 600),
                    "data": {"reviewer_ref": "hmac:r1", "role": "officer", "action": "confirmed"},
                }
            )
        if n % 100 == 0:
            batch.append(
                {
                    "type": "dev.audit-trail.decision.overridden.v1",
                    "time": iso(moment + 900),
                    "data": {
                        "reviewer_ref": "hmac:r2",
                        "role": "senior-officer",
                        "action": "overridden",
                        "new_decision": "approved" if decision != "approved" else "declined",
                        "reason": "Documents checked by hand.",
                    },
                }
            )
        if n % 200 == 0:
            batch.append(
                {
                    "type": "dev.audit-trail.decision.contested.v1",
                    "time": iso(moment + 86_400),
                    "data": {"grounds": "Income was misread."},
                }
            )
        if n % 10 == 0:
            batch.append(
                {
                    "type": "dev.audit-trail.outcome.observed.v1",
                    "time": iso(moment + 30 * 86_400),
                    "data": {"outcome": "repaid" if rng.random() < 0.9 else "defaulted"},
                }
            )
        for item in batch:
            if produced >= total:
                return
            item.update(
                specversion="1.0",
                id=f"{n}-{produced}",
                source="urn:bench:credit",
                subject=subject,
            )
            produced += 1
            yield item
        n += 1


async def fill(url: str, key: str, chain: str, total: int, batch: int, clients: int) -> float:
    source = events(total)
    lock = asyncio.Lock()
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            async with lock:
                body = [item for _, item in zip(range(batch), source, strict=False)]
            if not body:
                return
            payload = orjson.dumps(body)
            while True:
                response = await http.post(f"/v1/chains/{chain}/events", content=payload)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.2)
            if response.status_code != 201:
                raise RuntimeError(f"append failed: {response.status_code} {response.text[:300]}")

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return time.perf_counter() - began


async def wait_projected(database_url: str, chain: str) -> float:
    began = time.perf_counter()
    connection = await asyncpg.connect(database_url)
    try:
        while True:
            behind = await connection.fetchval(
                "SELECT c.size - coalesce(p.next_idx, 0) FROM chains c LEFT JOIN "
                "projection_positions p ON p.chain_id = c.id WHERE c.slug = $1",
                chain,
            )
            if behind == 0:
                await connection.execute("ANALYZE decisions")
                return time.perf_counter() - began
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


def search_shapes(rng: random.Random) -> dict[str, dict[str, Any]]:
    """Filter shapes an auditor uses, from broad to needle-in-a-haystack."""
    month = rng.randrange(1, 11)
    return {
        "no filter": {},
        "chain + model version": {"chain": "decisions", "model_version": "4.2.0"},
        "model + version + decision": {
            "model_name": "credit-gbm",
            "model_version": "4.1.0",
            "decision": "declined",
        },
        "policy version + time range": {
            "policy_version": "8",
            "decided_from": f"2026-{month:02d}-01T00:00:00Z",
            "decided_before": f"2026-{month + 1:02d}-01T00:00:00Z",
        },
        "score range": {"score_min": 0.9, "score_max": 0.95},
        "narrow score range": {"score_min": 0.4999, "score_max": 0.5001},
        "overridden": {"overridden": "true"},
        "contested + declined": {"contested": "true", "decision": "declined"},
        "data subject": {"data_subject_ref": f"hmac:{rng.randrange(200_000):06d}"},
        "referred, not reviewed": {"decision": "referred", "reviewed": "false"},
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(url: str, key: str, requests: int, decisions: int) -> dict[str, Any]:
    rng = random.Random(11)
    results: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for _ in range(20):  # warm the connection, caches and the access chain
            http.get("/v1/decisions", params={"limit": 50}).raise_for_status()
        for label in search_shapes(rng):
            samples: list[float] = []
            for number in range(requests):
                params = dict(search_shapes(rng)[label]) | {"limit": 50}
                began = time.perf_counter()
                response = http.get("/v1/decisions", params=params)
                response.raise_for_status()
                if number % 2 and response.json()["next_cursor"]:
                    params["cursor"] = response.json()["next_cursor"]
                    began = time.perf_counter()  # every other sample is a next page
                    http.get("/v1/decisions", params=params).raise_for_status()
                samples.append(time.perf_counter() - began)
            results["search: " + label] = samples
        views: list[float] = []
        pages: list[float] = []
        console = console_session(url, key)
        for _ in range(requests * 3):
            n = rng.randrange(decisions)
            if rng.random() < 0.3:
                n -= n % 200  # reviewed, overridden, contested and with an outcome
            began = time.perf_counter()
            response = http.get(f"/v1/chains/decisions/decisions/{decision_id(n)}")
            response.raise_for_status()
            views.append(time.perf_counter() - began)
            assert response.json()["explanation"]["text"]
            # The console's page of the same decision, in the same run: the same view, rendered.
            began = time.perf_counter()
            page = console.get(f"/console/chains/decisions/decisions/{decision_id(n)}")
            page.raise_for_status()
            pages.append(time.perf_counter() - began)
            assert "Verify in your browser" in page.text
        console.close()
        results["one decision, explained, with evidence"] = views
        results["one decision, console page"] = pages
    return {
        label: {
            "p50_ms": statistics.median(samples) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
            "n": len(samples),
        }
        for label, samples in results.items()
    }


def console_session(url: str, key: str) -> httpx.Client:
    """A client signed in to the console with the key (its session cookie kept)."""
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = client.post("/console/sign-in", data={"api_key": key, "csrf_token": token[1]})
    assert signed_in.status_code == 303, signed_in.text
    return client


async def explain_plans(database_url: str, tenant_id: int, chain_id: int) -> dict[str, str]:
    """EXPLAIN every search shape at full size; fail if one scans the table sequentially."""
    from datetime import datetime

    from decision_log.db import create_engine
    from decision_log.decisions import repository
    from sqlalchemy import text

    rng = random.Random(5)
    engine = create_engine(database_url, role=None, pool_size=1)
    plans: dict[str, str] = {}
    try:
        async with engine.connect() as connection:
            for label, shape in search_shapes(rng).items():
                equal = {k: v for k, v in shape.items() if k in repository.SEARCH_EQUALITY_COLUMNS}
                flags = {
                    k: v == "true" for k, v in shape.items() if k in repository.SEARCH_FLAG_COLUMNS
                }
                moments = {
                    k: datetime.fromisoformat(shape[k])
                    for k in ("decided_from", "decided_before")
                    if k in shape
                }
                sql, params = repository.search_statement(
                    tenant_id=tenant_id,
                    chain_ids=[chain_id] if "chain" in shape else None,
                    equal=equal,
                    flags=flags,
                    score_min=shape.get("score_min"),
                    score_max=shape.get("score_max"),
                    decided_from=moments.get("decided_from"),
                    decided_before=moments.get("decided_before"),
                    after=None,
                    limit=51,
                )
                rows = await connection.execute(text("EXPLAIN (FORMAT JSON) " + sql), params)
                plan = rows.scalar()
                plan = plan if isinstance(plan, list) else json.loads(plan)
                nodes = list(_nodes(plan[0]["Plan"]))
                kinds = [node["Node Type"] for node in nodes]
                if any(kind == "Seq Scan" for kind in kinds):
                    raise AssertionError(f"search '{label}' scans sequentially: {kinds}")
                indexes = sorted({n["Index Name"] for n in nodes if "Index Name" in n})
                plans[label] = " > ".join(kinds) + f" ({', '.join(indexes)})"
    finally:
        await engine.dispose()
    return plans


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


async def cosign_latest(database_url: str, url: str, tenant: str, chain: str) -> int:
    """Register a witness and cosign the chain's latest checkpoint, as a verifier would."""
    from audit_trail import admin
    from decision_log.witnesses import service as witnesses
    from ledger.keys import SigningKey
    from ledger.note import Checkpoint, CosignatureSigner

    cosigner = CosignatureSigner(name="bench.witness", key=SigningKey.generate())
    _, key = await admin.in_transaction(
        database_url,
        lambda c: witnesses.register_witness(c, verifier_key=cosigner.verifier_key),
    )
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        base = f"/v1/witness/chains/{tenant}/{chain}"
        note = (await http.get(f"{base}/checkpoint")).text
        body = note[: note.rfind("\n\n") + 1]
        size = Checkpoint.parse(body).size
        line = cosigner.sign(body, timestamp=int(time.time()))
        response = await http.post(f"{base}/cosignatures", json={"size": size, "signature": line})
        response.raise_for_status()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with postgres_server(args.database_url) as server_url:
        name = f"bench_auditor_{int(time.time())}"
        database_url = asyncio.run(create_database(server_url, name))
        key_file = Path(tempfile.mkdtemp(prefix="bench-key-")) / "log.pem"
        credentials = prepare(database_url, key_file)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        service = start_service(database_url, key_file, port, 1)
        try:
            fill_seconds = asyncio.run(
                fill(
                    url,
                    credentials["keys"]["producer"],
                    credentials["chain"],
                    args.events,
                    args.batch_size,
                    args.clients,
                )
            )
            print(f"filled {args.events:,} events in {fill_seconds:.0f} s", flush=True)
            lag = asyncio.run(wait_projected(database_url, credentials["chain"]))
            print(f"read model caught up {lag:.0f} s after the last append", flush=True)

            async def ids() -> tuple[int, int, int]:
                connection = await asyncpg.connect(database_url)
                try:
                    row = await connection.fetchrow(
                        "SELECT c.id, c.tenant_id, (SELECT count(*) FROM decisions) AS n "
                        "FROM chains c WHERE c.slug = $1",
                        credentials["chain"],
                    )
                    assert row is not None
                    return int(row["id"]), int(row["tenant_id"]), int(row["n"])
                finally:
                    await connection.close()

            chain_id, tenant_id, decisions = asyncio.run(ids())
            time.sleep(1.5)  # let the checkpointer sign the full chain
            cosigned = asyncio.run(
                cosign_latest(database_url, url, credentials["tenant"], credentials["chain"])
            )
            plans = asyncio.run(explain_plans(database_url, tenant_id, chain_id))
            figures = measure(url, credentials["keys"]["auditor"], args.requests, decisions)
        finally:
            service.terminate()
            service.wait(timeout=30)

    machine = describe(getattr(create_database, "version", "?"))
    print("\n" + machine_line(machine))
    print(
        f"chain: {args.events:,} events, {decisions:,} decisions; checkpoint {cosigned:,} "
        "cosigned by a witness; decision_log 1 worker; one request at a time over HTTP, "
        "each also appending its access record (durable commit)"
    )
    print("plans at this size (EXPLAIN, no sequential scans):")
    for label, plan in plans.items():
        print(f"  {label:<30} {plan}")
    print(f"{'figure':<48} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for label, figure in figures.items():
        print(f"  {label:<46} {figure['p50_ms']:8.1f} {figure['p99_ms']:8.1f} {figure['n']:6d}")
    ratio = (
        figures["one decision, console page"]["p99_ms"]
        / figures["one decision, explained, with evidence"]["p99_ms"]
    )
    print(f"console decision page p99 / API view p99: {ratio:.2f} (target <= 1.5)")
    worst = max(figures.items(), key=lambda item: item[1]["p99_ms"])
    print(f"worst p99: {worst[0]} {worst[1]['p99_ms']:.1f} ms (target < 50 ms)")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"auditor-{int(time.time())}.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "args": vars(args),
                "fill_seconds": fill_seconds,
                "projection_lag_seconds": lag,
                "decisions": decisions,
                "plans": plans,
                "figures": figures,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
