"""Throughput of the core's hot paths against the obvious alternatives.

Run from the project root: .venv/bin/python -m bench.core
It prints docs/s or leaves/s for each path, beside rfc8785, json and orjson.
"""

from __future__ import annotations

import hashlib
import json
import timeit
from collections.abc import Callable
from typing import Any

import orjson
import rfc8785
from ledger.canonical import canonicalize, parse_json
from ledger.merkle import MerkleFrontier, root_hash

CLOUD_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "7f1c2a9e-4b3d-4e8a-9c6f-2d1e0b5a7c3f",
    "source": "https://credit.example.com/models/scoring",
    "type": "com.example.credit.decision.made",
    "subject": "dec-2024-000123456",
    "time": "2024-05-17T09:31:27.123456Z",
    "datacontenttype": "application/json",
    "data": {
        "model": {"name": "credit-risk", "version": "3.2.1"},
        "policy": {"id": "pol-17", "threshold": 0.72},
        "inputs": {"income": 52000, "age_band": "35-44", "loans": 2, "requested": 15000.5},
        "output": {"decision": "approve", "score": 0.8134, "limit": 12000},
        "factors": [{"name": "income", "weight": 0.41}, {"name": "history", "weight": -0.12}],
        "latency_ms": 37,
        "reviewed": False,
        "note": None,
    },
}
# The same event where one double is integral (100.0), which the fast path must rewrite.
WITH_INTEGRAL_DOUBLE = {**CLOUD_EVENT, "data": {**CLOUD_EVENT["data"], "amount": 100.0}}


def _no_duplicates(members: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(members)
    if len(obj) != len(members):
        raise ValueError("duplicate key")
    return obj


def rate(function: Callable[[], object], seconds: float = 1.0) -> float:
    number = max(1, int(seconds / min(timeit.repeat(function, number=1, repeat=5))))
    best = min(timeit.repeat(function, number=number, repeat=5))
    return number / best


def main() -> None:
    text = orjson.dumps(CLOUD_EVENT)
    canonical = canonicalize(CLOUD_EVENT)
    assert canonical == rfc8785.dumps(CLOUD_EVENT)
    assert canonicalize(WITH_INTEGRAL_DOUBLE) == rfc8785.dumps(WITH_INTEGRAL_DOUBLE)
    print(f"CloudEvent: {len(canonical)} canonical bytes\n")
    rows = [
        ("canonicalize (ledger)", lambda: canonicalize(CLOUD_EVENT)),
        ("canonicalize, integral double", lambda: canonicalize(WITH_INTEGRAL_DOUBLE)),
        ("rfc8785.dumps", lambda: rfc8785.dumps(CLOUD_EVENT)),
        (
            "orjson.dumps sorted (not JCS)",
            lambda: orjson.dumps(CLOUD_EVENT, option=orjson.OPT_SORT_KEYS),
        ),
        ("parse_json bytes (ledger)", lambda: parse_json(text)),
        ("parse_json str (ledger)", lambda: parse_json(text.decode())),
        ("json.loads (no checks)", lambda: json.loads(text)),
        ("json.loads + duplicate hook", lambda: json.loads(text, object_pairs_hook=_no_duplicates)),
        ("orjson.loads (no checks)", lambda: orjson.loads(text)),
    ]
    for name, function in rows:
        print(f"{name:32} {rate(function):>12,.0f} docs/s")
    leaves = [hashlib.sha256(index.to_bytes(8, "big")).digest() for index in range(1_000_000)]
    print()
    merkle_rows = [
        ("root_hash, 10^6 leaves", len(leaves), lambda: root_hash(leaves)),
        ("MerkleFrontier.extend, 10^5", 100_000, lambda: MerkleFrontier().extend(leaves[:100_000])),
        (
            "one SHA-256 node hash (bound)",
            1,
            lambda: hashlib.sha256(b"\x01" + leaves[0] + leaves[1]),
        ),
    ]
    for name, count, function in merkle_rows:
        print(f"{name:32} {count * rate(function, 3):>12,.0f} leaves/s")


if __name__ == "__main__":
    main()
