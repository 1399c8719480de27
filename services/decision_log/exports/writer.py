"""Writes one export bundle (the zip described in `ledger.bundle`) from entries and proof nodes.

The writer is fed entries in index order, a block at a time, with the Merkle nodes their proofs
need; it appends each leaf and its tlog-proof to spooled files, hashing as it goes, and at the end
writes the zip: small files first, the two large ones copied in, then SHA256SUMS and the manifest
signed by the log. It does no database I/O, so the CPU-bound part can run in a worker thread.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import zipfile
from collections.abc import Sequence
from typing import IO, Any

import orjson
from ledger.bundle import (
    ATTESTATION,
    BUNDLE_JSON,
    CHECKPOINT,
    ENTRIES,
    INCLUSION_PROOFS,
    MANIFEST,
    SHA256SUMS,
    consistency_member,
    manifest_statement,
    sha256sums,
)
from ledger.dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from ledger.keys import SigningKey
from ledger.proofs import ConsistencyProofFile, TlogProof

from decision_log.exports.proving import ExportedEntry
from decision_log.exports.report import (
    OVERRIDE_NOTICE,
    README,
    BundleSummary,
    render_report,
    warnings_text,
)

# Deflate at its fastest level: leaves are JSON and compress well even so, and the repeated
# checkpoint in every proof is within deflate's window.
_COMPRESS_LEVEL = 1
_SPOOL_BYTES = 16 * 1024 * 1024


class _HashedSpool:
    """A spooled temporary file that keeps the SHA-256 of what was written."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha256.update(data)
        self.size += len(data)


def bundle_json(info: dict[str, Any]) -> bytes:
    """bundle.json: an override and acknowledged findings first, where a reader starts; the
    rest in key order."""
    first = {key: info[key] for key in ("override", "acknowledged_findings") if info.get(key)}
    rest = {key: value for key, value in sorted(info.items()) if key not in first}
    return orjson.dumps({**first, **rest}, option=orjson.OPT_INDENT_2)


class BundleWriter:
    def __init__(self, *, info: dict[str, Any], checkpoint_note: str) -> None:
        self.info = info
        self.checkpoint_note = checkpoint_note
        self.summary = BundleSummary()
        self._entries = _HashedSpool()
        self._proofs = _HashedSpool()
        self._files: dict[str, bytes] = {}

    def add_entries(self, entries: Sequence[ExportedEntry]) -> None:
        """Entries in index order, each with its inclusion proof against the checkpoint; the
        leaf bytes written are the ones that were checked."""
        leaves: list[bytes] = []
        proofs: list[str] = []
        for entry in entries:
            self.summary.add(orjson.loads(entry.leaf))
            leaves.append(entry.leaf)
            leaves.append(b"\n")
            proofs.append(
                TlogProof(
                    index=entry.index, hashes=tuple(entry.proof), checkpoint=self.checkpoint_note
                ).to_text()
            )
        self._entries.write(b"".join(leaves))
        self._proofs.write("".join(proofs).encode())

    def add_file(self, name: str, data: bytes) -> None:
        self._files[name] = data

    def set_override(
        self,
        *,
        reason: str,
        requested_by: str,
        failures: list[dict[str, Any]],
        failures_total: int,
    ) -> None:
        """The bundle was built under an administrator's override: said first in bundle.json,
        README.txt and report.html, with every check that failed (at most 100 listed)."""
        self.info["override"] = {
            "notice": OVERRIDE_NOTICE
            if failures_total
            else "Exported under an administrator's override; every check passed.",
            "reason": reason,
            "requested_by": requested_by,
            "failures": failures,
            "failures_total": failures_total,
        }

    def add_consistency(self, *, old_size: int, hashes: Sequence[bytes], old_note: str) -> None:
        proof = ConsistencyProofFile(
            old_size=old_size, hashes=tuple(hashes), old_checkpoint=old_note
        )
        self.add_file(consistency_member(old_size), proof.to_text().encode())

    def add_attestation(self, envelope: dict[str, Any]) -> None:
        self.add_file(ATTESTATION, orjson.dumps(envelope, option=orjson.OPT_INDENT_2))

    def finish(self, out: IO[bytes], *, key: SigningKey, verification: list[str]) -> None:
        """Write the zip to `out`: every file, SHA256SUMS and the signed manifest."""
        self.info["entries"] = {
            "count": self.summary.entries,
            "first_received_at": self.summary.first_received,
            "last_received_at": self.summary.last_received,
        }
        small = {
            "README.txt": (
                warnings_text(self.info)
                + README.format(origin=self.info["origin"], log_name=self.info["log"]["name"])
            ).encode(),
            "report.html": render_report(
                info=self.info, summary=self.summary, verification=verification
            ),
            BUNDLE_JSON: bundle_json(self.info),
            CHECKPOINT: self.checkpoint_note.encode(),
            **dict(sorted(self._files.items())),
        }
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in small.items()}
        sizes = {name: len(data) for name, data in small.items()}
        for name, spool in ((ENTRIES, self._entries), (INCLUSION_PROOFS, self._proofs)):
            digests[name] = spool.sha256.hexdigest()
            sizes[name] = spool.size
        with zipfile.ZipFile(
            out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL
        ) as archive:
            for name, data in small.items():
                archive.writestr(name, data)
            for name, spool in ((ENTRIES, self._entries), (INCLUSION_PROOFS, self._proofs)):
                spool.file.seek(0)
                # Its size known up front, zipfile writes zip64 fields only where they are
                # needed, as verify-bundle requires.
                member_info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
                member_info.compress_type = zipfile.ZIP_DEFLATED
                member_info._compresslevel = _COMPRESS_LEVEL  # type: ignore[attr-defined]
                member_info.file_size = spool.size
                with archive.open(member_info, "w") as member:
                    shutil.copyfileobj(spool.file, member, 1024 * 1024)
                spool.file.close()
            archive.writestr(SHA256SUMS, sha256sums(digests))
            statement = manifest_statement(
                digests,
                {
                    "bundle_format": self.info["format"],
                    "origin": self.info["origin"],
                    "checkpoint": self.info["checkpoint"],
                    "selection": self.info["selection"],
                    "created_at": self.info["created_at"],
                },
                sizes,
            )
            envelope = sign_envelope(payload_type=IN_TOTO_PAYLOAD_TYPE, payload=statement, key=key)
            archive.writestr(MANIFEST, orjson.dumps(envelope, option=orjson.OPT_INDENT_2))
