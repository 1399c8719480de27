"""Appending events: receipts, idempotency, batches, signatures."""

from __future__ import annotations

import asyncio
import base64

import httpx
import orjson
from decision_log.signing import RECEIPTS_PAYLOAD_TYPE, LogSigner, ReceiptSigner
from ledger.dsse import verify_envelope
from ledger.keys import VerifyingKey
from ledger.merkle import leaf_hash

from tests.service.conftest import TenantKeys
from tests.service.helpers import all_entries, append, chain_size, decision_event, leaf_bytes


async def log_dsse_keys(client: httpx.AsyncClient) -> dict[str, VerifyingKey]:
    published = (await client.get("/v1/log/keys")).json()
    return {
        key["dsse_keyid"]: VerifyingKey.from_bytes(bytes.fromhex(key["public_key"]))
        for key in published["keys"]
    }


async def test_single_event_gets_a_signed_receipt_after_commit(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = decision_event()
    response = await append(client, tenant.producer, tenant.chain, event)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["tenant"] == tenant.tenant
    assert receipt["chain"] == tenant.chain
    assert receipt["index"] == 0
    assert receipt["replayed"] is False
    assert receipt["received_at"].endswith("Z") and len(receipt["received_at"]) == 27

    payload_type, payload = verify_envelope(receipt["signature"], await log_dsse_keys(client))
    assert payload_type == RECEIPTS_PAYLOAD_TYPE
    signed = orjson.loads(payload)
    assert signed["receipts"] == [
        {k: receipt[k] for k in ("tenant", "chain", "index", "leaf_hash", "received_at")}
    ]

    # The receipt is only sent once the entry is committed: it is readable at once.
    entry = (await all_entries(client, tenant.auditor, tenant.chain))[0]
    assert entry["leaf_hash"] == receipt["leaf_hash"]
    assert leaf_hash(leaf_bytes(entry)).hex() == receipt["leaf_hash"]


async def test_retry_returns_the_original_receipt_byte_for_byte(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = decision_event()
    first = await append(client, tenant.producer, tenant.chain, event)
    again = await append(client, tenant.producer, tenant.chain, event)
    assert (first.status_code, again.status_code) == (201, 200)
    original, replay = first.json(), again.json()
    assert replay.pop("replayed") is True and original.pop("replayed") is False
    assert replay == original
    assert await chain_size(client, tenant.auditor, tenant.chain) == 1


async def test_same_key_other_content_is_a_conflict_and_writes_nothing(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = decision_event()
    assert (await append(client, tenant.producer, tenant.chain, event)).status_code == 201
    changed = dict(event, data=event["data"] | {"output": {"decision": "approved"}})
    response = await append(client, tenant.producer, tenant.chain, changed)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409 and problem["index"] == 0 and problem["pointer"] == "/id"
    assert await chain_size(client, tenant.auditor, tenant.chain) == 1


async def test_batch_appends_consecutively_under_one_signature(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    events = [decision_event() for _ in range(25)]
    response = await append(client, tenant.producer, tenant.chain, events, batch=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["appended"] == 25
    assert [r["index"] for r in body["receipts"]] == list(range(25))
    _, payload = verify_envelope(body["signature"], await log_dsse_keys(client))
    signed = orjson.loads(payload)["receipts"]
    assert [r["leaf_hash"] for r in signed] == [r["leaf_hash"] for r in body["receipts"]]


async def test_batch_with_replays_returns_their_original_receipts(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    old = [decision_event() for _ in range(3)]
    first = (await append(client, tenant.producer, tenant.chain, old, batch=True)).json()
    new = [decision_event() for _ in range(2)]
    response = await append(client, tenant.producer, tenant.chain, [old[1], *new], batch=True)
    assert response.status_code == 201
    receipts = response.json()["receipts"]
    assert receipts[0]["replayed"] is True
    assert receipts[0]["leaf_hash"] == first["receipts"][1]["leaf_hash"]
    assert receipts[0]["index"] == 1
    assert [r["index"] for r in receipts[1:]] == [3, 4]

    # The very same batch again: nothing new, 200, identical signature.
    retry = await append(client, tenant.producer, tenant.chain, [old[1], *new], batch=True)
    assert retry.status_code == 200
    assert retry.json()["appended"] == 0
    assert [r["index"] for r in retry.json()["receipts"]] == [1, 3, 4]


async def test_batch_with_a_conflict_writes_nothing(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    event = decision_event()
    await append(client, tenant.producer, tenant.chain, event)
    changed = dict(event, data=event["data"] | {"output": {"decision": "approved"}})
    batch = [decision_event(), changed, decision_event()]
    response = await append(client, tenant.producer, tenant.chain, batch, batch=True)
    assert response.status_code == 409
    assert response.json()["pointer"] == "/1/id"
    assert await chain_size(client, tenant.auditor, tenant.chain) == 1


async def test_receipts_name_their_leaves(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    events = [decision_event() for _ in range(5)]
    receipts = (await append(client, tenant.producer, tenant.chain, events, batch=True)).json()
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    for event, receipt, entry in zip(events, receipts["receipts"], entries, strict=True):
        leaf = orjson.loads(leaf_bytes(entry))
        assert leaf["event"] == event
        assert leaf["received_at"] == receipt["received_at"]
        assert base64.b64decode(entry["leaf"]) == leaf_bytes(entry)


async def test_a_burst_of_receipts_is_signed_each_for_its_own_payload(signer: LogSigner) -> None:
    receipts = ReceiptSigner(signer)
    try:
        payloads = [b'{"receipts":[{"index":%d}]}' % i for i in range(50)]
        envelopes = await asyncio.gather(*(receipts.sign(p) for p in payloads))
    finally:
        receipts.close()
    keys = {signer.dsse_keyid: signer.key.public_key}
    for payload, envelope in zip(payloads, envelopes, strict=True):
        assert verify_envelope(envelope, keys) == (RECEIPTS_PAYLOAD_TYPE, payload)


async def test_one_source_and_id_with_two_types_lands_twice_and_each_replays_alone(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    """The idempotency key is (chain, source, type, id): KServe logs an inference's request and
    response under one id and one source, told apart by their type."""
    request = decision_event(type="org.kubeflow.serving.inference.request", data={"x": [1]})
    response = dict(request, type="org.kubeflow.serving.inference.response", data={"y": [2]})
    first = await append(client, tenant.producer, tenant.chain, request)
    second = await append(client, tenant.producer, tenant.chain, response)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert (first.json()["index"], second.json()["index"]) == (0, 1)
    for event, original in ((response, second), (request, first)):
        again = await append(client, tenant.producer, tenant.chain, event)
        assert again.status_code == 200
        assert again.json()["index"] == original.json()["index"]
        assert again.json()["signature"] == original.json()["signature"]
    conflict = await append(client, tenant.producer, tenant.chain, dict(response, data={}))
    assert conflict.status_code == 409 and conflict.json()["index"] == 1
    assert "(source, type, id)" in conflict.json()["title"]
    assert await chain_size(client, tenant.auditor, tenant.chain) == 2


async def test_a_batch_may_hold_one_source_and_id_under_two_types(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    request = decision_event(type="org.kubeflow.serving.inference.request", data={})
    response = dict(request, type="org.kubeflow.serving.inference.response")
    both = await append(client, tenant.producer, tenant.chain, [request, response], batch=True)
    assert both.status_code == 201 and both.json()["appended"] == 2
    twice = await append(client, tenant.producer, tenant.chain, [request, request], batch=True)
    assert twice.status_code == 400 and twice.json()["pointer"] == "/1/id"
