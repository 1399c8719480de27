"""A key never grants more than it has: an admin key limited to chains manages only keys limited
to some of its own chains, creates only such keys with roles it holds, and erases only data
subjects whose records all lie in its chains. A matrix of caller scope x target key x action,
against the running service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.service.conftest import TenantKeys
from tests.service.helpers import append, decision_event, headers

OTHER = "other-system"


async def create(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/keys", json=body, headers=headers(key))


@pytest.fixture
async def scene(client: httpx.AsyncClient, tenant: TenantKeys) -> dict[str, Any]:
    """Two chains; an admin key limited to the first; one target key of every scope."""
    admin = tenant.admin
    assert (
        await client.post("/v1/chains", json={"chain": OTHER}, headers=headers(admin))
    ).status_code == 201
    limited = (
        await create(client, admin, {"roles": ["admin", "auditor"], "chains": [tenant.chain]})
    ).json()
    targets = {}
    for name, chains in (
        ("unlimited", None),
        ("own chain", [tenant.chain]),
        ("other chain", [OTHER]),
        ("both chains", [tenant.chain, OTHER]),
    ):
        body: dict[str, Any] = {"roles": ["producer"]}
        if chains is not None:
            body["chains"] = chains
        targets[name] = (await create(client, admin, body)).json()["key_id"]
    return {"limited": limited["api_key"], "targets": targets}


# (target, may the chain-limited admin list, revoke and expire it)
MATRIX = [
    ("unlimited", False),
    ("own chain", True),
    ("other chain", False),
    ("both chains", False),
]


@pytest.mark.parametrize(("target", "allowed"), MATRIX, ids=[row[0] for row in MATRIX])
@pytest.mark.parametrize("caller", ["unlimited admin", "chain-limited admin"])
async def test_scope_of_listing_revoking_and_expiring(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    scene: dict[str, Any],
    target: str,
    allowed: bool,
    caller: str,
) -> None:
    key = tenant.admin if caller == "unlimited admin" else scene["limited"]
    may = allowed or caller == "unlimited admin"
    key_id = scene["targets"][target]
    listed = {k["key_id"] for k in (await client.get("/v1/keys", headers=headers(key))).json()}
    assert (key_id in listed) == may
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    expired = await client.patch(
        f"/v1/keys/{key_id}", json={"expires_at": soon}, headers=headers(key)
    )
    assert expired.status_code == (200 if may else 404), expired.text
    revoked = await client.post(f"/v1/keys/{key_id}/revoke", headers=headers(key))
    assert revoked.status_code == (200 if may else 404), revoked.text


CREATIONS = [
    ({"roles": ["auditor"], "chains": ["credit"]}, 201),
    ({"roles": ["admin"], "chains": ["credit"]}, 201),
    ({"roles": ["auditor"]}, 403),  # limited to no chain
    ({"roles": ["auditor"], "chains": [OTHER]}, 403),
    ({"roles": ["auditor"], "chains": ["credit", OTHER]}, 403),
    ({"roles": ["producer"], "chains": ["credit"]}, 403),  # a role it does not hold
    ({"roles": ["personal-data", "auditor"], "chains": ["credit"]}, 403),
]


@pytest.mark.parametrize(("body", "status"), CREATIONS)
async def test_a_chain_limited_admin_creates_only_what_it_holds(
    client: httpx.AsyncClient, scene: dict[str, Any], body: dict[str, Any], status: int
) -> None:
    response = await create(client, scene["limited"], body)
    assert response.status_code == status, response.text
    if status == 201:
        assert set(response.json()["chains"]) <= {"credit"}


async def test_a_chain_limited_admin_erases_only_subjects_within_its_chains(
    client: httpx.AsyncClient, tenant: TenantKeys, scene: dict[str, Any]
) -> None:
    for chain, subject in ((tenant.chain, "only-here"), (OTHER, "also-there")):
        event = decision_event(datasubject=subject, personaldata="/features/name")
        assert (await append(client, tenant.producer, chain, event)).status_code == 201
    event = decision_event(datasubject="also-there", personaldata="/features/name")
    assert (await append(client, tenant.producer, tenant.chain, event)).status_code == 201
    limited = headers(scene["limited"])
    for subject, status in (("also-there", 403), ("only-here", 200)):
        erased = await client.post(
            "/v1/subjects/erase",
            json={"subject": subject, "reason": "GDPR Art. 17 request", "override_reason": "t"},
            headers=limited,
        )
        assert erased.status_code == status, erased.text
    other_retention = await client.put(
        f"/v1/chains/{OTHER}/retention", json={"days": 400}, headers=limited
    )
    assert other_retention.status_code == 404
