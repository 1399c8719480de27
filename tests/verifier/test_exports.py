"""Export bundles end to end: each kind of export round-trips through the offline verifier, with
the verifier's cosignature and attestation; selective exports disclose nothing else; exports
are logged, scoped to the tenant, and never hold appends up."""

from __future__ import annotations

import asyncio
import io
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from decision_log.exports.schemas import ExportRequest
from decision_log.exports.service import ExportRunner, get_export, plan_export
from decision_log.keys.service import Principal
from decision_log.settings import Settings
from decision_log.signing import LogSigner
from fastapi import FastAPI
from ledger.bundle import (
    ATTESTATION,
    BUNDLE_JSON,
    CHECKPOINT,
    ENTRIES,
    INCLUSION_PROOFS,
    MANIFEST,
    BundleError,
    BundleReport,
    consistency_member,
    verify_bundle,
)
from ledger.keys import read_private_key
from ledger.note import CosignatureSigner, NoteVerifier
from ledger.proofs import split_tlog_proofs
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from tests.decisions.helpers import genai_span, overridden, projected, recorded, reviewed
from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import append, decision_event, headers
from tests.verifier.bundles import export, resign, rezip, unzip
from tests.verifier.conftest import append_and_checkpoint
from tests.verifier.tamper import chain_id, superuser


def check(bundle: bytes, log_vkey: NoteVerifier, cosigner: CosignatureSigner) -> BundleReport:
    return verify_bundle(io.BytesIO(bundle), log_key=log_vkey, verifier_key=cosigner.verifier)


@pytest.fixture
async def history(exporter: httpx.AsyncClient, database_url: str, signer: LogSigner) -> TenantKeys:
    """A chain of 25 decisions, some reviewed or overridden: 30 entries."""
    tenant = await make_tenant(database_url, signer)
    events = [recorded(f"loan-{i}") for i in range(25)]
    events += [reviewed("loan-3"), overridden("loan-3"), reviewed("loan-7")]
    events += [reviewed("loan-11"), overridden("loan-20")]
    await append_and_checkpoint(exporter, tenant, events)
    await projected(database_url)
    return tenant


