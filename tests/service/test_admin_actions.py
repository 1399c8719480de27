"""Administrative actions land in the tenant's access chain (ISO/IEC 27001 A.8.15): keys
created, changed and revoked, chains created, retention and holds, witnesses trusted and no
longer trusted, by API key or on the command line; never with a secret, never without the
change, never a change without its record."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
from audit_trail import admin
from decision_log.decisions.admin_records import flush
from decision_log.witnesses import service as witnesses
from fastapi import FastAPI
from ledger.keys import SigningKey
from ledger.note import CosignatureSigner

from tests.service.conftest import TenantKeys
from tests.service.helpers import all_entries, headers, leaf_bytes

ADMIN_ACTION = "dev.audit-trail.admin-action.recorded.v1"


async def admin_records(client: httpx.AsyncClient, tenant: TenantKeys) -> list[dict[str, Any]]:
    """The admin-action records in the tenant's access chain (none before it exists)."""
    exists = await client.get("/v1/chains/access-log", headers=headers(tenant.auditor))
    if exists.status_code == 404:
        return []
    entries = await all_entries(client, tenant.auditor, "access-log")
    events = [orjson.loads(leaf_bytes(entry))["event"] for entry in entries]
    return [event for event in events if event["type"] == ADMIN_ACTION]


def key_id(api_key: str) -> str:
    return api_key.split("_")[1]


async def test_key_changes_are_in_the_access_chain_when_the_answer_comes(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    admin_headers = headers(tenant.admin)
    created = await client.post(
        "/v1/keys",
        json={"roles": ["auditor"], "chains": [tenant.chain], "label": "for the audit"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    new = created.json()
    changed = await client.patch(
        f"/v1/keys/{new['key_id']}",
        json={"expires_at": "2031-01-01T00:00:00Z"},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    revoked = await client.post(f"/v1/keys/{new['key_id']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200, revoked.text

    # No waiting: each answer came after its record was appended.
    records = [r for r in await admin_records(client, tenant) if r["data"]["actor"]["via"] == "api"]
    assert [(r["data"]["action"], r["data"]["target"]) for r in records] == [
        ("key.create", {"key_id": new["key_id"]}),
        ("key.change", {"key_id": new["key_id"]}),
        ("key.revoke", {"key_id": new["key_id"]}),
    ]
    for record in records:
        assert record["data"]["actor"] == {
            "via": "api",
            "key_id": key_id(tenant.admin),
            "roles": ["admin"],
        }
    assert records[0]["data"]["changes"] == {
        "roles": ["auditor"],
        "chains": [tenant.chain],
        "label": "for the audit",
        "expires_at": None,
    }
    assert records[1]["data"]["changes"] == {"expires_at": "2031-01-01T00:00:00+00:00"}
    # The secret shown once is nowhere in the chain.
    everything = b"".join(
        leaf_bytes(e) for e in await all_entries(client, tenant.auditor, "access-log")
    )
    assert new["api_key"].encode() not in everything
    assert new["api_key"].split("_", 2)[2].encode() not in everything


async def test_a_refused_change_leaves_no_record(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await flush(app.state.audit_trail)  # what making the tenant noted
    before = len(await admin_records(client, tenant))
    other = await client.post("/v1/keys", json={"roles": ["admin"]}, headers=headers(tenant.admin))
    limited = await client.post(
        "/v1/keys",
        json={"roles": ["admin"], "chains": [tenant.chain]},
        headers=headers(tenant.admin),
    )
    assert other.status_code == limited.status_code == 201
    limited_headers = headers(limited.json()["api_key"])
    # A key limited to a chain may not grant more than it holds, nor reach keys beyond it.
    beyond = await client.post(
        "/v1/keys", json={"roles": ["admin"], "chains": ["elsewhere"]}, headers=limited_headers
    )
    assert beyond.status_code == 403, beyond.text
    hidden = await client.post(f"/v1/keys/{other.json()['key_id']}/revoke", headers=limited_headers)
    assert hidden.status_code == 404, hidden.text
    records = await admin_records(client, tenant)
    assert len(records) == before + 2  # the two creations, not the refused changes


async def test_chains_retention_and_holds_are_recorded_with_their_reasons(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    admin_headers = headers(tenant.admin)
    made = await client.post(
        "/v1/chains", json={"chain": "triage", "description": "ER triage"}, headers=admin_headers
    )
    assert made.status_code == 201, made.text
    retention = await client.put(
        f"/v1/chains/{tenant.chain}/retention", json={"days": 400}, headers=admin_headers
    )
    assert retention.status_code == 200, retention.text
    hold = await client.post(
        f"/v1/chains/{tenant.chain}/legal-holds",
        json={"reason": "case 2026-117"},
        headers=admin_headers,
    )
    assert hold.status_code == 201, hold.text
    hold_id = hold.json()["id"]
    lifted = await client.post(
        f"/v1/chains/{tenant.chain}/legal-holds/{hold_id}/lift",
        json={"reason": "case closed"},
        headers=admin_headers,
    )
    assert lifted.status_code == 200, lifted.text

    records = [r["data"] for r in await admin_records(client, tenant)]
    by_api = [r for r in records if r["actor"]["via"] == "api"]
    assert [(r["action"], r["target"], r.get("reason")) for r in by_api] == [
        ("chain.create", {"chain": "triage"}, None),
        ("retention.set", {"chain": tenant.chain}, None),
        ("legal-hold.set", {"chain": tenant.chain, "hold": hold_id}, "case 2026-117"),
        ("legal-hold.lift", {"chain": tenant.chain, "hold": hold_id}, "case closed"),
    ]
    assert by_api[1]["changes"] == {"days": 400}


async def test_command_line_actions_are_appended_by_the_running_service(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    """The tenant fixture was made as the command line makes one (tenant, chain, three keys);
    the service appends those records on its own within a few seconds."""
    deadline = time.monotonic() + 15
    while len(records := await admin_records(client, tenant)) < 5:
        assert time.monotonic() < deadline, records
        await asyncio.sleep(0.2)
    actions = sorted(r["data"]["action"] for r in records[:5])
    assert actions == ["chain.create", "key.create", "key.create", "key.create", "tenant.create"]
    operator = records[0]["data"]["actor"]
    assert operator["via"] == "command line" and "@" in operator["operator"]


async def test_a_witness_trusted_is_recorded_for_every_tenant(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    cosigner = CosignatureSigner(name=f"witness.test/{tenant.tenant}", key=SigningKey.generate())

    async def register(connection: Any) -> None:
        await witnesses.register_witness(connection, verifier_key=cosigner.verifier_key)

    async def revoke(connection: Any) -> None:
        await witnesses.revoke_witness(connection, name=cosigner.name)

    await admin.in_transaction(database_url, register)
    await admin.in_transaction(database_url, revoke)
    await flush(app.state.audit_trail)
    records = [
        r["data"]
        for r in await admin_records(client, tenant)
        if r["data"]["target"].get("witness") == cosigner.name
    ]
    assert [r["action"] for r in records] == ["witness.register", "witness.revoke"]
    assert records[0]["changes"]["verifier_key"] == cosigner.verifier_key
