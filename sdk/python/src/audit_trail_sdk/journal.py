"""A local, append-only journal of events not yet delivered, replayed on the next start.

Each segment is a file of one encoded event per line, created mode 0600, written only by
appending and deleted once every event in it has been acknowledged or reported refused. With
a key, each line is sealed with AES-256-GCM (a fresh 96-bit nonce per line, NIST SP 800-38D
§8.2.2) and the segment's name as associated data, so a line moved to another file does not
open. Personal data in a segment is outside the log's erasure until it is delivered.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from audit_trail_sdk.errors import ConfigurationError, JournalFull

log = logging.getLogger("audit_trail_sdk")

SUFFIX = ".events"
SEALED_SUFFIX = ".sealed"


class Journal:
    def __init__(self, directory: Path, *, max_bytes: int, key: bytes | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._cipher: Any = None
        if key is not None:
            try:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError:
                raise ConfigurationError(
                    "an encrypted journal needs the 'receipts' extra (cryptography)"
                ) from None
            self._cipher = AESGCM(key)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._current: tuple[Path, int] | None = None  # (path, file descriptor)
        self._sealed: list[Path] = []
        self._size = sum(path.stat().st_size for path in self._segments_on_disk())

    def _segments_on_disk(self) -> list[Path]:
        # Both kinds, whatever this run's key: a segment written before a key was set is
        # still sent, and a sealed one read without its key is reported, never skipped.
        segments = [*self.directory.glob("segment-*" + SUFFIX)]
        segments += self.directory.glob("segment-*" + SEALED_SUFFIX)
        return sorted(segments, key=lambda path: path.name)

    def left_behind(self) -> list[Path]:
        """Segments a previous process left: the next to send."""
        return self._segments_on_disk()

    def append(self, bodies: list[bytes], *, first_sequence: int) -> None:
        """Write encoded events to the current segment; raise ``JournalFull`` when the
        directory would grow past its bound."""
        with self._lock:
            if self._current is None:
                path = self.directory / self._new_name(first_sequence)
                descriptor = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
                )
                self._current = (path, descriptor)
            self._write(*self._current, bodies)

    def write_segment(self, bodies: list[bytes], *, first_sequence: int) -> None:
        """Write encoded events to a segment of their own, sealed at once."""
        with self._lock:
            path = self.directory / self._new_name(first_sequence)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                self._write(path, descriptor, bodies)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def _write(self, path: Path, descriptor: int, bodies: list[bytes]) -> None:
        lines = b"".join(self._line(path, body) for body in bodies)
        if self._size + len(lines) > self.max_bytes:
            raise JournalFull(
                f"the journal {self.directory} holds {self._size} bytes of at most {self.max_bytes}"
            )
        os.write(descriptor, lines)
        self._size += len(lines)

    def seal_current(self) -> None:
        """Close the segment being written (flushed to disk), so it can be sent and deleted."""
        with self._lock:
            if self._current is not None:
                path, descriptor = self._current
                os.fsync(descriptor)
                os.close(descriptor)
                self._sealed.append(path)
                self._current = None

    def take_sealed(self) -> list[Path]:
        with self._lock:
            taken, self._sealed = self._sealed, []
            return taken

    def read(self, path: Path) -> list[bytes]:
        bodies = []
        for line in path.read_bytes().splitlines():
            if not line:
                continue
            if path.suffix == SUFFIX:
                bodies.append(line)
            elif self._cipher is None:
                raise ConfigurationError(f"{path.name} is sealed: journal_key is needed")
            else:
                sealed = base64.b64decode(line)
                bodies.append(self._cipher.decrypt(sealed[:12], sealed[12:], path.name.encode()))
        return bodies

    def remove(self, path: Path) -> None:
        with self._lock:
            size = path.stat().st_size
            path.unlink()
            self._size -= size

    def forget_after_fork(self) -> None:
        """A forked child writes segments of its own and leaves the parent's alone."""
        self._lock = threading.Lock()
        self._current = None
        self._sealed = []

    def _line(self, path: Path, body: bytes) -> bytes:
        if self._cipher is None:
            return body + b"\n"
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._cipher.encrypt(nonce, body, path.name.encode())
        return base64.b64encode(sealed) + b"\n"

    def _new_name(self, first_sequence: int) -> str:
        # Sorted by name, a producer's segments replay in sequence order (those its exit kept
        # hold lower numbers than those it spilled before); then what tells apart two
        # processes starting a segment in the same nanosecond.
        suffix = SEALED_SUFFIX if self._cipher else SUFFIX
        return (
            f"segment-{first_sequence:020d}-{time.time_ns():020d}-{os.getpid()}-"
            f"{secrets.token_hex(4)}{suffix}"
        )
