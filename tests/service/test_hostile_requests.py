"""What an attacker or a broken client sends to every kind of route gets a 4xx problem that names
the field, never a 500: NUL and bytes that are not UTF-8 in paths, queries and bodies, numbers
past every column's range, inverted ranges, bodies too large to read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.service.conftest import TenantKeys
from tests.service.helpers import append, decision_event, headers

BIG = str(2**63)  # one past PostgreSQL's bigint

# (method, path with {chain}, query or None, body or None, role, the parameter or pointer named)
HOSTILE: list[tuple[str, str, dict[str, str] | None, Any, str, str]] = [
    ("GET", "/v1/chains/a%00b", None, None, "auditor", "path"),
    ("GET", "/v1/chains/{chain}/decisions/d%00", None, None, "auditor", "path"),
    ("GET", "/v1/chains/{chain}/decisions/%ED%A0%80", None, None, "auditor", "path"),
    ("GET", "/v1/exports/exp_%00", None, None, "auditor", "path"),
    ("POST", "/v1/keys/a%00/revoke", None, None, "admin", "path"),
    ("GET", "/v1/decisions", {"model_name": "m\x00"}, None, "auditor", "model_name"),
    ("GET", "/v1/decisions", {"decision": "\udcff"}, None, "auditor", "decision"),
    ("GET", "/v1/decisions", {"data_subject_ref": "x" * 129}, None, "auditor", "data_subject_ref"),
    ("GET", "/v1/decisions", {"score_min": "NaN"}, None, "auditor", "score_min"),
    ("GET", "/v1/decisions", {"score_max": "Infinity"}, None, "auditor", "score_max"),
    ("GET", "/v1/decisions", {"score_min": "1e16"}, None, "auditor", "score_min"),
    (
        "GET",
        "/v1/decisions",
        {"decided_before": "0001-01-01T00:00:00+14:00"},
        None,
        "auditor",
        "decided_before",
    ),
    ("GET", "/v1/decisions", {"chain": "Not A Slug"}, None, "auditor", "chain"),
    ("GET", "/v1/chains/{chain}/entries", {"start": BIG}, None, "auditor", "start"),
    ("GET", "/v1/chains/{chain}/entries", {"start": "-1"}, None, "auditor", "start"),
    ("GET", "/v1/chains/{chain}/entries/" + BIG, None, None, "auditor", "index"),
    ("GET", "/v1/chains/{chain}/entries/-1", None, None, "auditor", "index"),
    ("GET", "/v1/chains/{chain}/entries/stream", {"end": BIG}, None, "auditor", "end"),
    (
        "GET",
        "/v1/chains/{chain}/entries/stream",
        {"start": "5", "end": "2"},
        None,
        "auditor",
        "start",
    ),
    ("GET", "/v1/chains/{chain}/proof/inclusion", {"index": BIG}, None, "auditor", "index"),
    ("GET", "/v1/chains/{chain}/proof/consistency", {"from": BIG}, None, "auditor", "from"),
    ("GET", "/v1/chains/Not%20A%20Slug", None, None, "auditor", "chain"),
    ("POST", "/v1/chains/{chain}/legal-holds", None, {"reason": "r\x00"}, "admin", "/reason"),
    ("POST", "/v1/keys", None, {"roles": ["auditor"], "label": "\x00"}, "admin", "/label"),
    ("POST", "/v1/keys", None, {"roles": ["auditor"], "surplus": 1}, "admin", "/surplus"),
    ("POST", "/v1/subjects/erase", None, {"subject": "s\x00", "reason": "r"}, "admin", "/subject"),
    (
        "POST",
        "/v1/chains/{chain}/exports",
        None,
        {"kind": "decisions", "decision_ids": ["ok", "d\x00"]},
        "auditor",
        "/decision_ids/1",
    ),
    (
        "POST",
        "/v1/chains/{chain}/exports",
        None,
        {"kind": "time", "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        "auditor",
        "/",
    ),
    (
        "POST",
        "/v1/chains/{chain}/exports",
        None,
        {"kind": "range", "start": 0, "end": 2**63},
        "auditor",
        "/end",
    ),
    ("PUT", "/v1/chains/{chain}/retention", None, {"days": 2147483648}, "admin", "/days"),
    ("PUT", "/v1/chains/{chain}/retention", None, {"days": 1000000000}, "admin", "/days"),
    (
        "POST",
        "/v1/chains/{chain}/dispose",
        None,
        {"before": "9999-12-31T23:59:59-14:00", "reason": "r"},
        "admin",
        "/before",
    ),
    (
        "POST",
        "/v1/keys",
        None,
        {"roles": ["auditor"], "expires_at": "2020-01-01T00:00:00Z"},
        "admin",
        "/expires_at",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "role", "named"),
    HOSTILE,
    ids=[f"{case[0]} {case[1]} {case[5]}" for case in HOSTILE],
)
async def test_hostile_input_is_a_problem_naming_the_field(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    method: str,
    path: str,
    query: dict[str, str] | None,
    body: Any,
    role: str,
    named: str,
) -> None:
    url = path.format(chain=tenant.chain)
    if query is not None:
        # Encoded by hand: httpx would refuse to send what a hostile client sends.
        url += "?" + "&".join(f"{name}={_percent(value)}" for name, value in query.items())
    response = await client.request(
        method,
        url,
        content=None if body is None else _json(body),
        headers=headers(getattr(tenant, role), {"Content-Type": "application/json"}),
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["request_id"] == response.headers["x-request-id"]
    if named.startswith("/"):
        assert problem["pointer"] == (named if named != "/" else problem["pointer"])
    else:
        assert problem.get("parameter") == named, problem


def _percent(value: str) -> str:
    return "".join(
        chr(byte) if chr(byte).isalnum() or chr(byte) in "-._:+" else f"%{byte:02X}"
        for byte in value.encode("utf-8", "surrogatepass")
    )


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


async def test_a_lone_surrogate_in_a_body_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.post(
        f"/v1/chains/{tenant.chain}/legal-holds",
        content=b'{"reason": "x\\ud800y"}',
        headers=headers(tenant.admin, {"Content-Type": "application/json"}),
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-json")


async def test_an_unauthenticated_huge_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(900):
            sent += 1
            yield b"x" * (1024 * 1024)

    declared = await client.post(
        f"/v1/chains/{tenant.chain}/exports",
        content=endless(),
        headers={"Content-Type": "application/json", "Content-Length": str(900 * 1024 * 1024)},
    )
    assert declared.status_code == 413
    assert sent <= 1, f"{sent} MiB were read before the refusal"

    sent = 0
    chunked = await client.post(
        f"/v1/chains/{tenant.chain}/exports",
        content=endless(),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert sent <= 2, f"{sent} MiB were read before the refusal"


async def test_every_answer_carries_a_request_id(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    appended = await append(client, tenant.producer, tenant.chain, decision_event())
    read = await client.get(f"/v1/chains/{tenant.chain}", headers=headers(tenant.auditor))
    refused = await client.get(f"/v1/chains/{tenant.chain}")
    health = await client.get("/healthz")
    ids = [r.headers["x-request-id"] for r in (appended, read, refused, health)]
    assert len(set(ids)) == 4
    assert refused.json()["request_id"] == refused.headers["x-request-id"]

    safe = await client.get("/healthz", headers={"X-Request-Id": "trace-42.a_b"})
    assert safe.headers["x-request-id"] == "trace-42.a_b"
    for unsafe in ("a b", "x" * 65, "<script>", "line\\nbreak"):
        answer = await client.get("/healthz", headers={"X-Request-Id": unsafe})
        assert answer.headers["x-request-id"] != unsafe
        assert len(answer.headers["x-request-id"]) == 16


async def test_other_methods_on_the_append_path_are_405(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.get(
        f"/v1/chains/{tenant.chain}/events", headers=headers(tenant.producer)
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_last_unlimited_admin_key_ends_only_by_itself(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    admin = headers(tenant.admin)
    own_id = tenant.admin.split("_")[1]
    second = (await client.post("/v1/keys", json={"roles": ["admin"]}, headers=admin)).json()
    limited = (
        await client.post(
            "/v1/keys", json={"roles": ["admin"], "chains": [tenant.chain]}, headers=admin
        )
    ).json()
    # With two unlimited admin keys, one may revoke the other.
    revoked = await client.post(f"/v1/keys/{second['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200
    # An admin key limited to chains does not even see an unlimited key, let alone end it.
    by_limited = headers(limited["api_key"])
    assert (await client.post(f"/v1/keys/{own_id}/revoke", headers=by_limited)).status_code == 404
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    refused = await client.patch(
        f"/v1/keys/{own_id}", json={"expires_at": soon}, headers=by_limited
    )
    assert refused.status_code == 404
    assert (await client.get("/v1/keys", headers=admin)).status_code == 200
    # The last unlimited admin key may end itself.
    assert (await client.post(f"/v1/keys/{own_id}/revoke", headers=admin)).status_code == 200


async def test_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    for path, allowed in (("/v1/keys", "GET, POST"), (f"/v1/chains/{tenant.chain}", "GET")):
        response = await client.request("DELETE", path, headers=headers(tenant.admin))
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