async def test_a_whole_chain_round_trips_with_cosignature_and_attestation(
    exporter: httpx.AsyncClient,
    history: TenantKeys,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    job, bundle = await export(exporter, history, {"kind": "range"})
    assert job["total"] == 30 and job["checkpoint_size"] == 30
    report = check(bundle, log_vkey, cosigner)
    assert (report.entries, report.first_index, report.last_index) == (30, 0, 29)
    assert report.links_checked == 29
    assert report.cosigned_by == [cosigner.name]
    assert report.attestation is not None and "size 30" in report.attestation
    files = unzip(bundle)
    info = orjson.loads(files[BUNDLE_JSON])
    assert info["checkpoint"]["cosigned"] is True and info["attestation"] is True
    for name in ("README.txt", "report.html", "keys/log.vkey", "keys/verifier.vkey"):
        assert name in files
    assert any(name.startswith("schemas/dev.audit-trail.decision.recorded") for name in files)
    report_html = files["report.html"].decode()
    assert "overrides" in report_html and "credit-gbm" in report_html
    # Each proof is a standalone tlog-proof@v1 against the bundle's checkpoint.
    proofs = list(split_tlog_proofs(files[INCLUSION_PROOFS].decode()))
    assert len(proofs) == 30 and all(p.endswith(files[CHECKPOINT].decode()) for p in proofs)
    assert len(files[ENTRIES].splitlines()) == 30


async def test_a_range_and_a_time_span_export_exactly_their_entries(
    exporter: httpx.AsyncClient,
    history: TenantKeys,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    _, bundle = await export(exporter, history, {"kind": "range", "start": 5, "end": 17})
    report = check(bundle, log_vkey, cosigner)
    assert (report.entries, report.first_index, report.last_index) == (12, 5, 16)
    now = datetime.now(UTC)
    _, bundle = await export(
        exporter,
        history,
        {"kind": "time", "since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()},
    )
    assert check(bundle, log_vkey, cosigner).entries == 30
    _, empty = await export(
        exporter, history, {"kind": "time", "until": (now - timedelta(days=1)).isoformat()}
    )
    assert check(empty, log_vkey, cosigner).entries == 0


async def test_a_selective_export_discloses_only_the_chosen_decisions(
    exporter: httpx.AsyncClient,
    history: TenantKeys,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    job, bundle = await export(
        exporter, history, {"kind": "decisions", "decision_ids": ["loan-3", "loan-20"]}
    )
    report = check(bundle, log_vkey, cosigner)
    assert report.entries == 5  # loan-3: recorded, reviewed, overridden; loan-20: two
    files = unzip(bundle)
    subjects = {orjson.loads(line)["event"]["subject"] for line in files[ENTRIES].splitlines()}
    assert subjects == {"loan-3", "loan-20"}
    everything = b"".join(files.values())
    for other in ("loan-7", "loan-11", "loan-0"):
        assert other.encode() not in everything
    assert job["checkpoint_size"] == 30


async def test_consistency_with_checkpoints_the_recipient_holds(
    exporter: httpx.AsyncClient,
    history: TenantKeys,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    await append_and_checkpoint(exporter, history, [decision_event() for _ in range(5)])
    _, bundle = await export(exporter, history, {"kind": "range", "consistency_from": [30, 30]})
    report = check(bundle, log_vkey, cosigner)
    assert report.consistent_with == [30] and report.checkpoint_size == 35
    assert consistency_member(30) in unzip(bundle)


async def test_bad_requests_name_the_field(
    exporter: httpx.AsyncClient, history: TenantKeys, database_url: str, signer: LogSigner
) -> None:
    path = f"/v1/chains/{history.chain}/exports"
    auditor = headers(history.auditor)
    beyond = await exporter.post(path, json={"kind": "range", "end": 31}, headers=auditor)
    assert beyond.status_code == 400 and beyond.json()["pointer"] == "/end"
    unknown = await exporter.post(
        path, json={"kind": "decisions", "decision_ids": ["loan-1", "nope"]}, headers=auditor
    )
    assert unknown.status_code == 404 and unknown.json()["pointer"] == "/decision_ids/1"
    mixed = await exporter.post(
        path, json={"kind": "range", "since": "2026-01-01T00:00:00Z"}, headers=auditor
    )
    assert mixed.status_code == 400 and mixed.headers["content-type"] == "application/problem+json"
    no_checkpoint = await exporter.post(
        path, json={"kind": "range", "consistency_from": [7]}, headers=auditor
    )
    assert no_checkpoint.status_code == 400
    assert no_checkpoint.json()["pointer"] == "/consistency_from/0"
    producer = await exporter.post(path, json={"kind": "range"}, headers=headers(history.producer))
    assert producer.status_code == 403


async def test_exports_are_the_tenants_own_and_are_logged(
    exporter: httpx.AsyncClient, history: TenantKeys, database_url: str, signer: LogSigner
) -> None:
    job, _ = await export(exporter, history, {"kind": "range", "end": 3})
    other = await make_tenant(database_url, signer)
    for path in (f"/v1/exports/{job['id']}", f"/v1/exports/{job['id']}/bundle"):
        response = await exporter.get(path, headers=headers(other.auditor))
        assert response.status_code == 404
    listed = await exporter.get("/v1/exports", headers=headers(other.auditor))
    assert listed.json()["exports"] == []
    mine = await exporter.get("/v1/exports", headers=headers(history.auditor))
    assert job["id"] in [e["id"] for e in mine.json()["exports"]]
    connection = await asyncpg.connect(database_url)
    try:
        actions = await connection.fetch(
            "SELECT e.leaf FROM entries e JOIN chains c ON c.id = e.chain_id "
            "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1 AND c.slug = 'access-log'",
            history.tenant,
        )
    finally:
        await connection.close()
    logged = [orjson.loads(row["leaf"])["event"]["data"]["action"] for row in actions]
    assert "export" in logged and "export.download" in logged


async def test_a_large_export_runs_as_a_job_while_producers_append(
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    tenant = await make_tenant(database_url, signer)
    for _ in range(12):
        await append_and_checkpoint(exporter, tenant, [decision_event() for _ in range(1000)])
    response = await exporter.post(
        f"/v1/chains/{tenant.chain}/exports",
        json={"kind": "range"},
        headers=headers(tenant.auditor),
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "running" and job["total"] == 12_000

    acknowledged_while_building = 0
    while job["status"] == "running":
        reply = await append(exporter, tenant.producer, tenant.chain, decision_event())
        assert reply.status_code == 201
        job = (
            await exporter.get(f"/v1/exports/{job['id']}", headers=headers(tenant.auditor))
        ).json()
        # Acknowledged, and the export still unfinished after it: the append did not wait.
        if job["status"] == "running" and job["done"] < job["total"]:
            acknowledged_while_building += 1
        await asyncio.sleep(0.01)
    assert job["status"] == "ready", job
    assert acknowledged_while_building > 0
    bundle = (await exporter.get(job["download"], headers=headers(tenant.auditor))).content
    report = check(bundle, log_vkey, cosigner)
    assert report.entries == 12_000 and report.links_checked == 11_999


async def test_third_party_tools_check_the_bundle_unchanged(
    exporter: httpx.AsyncClient,
    history: TenantKeys,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
    tmp_path: Path,
) -> None:
    _, bundle = await export(exporter, history, {"kind": "decisions", "decision_ids": ["loan-3"]})
    files = unzip(bundle)
    # securesystemslib verifies the log's manifest and the verifier's attestation as they are.
    for member, key in (
        (MANIFEST, log_vkey.public_key),
        (ATTESTATION, cosigner.verifier.public_key),
    ):
        sslib_key = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(key.raw))
        envelope = Envelope.from_dict(orjson.loads(files[member]))
        assert set(envelope.verify([sslib_key], threshold=1)) == {sslib_key.keyid}
    # sha256sum -c checks every digest once the bundle is unzipped.
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        archive.extractall(tmp_path)
    checked = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(files) - 2
    (tmp_path / ENTRIES).write_bytes(files[ENTRIES].replace(b"loan-3", b"loan-4"))
    tampered = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, check=False
    )
    assert tampered.returncode != 0


async def test_an_export_cut_off_by_a_shutdown_says_so(
    exporting_app: FastAPI, history: TenantKeys, database_url: str
) -> None:
    state = exporting_app.state.audit_trail
    connection = await asyncpg.connect(database_url)
    try:
        tenant_id = await connection.fetchval(
            "SELECT id FROM tenants WHERE slug = $1", history.tenant
        )
    finally:
        await connection.close()
    principal = Principal(
        key_id="k",
        tenant_id=tenant_id,
        tenant=history.tenant,
        roles=frozenset({"auditor"}),
        chains=None,
        expires_at=None,
    )
    plan = await plan_export(
        state, principal, chain=history.chain, request=ExportRequest(kind="range")
    )
    runner = ExportRunner(engine=state.engine, signer=state.signer)
    runner.start(plan)
    await runner.close()  # before the build has taken a step
    job = await get_export(state, principal, export_id=plan.export_id)
    assert job.status == "failed" and job.error is not None and "interrupted" in job.error


async def test_an_export_the_store_cannot_back_fails_and_says_so(
    exporter: httpx.AsyncClient, history: TenantKeys, database_url: str
) -> None:
    """Built before the answer or not, an export that fails is marked failed, not left running,
    and carries the problem it was refused with."""
    await export(exporter, history, {"kind": "range", "end": 1})  # the verifier has seen it all
    async with superuser(database_url) as connection:
        chain = await chain_id(connection, history.tenant, history.chain)
        await connection.execute(
            "UPDATE entries SET leaf = leaf || ' '::bytea WHERE chain_id = $1 AND idx = 4", chain
        )
    response = await exporter.post(
        f"/v1/chains/{history.chain}/exports",
        json={"kind": "range"},
        headers=headers(history.auditor),
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"].endswith("/integrity-failure")
    assert (problem["index"], problem["check"]) == (4, "leaf-hash")
    jobs = (await exporter.get("/v1/exports", headers=headers(history.auditor))).json()
    failed = [job for job in jobs["exports"] if job["status"] == "failed"]
    assert len(failed) == 1 and "entry 4" in failed[0]["error"]
    assert (failed[0]["problem"]["index"], failed[0]["problem"]["check"]) == (4, "leaf-hash")


def kserve(kind: str, inference_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A KServe payload logger's event as it is recorded (binary mode: attributes from the
    `Ce-*` headers, the body as data)."""
    return {
        "specversion": "1.0",
        "id": inference_id,
        "source": "http://sklearn-iris-predictor-00001-deployment-7f9c/",
        "type": f"org.kubeflow.serving.inference.{kind}",
        "inferenceservicename": "sklearn-iris",
        "namespace": "default",
        "datacontenttype": "application/json",
        "data": body,
    }


async def test_model_servers_and_agents_decisions_export_by_the_ids_they_go_by(
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    settings: Settings,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    """A KServe inference is the decision its id names, a GenAI agent invocation the one its
    spans group under: exports select them by those ids and check offline, and a bundle whose
    entries are another decision's events fails."""
    tenant = await make_tenant(database_url, signer)
    trace, agent = "4bf92f3577b34da6a3ce929d0e0e4736", "a" * 16
    invocation = f"{trace}-{agent}"
    for event in (
        kserve("request", "inf-1", {"instances": [[6.8, 2.8, 4.8, 1.4]]}),
        kserve("response", "inf-1", {"predictions": [1]}),
    ):
        sent = {"Ce-" + k: str(v) for k, v in event.items() if k not in ("data", "datacontenttype")}
        appended = await exporter.post(
            f"/v1/chains/{tenant.chain}/events",
            content=orjson.dumps(event["data"]),
            headers=headers(tenant.producer, sent | {"Content-Type": "application/json"}),
        )
        assert appended.status_code == 201, appended.text
    await append_and_checkpoint(
        exporter,
        tenant,
        [
            kserve("request", "inf-2", {"instances": [[1, 2, 3, 4]]}),
            recorded("loan-1"),
            genai_span(trace, "b" * 16, parent=agent, gen_ai__request__model="gpt-4o"),
            genai_span(trace, agent, operation="invoke_agent", gen_ai__agent__name="support"),
            genai_span(trace, "c" * 16, parent=agent, operation="invoke_agent"),  # its own
        ],
    )
    await projected(database_url)

    _, bundle = await export(
        exporter, tenant, {"kind": "decisions", "decision_ids": ["inf-1", invocation]}
    )
    report = check(bundle, log_vkey, cosigner)
    assert report.entries == 4 and (report.first_index, report.last_index) == (0, 5)
    files = unzip(bundle)
    exported = [orjson.loads(line)["event"] for line in files[ENTRIES].splitlines()]
    assert [event["id"] for event in exported] == [
        "inf-1",
        "inf-1",
        *(f"{trace}-{s * 16}" for s in "ba"),
    ]

    # The same entries under another decision's name, signed by the log's own key: refused.
    info, log_key = orjson.loads(files[BUNDLE_JSON]), read_private_key(settings.log_key_file)
    info["selection"]["decision_ids"] = ["inf-2", invocation]
    forged = rezip(resign({**files, BUNDLE_JSON: orjson.dumps(info)}, log_key))
    with pytest.raises(BundleError) as failed:
        verify_bundle(forged, log_key=log_vkey, verifier_key=cosigner.verifier)
    assert (failed.value.index, failed.value.check) == (0, "selection")
    assert "'inf-1'" in str(failed.value)
    info["selection"]["decision_ids"] = ["inf-1", f"{trace}-{'c' * 16}"]
    forged = rezip(resign({**files, BUNDLE_JSON: orjson.dumps(info)}, log_key))
    with pytest.raises(BundleError) as failed:
        verify_bundle(forged, log_key=log_vkey, verifier_key=cosigner.verifier)
    assert (failed.value.index, failed.value.check) == (4, "selection")
