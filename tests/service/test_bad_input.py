"""Bad input: a 4xx problem naming the problem, nothing written, the chain still valid."""

from __future__ import annotations

import base64
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
    # Binary mode (any other content type, or none): the attributes are ce-* headers.
    ("plain json", orjson.dumps(decision_event()), {"Content-Type": "application/json"}, 400, None),
    ("no content type", orjson.dumps(decision_event()), {}, 400, None),
    (
        "another event format",
        VALID.encode(),
        {"Content-Type": "application/cloudevents+avro"},
        415,
        None,
    ),
    (
        "another batch format",
        VALID.encode(),
        {"Content-Type": "application/cloudevents-batch+protobuf"},
        415,
        None,
    ),
    ("NUL in id", orjson.dumps(decision_event(id="a\u0000b")), STRUCTURED, 400, "/id"),
    (
        "NUL in source",
        orjson.dumps(decision_event(source="urn:\u0000")),
        STRUCTURED,
        400,
        "/source",
    ),
    ("NUL in type", orjson.dumps(decision_event(type="t\u0000.v1")), STRUCTURED, 400, "/type"),
    (
        "NUL in subject",
        orjson.dumps(decision_event(subject="d\u0000")),
        STRUCTURED,
        400,
        "/subject",
    ),
    ("8 KB id", orjson.dumps(decision_event(id="i" * 8192)), STRUCTURED, 400, "/id"),
    ("8 KB source", orjson.dumps(decision_event(source="s" * 8192)), STRUCTURED, 400, "/source"),
    ("8 KB subject", orjson.dumps(decision_event(subject="d" * 8192)), STRUCTURED, 400, "/subject"),
    ("id of 201 characters", orjson.dumps(decision_event(id="é" * 201)), STRUCTURED, 400, "/id"),
    (
        "time past year 9999 in UTC",
        orjson.dumps(decision_event(time="9999-12-31T23:59:59-14:00")),
        STRUCTURED,
        400,
        "/time",
    ),
    (
        "time before year 1 in UTC",
        orjson.dumps(decision_event(time="0001-01-01T00:00:00+14:00")),
        STRUCTURED,
        400,
        "/time",
    ),
    (
        "time with month 13",
        orjson.dumps(decision_event(time="2026-13-01T00:00:00Z")),
        STRUCTURED,
        400,
        "/time",
    ),
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


@pytest.mark.parametrize(
    ("attribute", "length"), [("id", 200), ("source", 300), ("type", 100), ("subject", 200)]
)
async def test_attributes_up_to_their_documented_length_are_kept(
    client: httpx.AsyncClient, tenant: TenantKeys, attribute: str, length: int
) -> None:
    """The longest attribute the limits allow lands, even in 4-byte characters."""
    event = decision_event(type="com.example.other.v1")
    event[attribute] = "😀" * length
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=orjson.dumps(event),
        headers=headers(tenant.producer, STRUCTURED),
    )
    assert response.status_code == 201, response.text


async def test_nul_inside_data_is_kept_byte_exact(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    """NUL inside data is stored: the leaf is canonical JSON, which escapes it (docs/api.md)."""
    event = decision_event(
        data={
            "model": {"name": "m\u0000", "version": "1"},
            "output": {"decision": "declined"},
            "note": "a\u0000",
        }
    )
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=orjson.dumps(event),
        headers=headers(tenant.producer, STRUCTURED),
    )
    assert response.status_code == 201, response.text
    entry = await client.get(
        f"/v1/chains/{tenant.chain}/entries/0", headers=headers(tenant.auditor)
    )
    leaf = base64.b64decode(entry.json()["leaf"])
    assert b"\x00" not in leaf and b'"note":"a\\u0000"' in leaf
    assert orjson.loads(leaf)["event"]["data"]["model"]["name"] == "m\u0000"
