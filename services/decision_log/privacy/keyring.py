"""The secrets of personal-data protection, kept outside the database.

``kek.json`` holds the key-encryption keys: ``{"active": <id>, "keys": {<id>: <base64>}}``. New
data keys are wrapped under the active KEK; any listed KEK unwraps. Rotation adds a new active
KEK, rewraps every surviving data key under it (``privacy.service.rotate_kek``), then removes the
old KEK from the file: from then on, no copy of a destroyed data key (free space, WAL, backups)
can be unwrapped by anything left. The pseudonym key (32 random bytes) keys the data-subject
HMAC and the idempotency digest.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from decision_log.problems import Unavailable


@dataclass
class Keyring:
    kek_file: Path
    pseudonym_key: bytes
    active_kek_id: str
    keks: dict[str, bytes] = field(repr=False)
    loaded_version: int = 0

    @classmethod
    def load(cls, *, kek_file: Path, pseudonym_key_file: Path) -> Keyring:
        active, keks = read_kek_file(kek_file)
        pseudonym_key = base64.b64decode(pseudonym_key_file.read_text().strip())
        if len(pseudonym_key) != 32:
            raise ValueError(f"{pseudonym_key_file} must hold 32 bytes, base64")
        return cls(
            kek_file=kek_file,
            pseudonym_key=pseudonym_key,
            active_kek_id=active,
            keks=keks,
            loaded_version=kek_file.stat().st_mtime_ns,
        )

    def refresh(self) -> None:
        """Follow a rotation made by another process: new keys go under the new KEK, and a
        retired KEK leaves this process's memory too."""
        version = self.kek_file.stat().st_mtime_ns
        if version != self.loaded_version:
            self.active_kek_id, self.keks = read_kek_file(self.kek_file)
            self.loaded_version = version

    @property
    def active_kek(self) -> bytes:
        self.refresh()
        return self.keks[self.active_kek_id]

    def kek(self, kek_id: str) -> bytes:
        if kek_id not in self.keks:
            self.refresh()
        if kek_id not in self.keks:
            raise Unavailable(f"key-encryption key {kek_id} is not available to this service")
        return self.keks[kek_id]


def read_kek_file(path: Path) -> tuple[str, dict[str, bytes]]:
    document = json.loads(path.read_text())
    keks = {kek_id: base64.b64decode(value) for kek_id, value in document["keys"].items()}
    if document["active"] not in keks or any(len(k) != 32 for k in keks.values()):
        raise ValueError(f"{path}: the active KEK must be listed; every KEK is 32 bytes")
    return document["active"], keks


def write_kek_file(path: Path, active: str, keks: dict[str, bytes]) -> None:
    """Replace the file atomically (write, fsync, rename), readable by its owner only.

    The temporary file is new and ours: a unique name, created with O_EXCL and O_NOFOLLOW, so a
    file or symlink planted beforehand (say a world-readable ``kek.json.tmp``) is never written
    through or kept, and its mode is set exactly, whatever the umask."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(
                {
                    "active": active,
                    "keys": {k: base64.b64encode(v).decode() for k, v in keks.items()},
                },
                handle,
                indent=2,
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def new_kek_id(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"kek-{moment}-{secrets.token_hex(3)}"


def create_files(*, kek_file: Path, pseudonym_key_file: Path) -> None:
    """First start: one KEK and a pseudonym key, each in a 0600 file; never overwritten."""
    if not kek_file.exists():
        write_kek_file(kek_file, (kek_id := new_kek_id()), {kek_id: secrets.token_bytes(32)})
    if not pseudonym_key_file.exists():
        descriptor = os.open(
            pseudonym_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(descriptor, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
