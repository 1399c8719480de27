"""The verifier's API: auditor keys of the log, status, attestations, coverage, public keys."""

from __future__ import annotations

import base64
import copy

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from decision_log.signing import LogSigner
from ledger.dsse import IN_TOTO_PAYLOAD_TYPE
from ledger.merkle import verify_inclusion
from ledger.note import Checkpoint, CosignatureSigner, NoteVerifier, open_note
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from verifier.app import create_app
from verifier.settings import Settings

from tests.service.conftest import make_tenant
from tests.service.helpers import append, decision_event, headers, wait_for_checkpoint
from tests.verifier import tamper


async def test_public_keys_need_no_auth(
    verifier_client: httpx.AsyncClient, cosigner: CosignatureSigner, signer: LogSigner
) -> None:
    keys = (await verifier_client.get("/v1/keys")).json()
    assert keys["cosignature_verifier_key"] == cosigner.verifier_key
    assert keys["log_verifier_key"] == signer.note_signer.verifier_key
    assert len(keys["dsse_keyid"]) == 64
    assert (await verifier_client.get("/healthz")).status_code == 200
    assert (await verifier_client.get("/readyz")).json()["status"] == "ready"


async def test_status_attestation_and_coverage_for_an_auditor(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    cosigner: CosignatureSigner,
) -> None:
    keys = await make_tenant(database_url, signer)
    await append(
        client, keys.producer, keys.chain, [decision_event() for _ in range(9)], batch=True
    )
    await wait_for_checkpoint(client, keys.auditor, keys.chain, size=9)
    auditor = headers(keys.auditor)

    verified = await verifier_client.post(f"/v1/chains/{keys.chain}/verify", headers=auditor)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["status"]["verified_size"] == 9 and body["status"]["findings"] == []
    envelope = body["attestation"]["envelope"]
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    public = (await verifier_client.get("/v1/keys")).json()
    # securesystemslib derives the key id itself; the one the verifier publishes must match.
    key = SSlibKey.from_crypto(
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public["public_key"]))
    )
    assert key.keyid == public["dsse_keyid"]
    dsse = Envelope.from_dict(copy.deepcopy(envelope))  # from_dict consumes its argument
    dsse.verify([key], 1)
    statement = orjson.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["annotations"]["tree_size"] == 9
    assert statement["predicate"]["result"] == "passed"
    assert statement["predicate"]["checked"]["range"] == {"start": 0, "end": 9}

    status = (await verifier_client.get(f"/v1/chains/{keys.chain}", headers=auditor)).json()
    assert status["cosigned_checkpoint"]["size"] == 9
    listed = (await verifier_client.get("/v1/chains", headers=auditor)).json()["chains"]
    # The tenant's own chains only: its decisions and, once an administrative action has been
    # recorded for it (its keys were created), its access log.
    assert {c["tenant"] for c in listed} == {keys.tenant}
    assert keys.chain in [c["chain"] for c in listed]
    assert set(c["chain"] for c in listed) <= {keys.chain, "access-log"}
    latest = await verifier_client.get(
        f"/v1/chains/{keys.chain}/attestations/latest", headers=auditor
    )
    assert latest.json()["envelope"] == envelope
    history = await verifier_client.get(f"/v1/chains/{keys.chain}/attestations", headers=auditor)
    assert len(history.json()["attestations"]) == 1

    coverage = (
        await verifier_client.get(f"/v1/chains/{keys.chain}/entries/4/coverage", headers=auditor)
    ).json()
    assert coverage["covered"] is True and coverage["cosigned_size"] == 9
    assert coverage["halted_by"] is None
    proof = coverage["inclusion_proof"]
    log_key = NoteVerifier.from_verifier_key(signer.note_signer.verifier_key)
    opened = open_note(coverage["checkpoint"], [log_key, cosigner.verifier])
    assert len(opened.verified) == 2
    verify_inclusion(  # against the root of the very checkpoint both signatures cover
        leaf_hash=bytes.fromhex(proof["leaf_hash"]),
        index=4,
        size=9,
        proof=[bytes.fromhex(h) for h in proof["hashes"]],
        root=Checkpoint.parse(opened.text).root_hash,
    )
    beyond = (
        await verifier_client.get(f"/v1/chains/{keys.chain}/entries/9/coverage", headers=auditor)
    ).json()
    assert beyond["covered"] is False


async def test_callers_are_the_log_s_auditors_of_that_tenant(
    verifier_client: httpx.AsyncClient, database_url: str, signer: LogSigner
) -> None:
    keys = await make_tenant(database_url, signer)
    other = await make_tenant(database_url, signer)
    path = f"/v1/chains/{keys.chain}"
    assert (await verifier_client.get(path)).status_code == 401
    assert (await verifier_client.get(path, headers=headers("atk_x_y"))).status_code == 401
    assert (await verifier_client.get(path, headers=headers(keys.producer))).status_code == 403
    assert (await verifier_client.get(path, headers=headers(keys.auditor))).status_code == 200
    assert (
        await verifier_client.get("/v1/chains/nope", headers=headers(keys.auditor))
    ).status_code == 404
    # Another tenant's auditor sees its own chain of the same name, never this one.
    theirs = (await verifier_client.get(path, headers=headers(other.auditor))).json()
    assert theirs["tenant"] == other.tenant


async def test_a_finding_shows_in_the_status(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    keys = await make_tenant(database_url, signer)
    await append(
        client, keys.producer, keys.chain, [decision_event() for _ in range(5)], batch=True
    )
    await wait_for_checkpoint(client, keys.auditor, keys.chain, size=5)
    async with tamper.superuser(database_url) as db:
        await tamper.delete_entry(db, await tamper.chain_id(db, keys.tenant, keys.chain), 2)
    auditor = headers(keys.auditor)
    body = (await verifier_client.post(f"/v1/chains/{keys.chain}/verify", headers=auditor)).json()
    assert body["status"]["halted"] is True
    (finding,) = body["status"]["findings"]
    assert (finding["kind"], finding["first_bad_index"]) == ("missing-entry", 2)
    assert body["attestation"]["result"] == "failed"


async def test_an_unreachable_log_is_a_503_to_retry(verifier_settings: Settings) -> None:
    """Nothing listens on the discard port: the verifier says "try later", not 502 or 500."""
    app = create_app(
        verifier_settings.model_copy(update={"log_url": "http://127.0.0.1:9"}), run_worker=False
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://verifier") as client:
            response = await client.get(
                "/v1/chains/credit", headers={"Authorization": "Bearer atk_0123456789abcdef_x"}
            )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_out_of_range_numbers_and_bad_names_are_400(
    verifier_client: httpx.AsyncClient, database_url: str, signer: LogSigner
) -> None:
    keys = await make_tenant(database_url, signer)
    for path in (
        f"/v1/chains/{keys.chain}/attestations?before={2**64}",
        f"/v1/chains/{keys.chain}/entries/-1/coverage",
        f"/v1/chains/{keys.chain}/entries/{2**63}/coverage",
        "/v1/chains/Not%20a%20slug",
        "/v1/chains/a%00b",
    ):
        response = await verifier_client.get(path, headers=headers(keys.auditor))
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
