"""Exports refuse to certify what does not verify: tampered chains, verifier findings, no
verifier. Each tamper is done for real in the log's PostgreSQL, as a superuser with the
append-only triggers off, on a chain the verifier has already checked and cosigned.

Per tamper (on 40 cosigned entries): (a) an export; (b) the same built in the background;
(c) `verify-bundle --verifier-key` of the bundle built under the admin override.

- leaf bytes of entry 7 edited, its stored hash left: (a) 409 integrity-failure, entry 7,
  leaf-hash; (b) failed with that problem; (c) exit 1, entries.jsonl entry 7, inclusion.
- entry 11 deleted: (a) 409, entry 11, missing; (b) the same; (c) exit 1, entry 11, missing.
- entries 13 and 21 swapped: (a) 409, entry 13, index; (b) the same; (c) exit 1, entry 13,
  index.
- entries from 30 rewritten, hashes and links recomputed, without the key (the tree and the
  checkpoints left): (a) 409, entry 30, inclusion; (b) the same; (c) exit 1, entry 30,
  inclusion.
- entries from 25 rewritten with the key, the tree rebuilt and the checkpoints re-signed:
  (a) 409, verifier-finding at the verifier's first bad index; (b) refused before a job
  exists; (c) exit 1, checkpoint.txt has no cosignature by the verifier; without
  --verifier-key, exit 1 on the verifier's failed attestation (under the bundle's own copy of
  its key).
- cut back to 33; cut back to 33, then 5 new appends: as the rewrite with the key.

An entry-level tamper may be found by the verifier first (it re-reads what it verified on a
schedule): then the refusal is its finding, at the same index. Both are accepted below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import typer
from audit_trail import admin
from audit_trail.bundles import verify_bundle_command
from decision_log.app import create_app
from decision_log.exports.schemas import ExportRequest
from decision_log.exports.service import get_export, plan_export
from decision_log.keys import service as keys
from decision_log.keys.schemas import KeyCreate
from decision_log.keys.service import Principal
from decision_log.settings import Settings
from decision_log.signing import LogSigner
from fastapi import FastAPI
from ledger.bundle import BUNDLE_JSON
from ledger.note import CosignatureSigner, NoteVerifier
from sqlalchemy.ext.asyncio import AsyncConnection
from verifier.epochs import acknowledge_finding
from verifier.log_client import ChainName
from verifier.service import ChainVerifier
from verifier.state import AppState as VerifierState

from tests.decisions.helpers import projected, recorded, reviewed
from tests.decisions.read_model import reproject
from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import append, headers
from tests.verifier import tamper
from tests.verifier.bundles import unzip
from tests.verifier.conftest import append_and_checkpoint, grow

SIZE = 40
REASON = "court order 17/2026: the records as stored, for the inquiry"


@dataclass
class WitnessedChain:
    """A tenant's chain of 40 entries that the verifier has verified and cosigned."""

    keys: TenantKeys
    name: ChainName
    admin_auditor: str  # a key with both roles: what the override needs


async def admin_auditor_key(database_url: str, tenant: str) -> str:
    async def action(connection: AsyncConnection) -> str:
        created = await keys.create_key(
            connection,
            tenant_id=await admin.tenant_id(connection, tenant),
            request=KeyCreate(roles=["admin", "auditor"]),  # type: ignore[list-item]
        )
        return created.api_key

    return await admin.in_transaction(database_url, action)


@pytest.fixture
async def witnessed(
    exporter: httpx.AsyncClient, database_url: str, signer: LogSigner, verifier: ChainVerifier
) -> WitnessedChain:
    keys_ = await make_tenant(database_url, signer)
    events = [recorded(f"loan-{i}") for i in range(36)]
    events += [reviewed("loan-3"), reviewed("loan-9"), reviewed("loan-20"), reviewed("loan-31")]
    assert await append_and_checkpoint(exporter, keys_, events) == SIZE
    name = ChainName(keys_.tenant, keys_.chain)
    state = await verifier.verify(name)
    assert state.verified_size == SIZE and state.halted_by is None
    await projected(database_url)
    return WitnessedChain(
        keys=keys_, name=name, admin_auditor=await admin_auditor_key(database_url, keys_.tenant)
    )


