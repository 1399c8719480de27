"""A holder tampers with a bundle in every way open to them; verify-bundle fails every time and
names the file (and entry) at fault. Where the tamperer could not also forge the log's signature,
the manifest catches it; the deeper checks are shown by re-signing with the real log key, as a
faulty exporter would."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
import typer
from audit_trail.bundles import verify_bundle_command
from audit_trail.cli import app as cli
from decision_log.app import create_app
from decision_log.settings import Settings
from decision_log.signing import LogSigner
from ledger.bundle import (
    ATTESTATION,
    BUNDLE_JSON,
    CHECKPOINT,
    ENTRIES,
    INCLUSION_PROOFS,
    MANIFEST,
    SHA256SUMS,
    BundleError,
    verify_bundle,
)
from ledger.dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from ledger.keys import SigningKey, read_private_key
from ledger.note import CosignatureSigner, NoteSigner, NoteVerifier, sign_note
from ledger.proofs import split_tlog_proofs
from typer.testing import CliRunner

from tests.decisions.helpers import projected, recorded, reviewed
from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import append, headers, wait_for_checkpoint
from tests.service.test_privacy import PLAINTEXT_MARK, personal_event
from tests.verifier.bundles import export, resign, rezip, unzip
from tests.verifier.conftest import append_and_checkpoint

Files = dict[str, bytes]


@pytest.fixture
async def bundle(exporter: httpx.AsyncClient, database_url: str, signer: LogSigner) -> Files:
    tenant = await make_tenant(database_url, signer)
    events = [recorded(f"loan-{i}") for i in range(8)] + [reviewed("loan-2")]
    assert await append_and_checkpoint(exporter, tenant, events) == 9
    await projected(database_url)
    _, data = await export(exporter, tenant, {"kind": "range"})
    return unzip(data)


def failure(
    files: Files, log_vkey: NoteVerifier, cosigner: CosignatureSigner | None = None
) -> BundleError:
    with pytest.raises(BundleError) as caught:
        verify_bundle(
            rezip(files),
            log_key=log_vkey,
            verifier_key=None if cosigner is None else cosigner.verifier,
        )
    return caught.value


def lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def edit_leaf(files: Files) -> Files:
    entries = lines(files[ENTRIES])
    entries[3] = entries[3].replace(b"declined", b"approved")
    return {**files, ENTRIES: b"".join(entries)}


def drop_entry(files: Files) -> Files:
    entries = lines(files[ENTRIES])
    proofs = list(split_tlog_proofs(files[INCLUSION_PROOFS].decode()))
    del entries[4], proofs[4]
    return {**files, ENTRIES: b"".join(entries), INCLUSION_PROOFS: "".join(proofs).encode()}


def reorder(files: Files) -> Files:
    entries = lines(files[ENTRIES])
    proofs = list(split_tlog_proofs(files[INCLUSION_PROOFS].decode()))
    entries[2], entries[5] = entries[5], entries[2]
    proofs[2], proofs[5] = proofs[5], proofs[2]
    return {**files, ENTRIES: b"".join(entries), INCLUSION_PROOFS: "".join(proofs).encode()}


HOLDER_EDITS: dict[str, tuple[Callable[[Files], Files], str]] = {
    "edit a leaf": (edit_leaf, ENTRIES),
    "drop an entry": (drop_entry, ENTRIES),
    "reorder entries": (reorder, ENTRIES),
    "edit the report": (
        lambda f: {**f, "report.html": f["report.html"].replace(b"Audit", b"Edited")},
        "report.html",
    ),
    "add a file": (lambda f: {**f, "extra.txt": b"trust me"}, "extra.txt"),
    "remove the attestation": (
        lambda f: {k: v for k, v in f.items() if k != ATTESTATION},
        ATTESTATION,
    ),
}


@pytest.mark.parametrize("edit", list(HOLDER_EDITS))
async def test_any_edit_breaks_the_signed_manifest(
    bundle: Files, log_vkey: NoteVerifier, edit: str
) -> None:
    change, member = HOLDER_EDITS[edit]
    error = failure(change(bundle), log_vkey)
    assert error.member == member, str(error)


async def test_edited_sha256sums_disagree_with_the_signed_manifest(
    bundle: Files, log_vkey: NoteVerifier
) -> None:
    edited = edit_leaf(bundle)
    forged = resign(edited, SigningKey.generate())  # right digests, wrong signer
    sums_only = {**edited, SHA256SUMS: forged[SHA256SUMS]}
    error = failure(sums_only, log_vkey)
    assert error.member == SHA256SUMS and "disagrees with the signed manifest" in error.message


async def test_an_edited_manifest_or_a_stripped_signature_fails(
    bundle: Files, log_vkey: NoteVerifier
) -> None:
    envelope = orjson.loads(bundle[MANIFEST])
    statement = orjson.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(orjson.dumps(statement)).decode()
    error = failure({**bundle, MANIFEST: orjson.dumps(envelope)}, log_vkey)
    assert error.member == MANIFEST and "does not verify" in error.message
    stripped = {**orjson.loads(bundle[MANIFEST]), "signatures": []}
    error = failure({**bundle, MANIFEST: orjson.dumps(stripped)}, log_vkey)
    assert error.member == MANIFEST and "no signatures" in error.message


async def test_a_bundle_re_signed_with_another_key_fails_against_the_real_one(
    bundle: Files, log_vkey: NoteVerifier
) -> None:
    attacker = SigningKey.generate()
    attacker_vkey = NoteSigner(name=log_vkey.name, key=attacker).verifier_key
    forged = resign(
        {**edit_leaf(bundle), "keys/log.vkey": (attacker_vkey + "\n").encode()}, attacker
    )
    error = failure(forged, log_vkey)
    assert error.member == MANIFEST and "not signed by the log key given" in error.message


async def test_content_checks_catch_what_a_re_signed_manifest_would_hide(
    bundle: Files, log_vkey: NoteVerifier, settings: Settings, cosigner: CosignatureSigner
) -> None:
    key = read_private_key(settings.log_key_file)
    error = failure(resign(edit_leaf(bundle), key), log_vkey)
    assert (error.member, error.index) == (ENTRIES, 3) and "not the one committed" in error.message
    error = failure(resign(drop_entry(bundle), key), log_vkey)
    assert error.member == ENTRIES and "every entry in [0, 9)" in error.message
    error = failure(resign(reorder(bundle), key), log_vkey)
    assert error.member == ENTRIES and "not in index order" in error.message
    # Another checkpoint the log really signed (an earlier one) is not the one proved against.
    info = orjson.loads(bundle[BUNDLE_JSON])
    older = sign_note(
        f"{info['origin']}\n3\n{base64.b64encode(bytes(32)).decode()}\n",
        [NoteSigner(name=log_vkey.name, key=key)],
    )
    error = failure(resign({**bundle, CHECKPOINT: older.encode()}, key), log_vkey)
    assert error.member == CHECKPOINT and "differ from bundle.json" in error.message
    # A stripped cosignature: the checkpoint no longer carries the verifier's signature.
    uncosigned = b"".join(
        line for line in lines(bundle[CHECKPOINT]) if cosigner.name.encode() not in line
    )
    error = failure(resign({**bundle, CHECKPOINT: uncosigned}, key), log_vkey, cosigner)
    assert error.member == CHECKPOINT and "no cosignature by the verifier" in error.message
    error = failure(
        resign({k: v for k, v in bundle.items() if k != ATTESTATION}, key), log_vkey, cosigner
    )
    assert error.member == ATTESTATION and "no verifier attestation" in error.message


async def test_the_cli_verifies_and_names_the_first_failure(
    bundle: Files, log_vkey: NoteVerifier, cosigner: CosignatureSigner, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(rezip(bundle).getvalue())
    bad.write_bytes(rezip(edit_leaf(bundle)).getvalue())
    key_file = tmp_path / "log.vkey"
    key_file.write_text(log_vkey.verifier_key + "\n")
    runner = CliRunner()
    ok = runner.invoke(
        cli,
        [
            "verify-bundle",
            str(good),
            "--log-key",
            str(key_file),
            "--verifier-key",
            cosigner.verifier_key,
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "VERIFIED" in ok.output and "OK attestation" in ok.output
    failed = runner.invoke(cli, ["verify-bundle", str(bad), "--log-key", log_vkey.verifier_key])
    assert failed.exit_code == 1
    assert "FAILED entries.jsonl: has SHA-256" in failed.output


async def test_erased_personal_data_stays_unreadable_and_the_bundle_verifies(
    exporter: httpx.AsyncClient,
    settings: Settings,
    database_url: str,
    signer: LogSigner,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    tenant: TenantKeys = await make_tenant(database_url, signer)
    erased, kept = "erased-" + secrets.token_hex(4), "kept-" + secrets.token_hex(4)
    for subject in (erased, kept):
        response = await append(exporter, tenant.producer, tenant.chain, personal_event(subject))
        assert response.status_code == 201
    later = create_app(settings, clock=lambda: datetime.now(UTC) + timedelta(days=200))
    async with later.router.lifespan_context(later):
        transport = httpx.ASGITransport(app=later)
        async with httpx.AsyncClient(transport=transport, base_url="http://later") as http:
            done = await http.post(
                "/v1/subjects/erase",
                json={"subject": erased, "reason": "GDPR Art. 17"},
                headers=headers(tenant.admin),
            )
            assert done.status_code == 200, done.text
    await wait_for_checkpoint(exporter, tenant.auditor, tenant.chain, size=3)
    _, data = await export(exporter, tenant, {"kind": "range"})
    files = unzip(data)
    everything = b"".join(files.values())
    assert PLAINTEXT_MARK.encode() not in everything
    assert erased.encode() not in everything and kept.encode() not in everything
    report = verify_bundle(rezip(files), log_key=log_vkey, verifier_key=cosigner.verifier)
    assert report.entries == 3  # two sealed events and the erasure record
    # The erased subject's sealed event points at a key that no longer exists; the other's does.
    pseudonyms = [
        orjson.loads(line)["event"].get("datasubject") for line in files[ENTRIES].splitlines()
    ][:2]
    connection = await asyncpg.connect(database_url)
    try:
        destroyed = await connection.fetch(
            "SELECT s.pseudonym, s.destroyed_at IS NOT NULL AS gone FROM subject_keys s "
            "JOIN tenants t ON t.id = s.tenant_id WHERE t.slug = $1",
            tenant.tenant,
        )
    finally:
        await connection.close()
    assert {row["pseudonym"]: row["gone"] for row in destroyed} == {
        pseudonyms[0]: True,
        pseudonyms[1]: False,
    }


async def test_verify_bundle_needs_none_of_the_server_code(
    bundle: Files, log_vkey: NoteVerifier, cosigner: CosignatureSigner, tmp_path: Path
) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(rezip(bundle).getvalue())
    script = (
        "import sys\n"
        "for name in ('decision_log', 'verifier', 'sqlalchemy', 'asyncpg', 'fastapi'):\n"
        "    sys.modules[name] = None  # importing any of them now fails\n"
        "sys.argv = ['audit-trail', 'verify-bundle', *sys.argv[1:]]\n"
        "from audit_trail.entry import main\n"
        "main()\n"
    )

    def verify(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, str(path), "--log-key", log_vkey.verifier_key, *options],
            capture_output=True,
            text=True,
            check=False,
        )

    witnessed = verify("--verifier-key", cosigner.verifier_key)
    assert witnessed.returncode == 0, witnessed.stderr
    assert "VERIFIED" in witnessed.stdout
    # Without the verifier's key the bundle is at best consistent with the log's: never a bare
    # VERIFIED, and a status of its own.
    alone = verify()
    assert alone.returncode == 2, alone.stderr
    assert "consistent with the log key only, not witnessed" in alone.stdout
    assert "VERIFIED" not in alone.stdout


async def test_a_zip_damaged_anywhere_fails_cleanly(
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A byte flipped anywhere, as a bad disk or a broken download does: verify-bundle says
    VERIFIED (a byte the zip format ignores) or FAILED and exits 1, never with a traceback."""
    tenant = await make_tenant(database_url, signer)
    events = [recorded("loan-1"), recorded("loan-2")]
    assert await append_and_checkpoint(exporter, tenant, events) == 2
    _, data = await export(exporter, tenant, {"kind": "range"})  # deflated, as the log writes
    # The end of central directory record, the last 22 bytes (the log writes no zip comment),
    # holds the directory's offset (APPNOTE.TXT 4.3.16). Every byte from there on is flipped
    # (damage found while opening the zip), and a stride through the compressed members before
    # it (found while inflating them): some 1,600 runs, a few seconds.
    directory = int.from_bytes(data[-6:-2], "little")
    offsets = [*range(0, directory, directory // 100), *range(directory, len(data))]
    damaged = tmp_path / "damaged.zip"
    verdicts: dict[str, int] = {"VERIFIED": 0, "FAILED": 0}
    for offset in offsets:
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        damaged.write_bytes(flipped)
        # The command itself, as `audit-trail verify-bundle` runs it; any exception but its exit
        # is the traceback the command must never print.
        try:
            verify_bundle_command(
                damaged, log_key=log_vkey.verifier_key, verifier_key=cosigner.verifier_key
            )
            verdict = "VERIFIED"
        except typer.Exit as stopped:
            assert stopped.exit_code == 1
            verdict = "FAILED"
        printed = capsys.readouterr()
        said = printed.out.splitlines()[-1] if verdict == "VERIFIED" else printed.err
        assert said.startswith(verdict), (offset, printed)
        verdicts[verdict] += 1
    assert verdicts["FAILED"] > len(offsets) // 2, verdicts


def run_verify(
    path: Path,
    log_vkey: NoteVerifier,
    capsys: pytest.CaptureFixture[str],
    *,
    verifier_key: str | None = None,
    accept: list[str] | None = None,
) -> tuple[int, str]:
    try:
        verify_bundle_command(
            path,
            log_key=log_vkey.verifier_key,
            verifier_key=verifier_key,
            accept_acknowledged=accept,
        )
        status = 0
    except typer.Exit as stopped:
        status = stopped.exit_code
    printed = capsys.readouterr()
    return status, printed.out + printed.err


async def test_a_bundle_spanning_an_acknowledged_finding_must_be_accepted_by_id(
    bundle: Files,
    log_vkey: NoteVerifier,
    settings: Settings,
    cosigner: CosignatureSigner,
    verifier_key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The verifier's attestation names the acknowledged findings its range spans (predicate
    ``acknowledged_findings``); such an attestation is issued here with the verifier's own key,
    and the bundle re-signed with the log's, as the log would build it."""
    envelope = orjson.loads(bundle[ATTESTATION])
    statement = orjson.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["acknowledged_findings"] = [
        {
            "id": 7,
            "kind": "missing-entry",
            "first_bad_index": 4,
            "acknowledged_by": "ops@example.test",
            "reason": "entry 4 restored from the backup",
            "acknowledged_at": "2026-12-01T10:00:00Z",
        }
    ]
    attested = sign_envelope(
        payload_type=IN_TOTO_PAYLOAD_TYPE,
        payload=orjson.dumps(statement),
        key=read_private_key(verifier_key_file),
    )
    log_key = read_private_key(settings.log_key_file)
    path = tmp_path / "acknowledged.zip"
    path.write_bytes(
        rezip(resign({**bundle, ATTESTATION: orjson.dumps(attested)}, log_key)).getvalue()
    )
    key = cosigner.verifier_key
    status, said = run_verify(path, log_vkey, capsys, verifier_key=key)
    assert status == 3, said
    assert "ACKNOWLEDGED   finding 7: missing-entry at index 4" in said
    assert "ops@example.test" in said and "--accept-acknowledged" in said
    assert run_verify(path, log_vkey, capsys, verifier_key=key, accept=["8"])[0] == 3
    status, said = run_verify(path, log_vkey, capsys, verifier_key=key, accept=["7"])
    assert status == 0 and "VERIFIED" in said, said


async def test_a_cosignature_the_bundle_claims_must_verify_even_without_the_key(
    bundle: Files,
    log_vkey: NoteVerifier,
    settings: Settings,
    cosigner: CosignatureSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --verifier-key the bundle's own copy of the verifier's key still checks what the
    bundle claims: a claimed cosignature that is not there fails (1), not 'not witnessed' (2)."""
    uncosigned = b"".join(
        line for line in lines(bundle[CHECKPOINT]) if cosigner.name.encode() not in line
    )
    log_key = read_private_key(settings.log_key_file)
    path = tmp_path / "uncosigned.zip"
    path.write_bytes(rezip(resign({**bundle, CHECKPOINT: uncosigned}, log_key)).getvalue())
    status, said = run_verify(path, log_vkey, capsys)
    assert status == 1, said
    assert "FAILED checkpoint.txt (cosignature): has no cosignature by the verifier" in said
