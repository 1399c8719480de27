"""Bad input: a 4xx problem naming the problem, nothing written, the chain still valid."""

from __future__ import annotations

import json

import httpx
import orjson
import pytest

from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import BATCH, STRUCTURED, chain_size, decision_event, headers

VALID = orjson.dumps(decision_event()).decode()


def without(name: str) -> bytes:
    event = decision_event()
    del event[name]
    return orjson.dumps(event)


def deep(levels: int) -> bytes:
    event = decision_event()
    nested: object = 1
    for _ in range(levels):
        nested = {"n": nested}
    event["data"] = nested
    return orjson.dumps(event)


BAD_BODIES = [
    ("malformed json", b'{"specversion": "1.0",', STRUCTURED, 400, None),
    ("duplicate keys", VALID[:-1].encode() + b', "id": "again"}', STRUCTURED, 400, None),
    ("nan", VALID.replace('"score":0.37', '"score":NaN').encode(), STRUCTURED, 400, None),
    ("infinity", VALID.replace('"score":0.37', '"score":Infinity').encode(), STRUCTURED, 400, None),
    ("integer beyond 2^53", VALID.replace("42000", str(2**53)).encode(), STRUCTURED, 400, None),
    ("lone surrogate", VALID.replace("Zo", "Z\\ud800o").encode(), STRUCTURED, 400, None),
    ("missing specversion", without("specversion"), STRUCTURED, 400, "/specversion"),
    ("missing id", without("id"), STRUCTURED, 400, "/id"),
    ("missing source", without("source"), STRUCTURED, 400, "/source"),
    ("missing type", without("type"), STRUCTURED, 400, "/type"),
    (
        "wrong specversion",
        orjson.dumps(decision_event(specversion="0.3")),
        STRUCTURED,
        400,
        "/specversion",
    ),
    ("empty id", orjson.dumps(decision_event(id="")), STRUCTURED, 400, "/id"),
    ("bad time", orjson.dumps(decision_event(time="yesterday")), STRUCTURED, 400, "/time"),
    (
        "bad attribute name",
        orjson.dumps(decision_event(Bad_Name="x")),
        STRUCTURED,
        400,
        "/Bad_Name",
    ),
    ("object attribute", orjson.dumps(decision_event(ext={"a": 1})), STRUCTURED, 400, "/ext"),
    (
        "data and data_base64",
        orjson.dumps(decision_event(data_base64="AA==")),
        STRUCTURED,
        400,
        "/data_base64",
    ),
    ("not an object", b"[1, 2]", STRUCTURED, 400, ""),
    ("deep nesting", deep(100), STRUCTURED, 400, None),
    ("empty batch", b"[]", BATCH, 400, ""),
    ("batch not array", orjson.dumps(decision_event()), BATCH, 400, ""),
    (
        "batch with a bad event",
        orjson.dumps([decision_event(), decision_event(id=7)]),
        BATCH,
        400,
        "/1/id",
    ),
    ("plain json", orjson.dumps(decision_event()), {"Content-Type": "application/json"}, 415, None),
    ("no content type", orjson.dumps(decision_event()), {}, 415, None),
    (
        "oversized event",
        orjson.dumps(decision_event(type="com.example.other.v1", data={"x": "a" * 300_000})),
        STRUCTURED,
        413,
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "content", "status", "pointer"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
async def test_bad_body_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    body: bytes,
    content: dict[str, str],
    status: int,
    pointer: str | None,
) -> None:
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events", content=body, headers=headers(tenant.producer, content)
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if pointer is not None:
        assert problem["pointer"] == pointer
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0
    # The chain is still good: the next valid event lands at index 0.
    ok = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=VALID,
        headers=headers(tenant.producer, STRUCTURED),
    )
    assert ok.status_code == 201 and ok.json()["index"] == 0


async def test_duplicate_key_names_the_key(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    body = VALID[:-1] + ', "id": "again"}'
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=body,
        headers=headers(tenant.producer, STRUCTURED),
    )
    assert "duplicate" in response.json()["detail"].lower()
    assert response.json()["pointer"] == "/id"


async def test_oversized_body_is_refused_before_reading_it(
    client: httpx.AsyncClient, tenant: TenantKeys, app: object
) -> None:
    events = [decision_event(data={"x": "a" * 100_000}) for _ in range(100)]
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=orjson.dumps(events),
        headers=headers(tenant.producer, BATCH),
    )
    assert response.status_code == 413
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


async def test_repeated_key_in_a_batch(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    event = decision_event()
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=json.dumps([event, decision_event(), event]),
        headers=headers(tenant.producer, BATCH),
    )
    assert response.status_code == 400
    assert response.json()["pointer"] == "/2/id"
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


async def test_unknown_chain_and_other_tenants_chain_look_the_same(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: object
) -> None:
    other = await make_tenant(database_url, signer, chain="secret-system")  # type: ignore[arg-type]
    body = orjson.dumps(decision_event())
    missing = await client.post(
        "/v1/chains/no-such-chain/events",
        content=body,
        headers=headers(tenant.producer, STRUCTURED),
    )
    foreign = await client.post(
        "/v1/chains/secret-system/events",
        content=body,
        headers=headers(tenant.producer, STRUCTURED),
    )
    assert missing.status_code == foreign.status_code == 404
    strip = lambda p: {k: v for k, v in p.items() if k not in ("detail", "request_id")}  # noqa: E731
    assert strip(missing.json()) == strip(foreign.json())
    for path in ("", "/checkpoint", "/entries", "/entries/0", "/proof/inclusion?index=0"):
        read = await client.get(f"/v1/chains/secret-system{path}", headers=headers(tenant.auditor))
        assert read.status_code == 404, path
    assert await chain_size(client, other.auditor, "secret-system") == 0
