"""The keys a deployment starts from (docs/deployment.md): the log's personal-data keys made by
`audit-trail privacy create-keys`, and the verifier's, made and shown by `audit-trail verifier
key` and registered with the log by `audit-trail witnesses add`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from decision_log.privacy.keyring import Keyring
from ledger.keys import read_private_key
from ledger.note import CosignatureSigner, NoteSignature, NoteVerifier, verify_cosignature

NAME = "verifier.example.com/witness"
CHECKPOINT = (
    "audit-trail.example.com/log/acme/loans\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
)


def audit_trail(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "audit_trail", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_key_shown_verifies_the_verifiers_cosignatures(tmp_path: Path) -> None:
    key_file = tmp_path / "verifier-ed25519.pem"
    shown = audit_trail("verifier", "key", "--key-file", str(key_file), "--name", NAME).strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The same key on every later call (the file is read, not replaced), configured as the
    # verifier's own settings are.
    again = audit_trail(
        "verifier",
        "key",
        env={"AUDIT_TRAIL_VERIFIER_KEY_FILE": str(key_file), "AUDIT_TRAIL_VERIFIER_NAME": NAME},
    )
    assert again.strip() == shown

    cosigner = CosignatureSigner(name=NAME, key=read_private_key(key_file))
    line = cosigner.sign(CHECKPOINT, timestamp=1_700_000_000)
    verifier = NoteVerifier.from_verifier_key(shown)
    signature = NoteSignature.from_line(line)
    assert verify_cosignature(CHECKPOINT, signature, verifier) == 1_700_000_000


def test_the_log_registers_the_key_shown_as_a_witness(tmp_path: Path, database_url: str) -> None:
    key_file = tmp_path / "verifier-ed25519.pem"
    shown = audit_trail("verifier", "key", "--key-file", str(key_file), "--name", NAME).strip()
    env = {"AUDIT_TRAIL_DATABASE_URL": database_url}
    added = json.loads(audit_trail("witnesses", "add", shown, "--label", "bootstrap", env=env))
    assert added["api_key"]
    listed = json.loads(audit_trail("witnesses", "list", env=env))
    assert shown in {witness["verifier_key"] for witness in listed}


def test_the_personal_data_keys_are_created_once_and_load(tmp_path: Path) -> None:
    files = {
        "AUDIT_TRAIL_KEK_FILE": str(tmp_path / "kek.json"),
        "AUDIT_TRAIL_PSEUDONYM_KEY_FILE": str(tmp_path / "pseudonym.key"),
    }
    audit_trail("privacy", "create-keys", env=files)
    contents = {name: Path(path).read_bytes() for name, path in files.items()}
    for path in files.values():
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    audit_trail("privacy", "create-keys", env=files)  # never overwritten
    assert {name: Path(path).read_bytes() for name, path in files.items()} == contents
    Keyring.load(
        kek_file=Path(files["AUDIT_TRAIL_KEK_FILE"]),
        pseudonym_key_file=Path(files["AUDIT_TRAIL_PSEUDONYM_KEY_FILE"]),
    )
