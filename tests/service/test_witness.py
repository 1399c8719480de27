"""Witnesses: read every chain, post cosignatures the log checks, and nothing else."""

from __future__ import annotations

import base64
import struct

import httpx
import orjson
from audit_trail import admin
from decision_log.witnesses import service as witnesses
from ledger.keys import SigningKey
from ledger.leaf import LEAF_FRAMES
from ledger.note import (
    Checkpoint,
    CosignatureSigner,
    NoteVerifier,
    open_note,
    verify_cosignature,
)

from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import (
    all_entries,
    append,
    decision_event,
    headers,
    wait_for_checkpoint,
)

# The frame as README states it, written out here rather than taken from the code under test:
# a big-endian unsigned 64-bit index, a big-endian unsigned 32-bit length, then the leaf.
PUBLISHED_FRAME_HEADER = struct.Struct(">QI")


async def register(database_url: str, name: str) -> tuple[CosignatureSigner, str]:
    signer = CosignatureSigner(name=name, key=SigningKey.generate())

    async def action(connection: object) -> str:
        _, api_key = await witnesses.register_witness(
            connection,  # type: ignore[arg-type]
            verifier_key=signer.verifier_key,
        )
        return api_key

    return signer, await admin.in_transaction(database_url, action)  # type: ignore[arg-type]


async def test_witness_cosigns_a_checkpoint_and_the_log_serves_it(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    cosigner, key = await register(database_url, "witness.test/a-" + tenant.tenant)
    events = [decision_event() for _ in range(6)]
    await append(client, tenant.producer, tenant.chain, events, batch=True)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=6)

    listed = (await client.get("/v1/witness/chains", headers=headers(key))).json()
    assert any(
        c["tenant"] == tenant.tenant and c["chain"] == tenant.chain for c in listed["chains"]
    )
    base = f"/v1/witness/chains/{tenant.tenant}/{tenant.chain}"
    note = (await client.get(f"{base}/checkpoint", headers=headers(key))).text
    body = note[: note.rfind("\n\n") + 1]
    assert Checkpoint.parse(body).size == 6
    line = cosigner.sign(body, timestamp=1_790_000_000)

    posted = await client.post(
        f"{base}/cosignatures", json={"size": 6, "signature": line}, headers=headers(key)
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["stored"] is True
    again = await client.post(
        f"{base}/cosignatures", json={"size": 6, "signature": line}, headers=headers(key)
    )
    assert again.json()["stored"] is False

    served = (
        await client.get(f"/v1/chains/{tenant.chain}/checkpoint", headers=headers(tenant.auditor))
    ).text
    log_key = (await client.get("/v1/log/keys")).json()["keys"][0]["verifier_key"]
    opened = open_note(served, [NoteVerifier.from_verifier_key(log_key), cosigner.verifier])
    assert len(opened.verified) == 2
    cosignature = next(s for s in opened.verified if s.name == cosigner.name)
    assert verify_cosignature(opened.text, cosignature, cosigner.verifier) == 1_790_000_000


async def test_forged_or_misplaced_cosignatures_are_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    cosigner, key = await register(database_url, "witness.test/b-" + tenant.tenant)
    await append(client, tenant.producer, tenant.chain, [decision_event()], batch=True)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=1)
    base = f"/v1/witness/chains/{tenant.tenant}/{tenant.chain}"
    note = (await client.get(f"{base}/checkpoint", headers=headers(key))).text
    body = note[: note.rfind("\n\n") + 1]

    impostor = CosignatureSigner(name=cosigner.name, key=SigningKey.generate())
    other_body = Checkpoint.parse(body)
    forged_tree = Checkpoint(
        origin=other_body.origin, size=other_body.size, root_hash=bytes(32)
    ).to_text()
    cases = {
        "signed by another key": (1, impostor.sign(body, timestamp=1)),
        "over another tree": (1, cosigner.sign(forged_tree, timestamp=1)),
        "for the size-0 checkpoint": (0, cosigner.sign(body, timestamp=1)),
        "not a signature line": (1, "hello"),
    }
    for name, (size, line) in cases.items():
        response = await client.post(
            f"{base}/cosignatures", json={"size": size, "signature": line}, headers=headers(key)
        )
        assert response.status_code == 400, name
        assert response.headers["content-type"] == "application/problem+json"
    missing = await client.post(
        f"{base}/cosignatures",
        json={"size": 99, "signature": cosigner.sign(body, timestamp=1)},
        headers=headers(key),
    )
    assert missing.status_code == 404
    served = (
        await client.get(f"/v1/chains/{tenant.chain}/checkpoint", headers=headers(tenant.auditor))
    ).text
    assert cosigner.name not in served


async def test_witness_keys_do_only_witness_things(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    _, key = await register(database_url, "witness.test/c-" + tenant.tenant)
    assert (await append(client, key, tenant.chain, decision_event())).status_code == 403
    assert (await client.get("/v1/chains", headers=headers(key))).status_code == 403
    assert (await client.get("/v1/keys", headers=headers(key))).status_code == 403
    for tenant_key in (tenant.auditor, tenant.admin, tenant.producer):
        response = await client.get("/v1/witness/chains", headers=headers(tenant_key))
        assert response.status_code == 403


async def test_revoked_witness_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    cosigner, key = await register(database_url, "witness.test/d-" + tenant.tenant)
    assert (await client.get("/v1/witness/chains", headers=headers(key))).status_code == 200
    await admin.in_transaction(
        database_url, lambda c: witnesses.revoke_witness(c, name=cosigner.name)
    )
    assert (await client.get("/v1/witness/chains", headers=headers(key))).status_code == 401


async def test_entry_stream_is_every_entry_in_order(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: object
) -> None:
    await append(
        client, tenant.producer, tenant.chain, [decision_event() for _ in range(30)], batch=True
    )
    paged = await all_entries(client, tenant.auditor, tenant.chain)
    response = await client.get(
        f"/v1/chains/{tenant.chain}/entries/stream", headers=headers(tenant.auditor)
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    streamed = [orjson.loads(line) for line in response.content.splitlines()]
    assert streamed == paged
    part = await client.get(
        f"/v1/chains/{tenant.chain}/entries/stream",
        params={"start": 10, "end": 12},
        headers=headers(tenant.auditor),
    )
    assert [orjson.loads(line)["index"] for line in part.content.splitlines()] == [10, 11]
    framed = await client.get(
        f"/v1/chains/{tenant.chain}/entries/stream",
        params={"start": 5},
        headers=headers(tenant.auditor) | {"Accept": LEAF_FRAMES},
    )
    assert framed.headers["content-type"] == LEAF_FRAMES
    data, position, unframed = framed.content, 0, []
    while position < len(data):
        index, length = PUBLISHED_FRAME_HEADER.unpack_from(data, position)
        position += PUBLISHED_FRAME_HEADER.size
        unframed.append((index, data[position : position + length]))
        position += length
    assert unframed == [(e["index"], base64.b64decode(e["leaf"])) for e in paged[5:]]
    other = await make_tenant(database_url, signer, chain="elsewhere")  # type: ignore[arg-type]
    foreign = await client.get(
        f"/v1/chains/{tenant.chain}/entries/stream", headers=headers(other.auditor)
    )
    assert foreign.status_code == 404