@dataclass(frozen=True)
class Tamper:
    do: Callable[[asyncpg.Connection, int, LogSigner, WitnessedChain], Awaitable[None]]
    # What the export is refused with: the check and the entry, or None for the verifier's
    # finding (its first bad index is the verifier's to say).
    refusal: tuple[str, int] | None
    # What verify-bundle --verifier-key names in the bundle built under the override:
    # (file, check, entry).
    bundle_failure: tuple[str, str | None, int | None]
    appends_after: int = 0


async def _edit(db: asyncpg.Connection, chain: int, _: LogSigner, __: WitnessedChain) -> None:
    await tamper.change_one_byte(db, chain, 7)


async def _delete(db: asyncpg.Connection, chain: int, _: LogSigner, __: WitnessedChain) -> None:
    await tamper.delete_entry(db, chain, 11)


async def _swap(db: asyncpg.Connection, chain: int, _: LogSigner, __: WitnessedChain) -> None:
    await tamper.swap_entries(db, chain, 13, 21)


async def _rewrite(db: asyncpg.Connection, chain: int, _: LogSigner, c: WitnessedChain) -> None:
    await tamper.rewrite_entries(db, chain, 30, tenant=c.name.tenant, name=c.name.chain)


async def _rewrite_with_key(
    db: asyncpg.Connection, chain: int, s: LogSigner, c: WitnessedChain
) -> None:
    await tamper.rewrite_history(db, chain, 25, s, tenant=c.name.tenant, name=c.name.chain)


async def _cut(db: asyncpg.Connection, chain: int, s: LogSigner, c: WitnessedChain) -> None:
    await tamper.truncate_tail(db, chain, 33, s, tenant=c.name.tenant, name=c.name.chain)


NO_COSIGNATURE = ("checkpoint.txt", "cosignature", None)
TAMPERS = {
    "leaf bytes edited": Tamper(_edit, ("leaf-hash", 7), ("entries.jsonl", "inclusion", 7)),
    "entry deleted": Tamper(_delete, ("missing", 11), ("entries.jsonl", "missing", 11)),
    "entries swapped": Tamper(_swap, ("index", 13), ("entries.jsonl", "index", 13)),
    "rewritten without the key": Tamper(
        _rewrite, ("inclusion", 30), ("entries.jsonl", "inclusion", 30)
    ),
    "rewritten with the key, checkpoint re-signed": Tamper(_rewrite_with_key, None, NO_COSIGNATURE),
    "cut back": Tamper(_cut, None, NO_COSIGNATURE),
    "cut back, then new appends": Tamper(_cut, None, NO_COSIGNATURE, appends_after=5),
}


async def do_tamper(
    name: str,
    witnessed: WitnessedChain,
    database_url: str,
    signer: LogSigner,
    exporter: httpx.AsyncClient,
) -> Tamper:
    chosen = TAMPERS[name]
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, witnessed.name.tenant, witnessed.name.chain)
        await chosen.do(db, chain, signer, witnessed)
    if chosen.appends_after:
        await grow(exporter, witnessed.keys, chosen.appends_after)
    return chosen


async def open_findings(verifier_client: httpx.AsyncClient, witnessed: WitnessedChain) -> list[Any]:
    status = await verifier_client.get(
        f"/v1/chains/{witnessed.keys.chain}", headers=headers(witnessed.keys.auditor)
    )
    return [f for f in status.json()["findings"] if f["acknowledged"] is None]


def assert_refused(
    problem: dict[str, Any], expected: tuple[str, int] | None, findings: list[Any]
) -> None:
    """The problem names the entry and the check, or the verifier's finding."""
    assert problem["type"].endswith("/integrity-failure"), problem
    if problem["check"] == "verifier-finding":
        assert findings, problem
        first = min(findings, key=lambda f: f["first_bad_index"])
        assert problem["finding"]["id"] == first["id"]
        assert problem["index"] == first["first_bad_index"]
        if expected is not None:
            assert problem["index"] == expected[1]
        return
    assert expected is not None, f"expected the verifier's finding, got {problem}"
    assert (problem["check"], problem["index"]) == expected, problem


