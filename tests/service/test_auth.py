"""API keys: roles, chain limits, expiry and revocation, and what needs no key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from tests.service.conftest import TenantKeys
from tests.service.helpers import STRUCTURED, append, decision_event, headers


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer nonsense", "Basic abc", "Bearer atk_0011223344556677_wrongsecret"],
)
async def test_missing_or_invalid_key_is_401(
    client: httpx.AsyncClient, tenant: TenantKeys, authorization: str | None
) -> None:
    request_headers = dict(STRUCTURED)
    if authorization:
        request_headers["Authorization"] = authorization
    for method, path in [
        ("POST", f"/v1/chains/{tenant.chain}/events"),
        ("GET", f"/v1/chains/{tenant.chain}"),
        ("GET", "/v1/chains"),
        ("GET", "/v1/keys"),
    ]:
        response = await client.request(
            method, path, content=orjson.dumps(decision_event()), headers=request_headers
        )
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_public_endpoints_need_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    keys = (await client.get("/v1/log/keys")).json()
    assert keys["keys"][0]["verifier_key"].startswith(keys["origin"] + "+")


async def test_roles_are_enforced(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    for key in (tenant.auditor, tenant.admin):
        assert (await append(client, key, tenant.chain, decision_event())).status_code == 403
    read = await client.get(f"/v1/chains/{tenant.chain}/entries", headers=headers(tenant.producer))
    assert read.status_code == 403
    keys = await client.get("/v1/keys", headers=headers(tenant.auditor))
    assert keys.status_code == 403


async def admin_creates_key(
    client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, object]
) -> dict[str, object]:
    response = await client.post("/v1/keys", json=body, headers=headers(tenant.admin))
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def test_key_limited_to_a_chain_cannot_see_others(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    made = await client.post("/v1/chains", json={"chain": "triage"}, headers=headers(tenant.admin))
    assert made.status_code == 201
    limited = await admin_creates_key(
        client, tenant, {"roles": ["producer", "auditor"], "chains": ["triage"]}
    )
    key = str(limited["api_key"])
    assert (await append(client, key, "triage", decision_event())).status_code == 201
    assert (await append(client, key, tenant.chain, decision_event())).status_code == 404
    listed = (await client.get("/v1/chains", headers=headers(key))).json()
    assert [c["chain"] for c in listed["chains"]] == ["triage"]


async def test_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    created = await admin_creates_key(client, tenant, {"roles": ["producer"], "label": "ci"})
    key = str(created["api_key"])
    assert (await append(client, key, tenant.chain, decision_event())).status_code == 201
    revoked = await client.post(
        f"/v1/keys/{created['key_id']}/revoke", headers=headers(tenant.admin)
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = await append(client, key, tenant.chain, decision_event())
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


async def test_expired_key_is_refused(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    created = await admin_creates_key(client, tenant, {"roles": ["producer"]})
    key = str(created["api_key"])
    assert (await append(client, key, tenant.chain, decision_event())).status_code == 201
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    updated = await client.patch(
        f"/v1/keys/{created['key_id']}", json={"expires_at": past}, headers=headers(tenant.admin)
    )
    assert updated.status_code == 200
    refused = await append(client, key, tenant.chain, decision_event())
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]


async def test_keys_are_listed_without_secrets(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    listed = await client.get("/v1/keys", headers=headers(tenant.admin))
    assert listed.status_code == 200
    body = listed.text
    assert len(listed.json()) == 3
    for secret in (tenant.admin, tenant.producer, tenant.auditor):
        assert secret not in body
        assert secret.split("_", 2)[2] not in body


async def test_other_tenants_keys_cannot_be_revoked(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: object
) -> None:
    from tests.service.conftest import make_tenant

    other = await make_tenant(database_url, signer)  # type: ignore[arg-type]
    theirs = (await client.get("/v1/keys", headers=headers(other.admin))).json()[0]["key_id"]
    response = await client.post(f"/v1/keys/{theirs}/revoke", headers=headers(tenant.admin))
    assert response.status_code == 404
    still = await client.get("/v1/keys", headers=headers(other.admin))
    assert still.status_code == 200