def verify_offline(
    path: Path, log_vkey: NoteVerifier, verifier_key: str | None, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """(exit status, everything printed) of `audit-trail verify-bundle` on the file."""
    try:
        verify_bundle_command(path, log_key=log_vkey.verifier_key, verifier_key=verifier_key)
        status = 0
    except typer.Exit as stopped:
        status = stopped.exit_code
    printed = capsys.readouterr()
    return status, printed.out + printed.err


@pytest.mark.parametrize("kind", list(TAMPERS))
async def test_a_tampered_chain_is_not_exported_and_the_override_says_so(
    kind: str,
    witnessed: WitnessedChain,
    exporter: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chosen = await do_tamper(kind, witnessed, database_url, signer, exporter)
    path = f"/v1/chains/{witnessed.keys.chain}/exports"

    # Refused, naming the entry and the check (or the verifier's finding).
    refused = await exporter.post(
        path, json={"kind": "range"}, headers=headers(witnessed.keys.auditor)
    )
    assert refused.status_code == 409, refused.text
    findings = await open_findings(verifier_client, witnessed)
    assert_refused(refused.json(), chosen.refusal, findings)
    # The auditor's role is not enough to override.
    denied = await exporter.post(
        path,
        json={"kind": "range", "override_reason": REASON},
        headers=headers(witnessed.keys.auditor),
    )
    assert denied.status_code == 403, denied.text

    # With the override (admin), the bundle is built from what is stored, says so first, and
    # its own verification fails at the first entry at fault, on the same check.
    built = await exporter.post(
        path,
        json={"kind": "range", "override_reason": REASON},
        headers=headers(witnessed.admin_auditor),
    )
    assert built.status_code == 201, built.text
    job = built.json()
    assert job["status"] == "ready" and job["override_reason"] == REASON
    assert job["overridden"], job
    first = job["overridden"][0]
    if chosen.refusal is not None and first.get("check") != "verifier-finding":
        assert (first["check"], first["index"]) == chosen.refusal
    download = await exporter.get(job["download"], headers=headers(witnessed.admin_auditor))
    files = unzip(download.content)
    assert next(iter(orjson.loads(files[BUNDLE_JSON]))) == "override"
    assert files[BUNDLE_JSON].decode().lstrip("{ \n").startswith('"override"')
    assert files["README.txt"].startswith(b"!!!") and b"NOT CERTIFIED" in files["README.txt"][:200]
    assert REASON.encode() in files["README.txt"][:2000]
    report = files["report.html"].decode()
    assert report.index('class="warning"') < report.index("<h1>") and REASON in report

    bundle = tmp_path / "override.zip"
    bundle.write_bytes(download.content)
    status, said = verify_offline(bundle, log_vkey, cosigner.verifier_key, capsys)
    assert status == 1, said
    member, check, index = chosen.bundle_failure
    named = member + ("" if index is None else f", entry {index}") + f" ({check})"
    assert f"FAILED {named}" in said, said
    assert said.index("WARNING") < said.index("FAILED") and REASON in said
    if chosen.refusal is None:
        # A key-holder's rewrite verifies under the log's key alone; under the bundle's own copy
        # of the verifier's key, the verifier's failed attestation still fails it.
        status, said = verify_offline(bundle, log_vkey, None, capsys)
        assert status == 1, said
        assert "FAILED attestation.dsse.json" in said and "failed" in said

    # The override is on the tenant's access log, with its reason.
    assert REASON in await access_log_text(database_url, witnessed.keys.tenant)


@pytest.mark.parametrize("kind", [k for k, t in TAMPERS.items() if t.refusal is not None])
async def test_a_background_export_of_a_tampered_chain_ends_failed_with_the_problem(
    kind: str,
    witnessed: WitnessedChain,
    exporter: httpx.AsyncClient,
    exporting_app: FastAPI,
    database_url: str,
    signer: LogSigner,
) -> None:
    """Large exports build after the answer (202); the same checks end the job ``failed``,
    carrying the problem: the entry and the check."""
    chosen = await do_tamper(kind, witnessed, database_url, signer, exporter)
    state = exporting_app.state.audit_trail
    principal = await auditor(database_url, witnessed.keys.tenant)
    plan = await plan_export(
        state,
        principal,
        chain=witnessed.keys.chain,
        request=ExportRequest(kind="range"),
    )
    state.exports.start(plan)
    job = await get_export(state, principal, export_id=plan.export_id)
    while job.status == "running":
        await asyncio.sleep(0.02)
        job = await get_export(state, principal, export_id=plan.export_id)
    assert job.status == "failed" and job.problem is not None
    assert job.problem["type"].endswith("/integrity-failure")
    assert (job.problem["check"], job.problem["index"]) == chosen.refusal
    assert job.error == job.problem["detail"]


async def test_no_verifier_no_export(
    client: httpx.AsyncClient, witnessed: WitnessedChain, settings: Settings
) -> None:
    """Without a verifier configured, or one that does not answer, nothing is certified."""
    path = f"/v1/chains/{witnessed.keys.chain}/exports"
    alone = await client.post(path, json={"kind": "range"}, headers=headers(witnessed.keys.auditor))
    assert alone.status_code == 409, alone.text
    assert alone.json()["type"].endswith("/verifier-unavailable")
    assert "no verifier is configured" in alone.json()["reason"]
    silent = create_app(settings.model_copy(update={"verifier_url": "http://127.0.0.1:9"}))
    async with silent.router.lifespan_context(silent):
        transport = httpx.ASGITransport(app=silent)
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as http:
            refused = await http.post(
                path, json={"kind": "range"}, headers=headers(witnessed.keys.auditor)
            )
            assert refused.status_code == 409, refused.text
            assert refused.json()["type"].endswith("/verifier-unavailable")
            # The override builds it, and says what it overrode.
            built = await http.post(
                path,
                json={"kind": "range", "override_reason": REASON},
                headers=headers(witnessed.admin_auditor),
            )
            assert built.status_code == 201, built.text
            overridden = built.json()["overridden"]
            assert [failure["type"] for failure in overridden] == ["verifier-unavailable"]


async def test_an_acknowledged_finding_is_named_by_the_export_that_spans_it(
    witnessed: WitnessedChain,
    exporter: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    verifier_state: VerifierState,
    verifier: ChainVerifier,
    database_url: str,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An entry deleted, found, put back, and the finding acknowledged: exports are built
    again, and each one whose checkpoint spans the finding names it, who acknowledged it, when
    and why; verify-bundle wants it accepted by id if the verifier's attestation names it."""
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, witnessed.name.tenant, witnessed.name.chain)
        row = await db.fetchrow("SELECT * FROM entries WHERE chain_id = $1 AND idx = 11", chain)
        await tamper.delete_entry(db, chain, 11)
    path = f"/v1/chains/{witnessed.keys.chain}/exports"
    # The verifier re-reads what it verified before: one sweep finds it.
    assert (await verifier_state.sweeper.sweep_chain(witnessed.name)).finding_id is not None
    (finding,) = await open_findings(verifier_client, witnessed)
    refused = await exporter.post(
        path, json={"kind": "range"}, headers=headers(witnessed.keys.auditor)
    )
    assert refused.status_code == 409
    assert refused.json()["check"] == "verifier-finding"
    async with tamper.superuser(database_url) as db:
        columns = list(row.keys())
        await db.execute(
            f"INSERT INTO entries ({', '.join(columns)}) VALUES "
            f"({', '.join(f'${n}' for n in range(1, len(columns) + 1))})",
            *row.values(),
        )
    await acknowledge_finding(
        verifier_state.engine,
        finding_id=finding["id"],
        operator="ops@example.test",
        reason="entry 11 restored from the backup of 2026-12-01",
        now=datetime.now(UTC),
    )
    assert (await verifier.verify(witnessed.name)).halted_by is None
    built = await exporter.post(
        path, json={"kind": "range"}, headers=headers(witnessed.keys.auditor)
    )
    assert built.status_code == 201, built.text
    download = await exporter.get(built.json()["download"], headers=headers(witnessed.keys.auditor))
    files = unzip(download.content)
    info = orjson.loads(files[BUNDLE_JSON])
    (named,) = info["acknowledged_findings"]
    assert (named["id"], named["operator"]) == (finding["id"], "ops@example.test")
    assert "restored from the backup" in named["reason"]
    assert files[BUNDLE_JSON].decode().lstrip("{ \n").startswith('"acknowledged_findings"')
    assert b"ops@example.test" in files["README.txt"][:1500]
    bundle = tmp_path / "acknowledged.zip"
    bundle.write_bytes(download.content)
    # The verifier's attestation names it too, so verify-bundle wants it accepted by its id.
    status, said = verify_offline(bundle, log_vkey, cosigner.verifier_key, capsys)
    assert status == 3 and "--accept-acknowledged" in said, said
    assert f"finding {finding['id']}: missing-entry at index 11" in said
    try:
        verify_bundle_command(
            bundle,
            log_key=log_vkey.verifier_key,
            verifier_key=cosigner.verifier_key,
            accept_acknowledged=[str(finding["id"])],
        )
    except typer.Exit as stopped:
        raise AssertionError(capsys.readouterr()) from stopped
    assert "VERIFIED" in capsys.readouterr().out


async def auditor(database_url: str, tenant: str) -> Principal:
    connection = await asyncpg.connect(database_url)
    try:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant)
    finally:
        await connection.close()
    return Principal(
        key_id="k",
        tenant_id=tenant_id,
        tenant=tenant,
        roles=frozenset({"auditor"}),
        chains=None,
        expires_at=None,
    )


async def access_log_text(database_url: str, tenant: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        leaves = await connection.fetch(
            "SELECT e.leaf FROM entries e JOIN chains c ON c.id = e.chain_id "
            "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1 AND c.slug = 'access-log'",
            tenant,
        )
    finally:
        await connection.close()
    return "\n".join(bytes(row["leaf"]).decode() for row in leaves)


async def test_an_intact_chain_exports_as_before(
    witnessed: WitnessedChain, exporter: httpx.AsyncClient
) -> None:
    """The checks refuse nothing that verifies (the override is not needed, nor listed)."""
    response = await append(
        exporter, witnessed.keys.producer, witnessed.keys.chain, [recorded("loan-99")], batch=True
    )
    assert response.status_code == 201
    built = await exporter.post(
        f"/v1/chains/{witnessed.keys.chain}/exports",
        json={"kind": "decisions", "decision_ids": ["loan-3", "loan-9"]},
        headers=headers(witnessed.keys.auditor),
    )
    assert built.status_code == 201, built.text
    assert built.json()["overridden"] is None and built.json()["problem"] is None


async def test_a_decision_export_does_not_take_the_read_models_word(
    witnessed: WitnessedChain, exporter: httpx.AsyncClient, database_url: str
) -> None:
    """A selective export picks its entries from the read model's timelines. One that lost the
    decision's last event, or lists another decision's event, is refused (projection-mismatch)
    instead of missing an event or disclosing someone else's. (A lost event in the middle of a
    timeline is for `projections verify`: tests/decisions/test_projection_verify.py.)"""
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, witnessed.name.tenant, witnessed.name.chain)
        await db.execute(
            "DELETE FROM decision_events WHERE chain_id = $1 AND decision_id = 'loan-3' "
            "AND event_type LIKE '%reviewed%'",
            chain,
        )
        await db.execute(
            "INSERT INTO decision_events (chain_id, decision_id, idx, event_type) "
            "SELECT chain_id, 'loan-9', idx, event_type FROM decision_events "
            "WHERE chain_id = $1 AND decision_id = 'loan-5'",
            chain,
        )
    path = f"/v1/chains/{witnessed.keys.chain}/exports"
    for decision, expected in (("loan-3", "absent"), ("loan-9", "an event of 'loan-5'")):
        refused = await exporter.post(
            path,
            json={"kind": "decisions", "decision_ids": [decision]},
            headers=headers(witnessed.keys.auditor),
        )
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["type"].endswith("/projection-mismatch")
        assert (problem["decision_id"], problem["column"]) == (decision, "timeline")
        assert expected in problem["found"]
    await reproject(database_url, chain)
