"""Offline proof files: C2SP tlog-proof@v1 for inclusion, and its sibling for consistency.

A tlog-proof (https://c2sp.org/tlog-proof) is the index of an entry, its RFC 6962 inclusion
proof (leaf's sibling first, one base64 hash per line), an empty line, and the checkpoint the
proof is against, verbatim with its signatures and cosignatures::

    c2sp.org/tlog-proof@v1
    index 73894
    gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
    ...

    <checkpoint signed note>

No C2SP format exists for a consistency proof, so ``audit-trail.dev/tlog-consistency@v1`` has the
same shape: the size of the older tree, the RFC 6962 consistency proof to the newer one, an empty
line, and the older checkpoint verbatim (the newer one is the bundle's checkpoint).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from ledger.errors import ProofError
from ledger.note import uint64_decimal

TLOG_PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"
CONSISTENCY_HEADER: Final = "audit-trail.dev/tlog-consistency@v1"


# A 32-byte hash is 44 base64 characters with one "=" of padding; in the canonical encoding the
# last data character carries two zero bits, so it is one of these.
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")


def _decode_hash(line: str, what: str) -> bytes:
    """A hash from its base64 line: strict, canonical, exactly 32 bytes."""
    if len(line) == 44 and line[43] == "=" and line[42] in _CANONICAL_LAST:
        try:
            return binascii.a2b_base64(line, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    raise ProofError(f"{what}: {line[:60]!r} is not the canonical base64 of a 32-byte hash")


def _hash_lines(lines: list[str], what: str) -> tuple[bytes, ...]:
    return tuple(_decode_hash(line, what) for line in lines)


def _number(line: str, keyword: str, what: str) -> int:
    prefix = keyword + " "
    number = uint64_decimal(line[len(prefix) :]) if line.startswith(prefix) else None
    if number is None:
        raise ProofError(f"{what}: expected '{keyword} <decimal uint64>', found {line[:60]!r}")
    return number


def _split(text: str, header: str, what: str) -> tuple[list[str], str]:
    """The lines before the first empty line (header checked), and the checkpoint after it."""
    head, blank, checkpoint = text.partition("\n\n")
    if not blank:
        raise ProofError(f"{what}: no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != header:
        raise ProofError(f"{what}: first line is {lines[0][:60]!r}, not {header!r}")
    return lines[1:], checkpoint


@dataclass(frozen=True, slots=True)
class TlogProof:
    """An inclusion proof of one entry against a checkpoint (signed note text, verbatim)."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def to_text(self) -> str:
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(binascii.b2a_base64(h, newline=False).decode() for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str, *, what: str = "tlog-proof") -> TlogProof:
        lines, checkpoint = _split(text, TLOG_PROOF_HEADER, what)
        extra = None
        if lines and lines[0].startswith("extra "):
            try:
                extra = base64.b64decode(lines[0][6:], validate=True)
            except (binascii.Error, ValueError):
                raise ProofError(f"{what}: extra data is not base64") from None
            lines = lines[1:]
        if not lines:
            raise ProofError(f"{what}: no index line")
        index = _number(lines[0], "index", what)
        hashes = _hash_lines(lines[1:], what)
        return cls(index=index, hashes=hashes, checkpoint=checkpoint, extra=extra)


def split_tlog_proofs(text: str) -> Iterator[str]:
    """The tlog-proof documents of a concatenation of them, each starting with its header line.

    The header cannot occur inside a document (a checkpoint's lines are its origin, size, root
    and signature lines), so each header line starts the next document.
    """
    marker = TLOG_PROOF_HEADER + "\n"
    if text and not text.startswith(marker):
        raise ProofError(f"proof file does not start with {TLOG_PROOF_HEADER!r}")
    start = 0
    while start < len(text):
        following = text.find("\n" + marker, start)
        end = len(text) if following < 0 else following + 1
        yield text[start:end]
        start = end


def read_tlog_proofs(chunks: Iterable[bytes]) -> Iterator[str]:
    """`split_tlog_proofs` over a stream: the documents of a concatenation of them, read in
    chunks, holding no more than one document at a time."""
    marker = (TLOG_PROOF_HEADER + "\n").encode()
    document: list[bytes] = []
    pending: list[bytes] = []  # of the line not yet ended
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending.append(chunk[start : end + 1])
            line = b"".join(pending)
            pending, start = [], end + 1
            if line == marker and document:
                yield b"".join(document).decode("utf-8")
                document = []
            elif not document and line != marker:
                raise ProofError(f"proof file does not start with {TLOG_PROOF_HEADER!r}")
            document.append(line)
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending and not document:
        raise ProofError(f"proof file does not start with {TLOG_PROOF_HEADER!r}")
    document.extend(pending)
    if document:
        yield b"".join(document).decode("utf-8")


@dataclass(frozen=True, slots=True)
class ConsistencyProofFile:
    """A consistency proof from an older checkpoint (verbatim) to a newer one."""

    old_size: int
    hashes: tuple[bytes, ...]
    old_checkpoint: str

    def to_text(self) -> str:
        lines = [CONSISTENCY_HEADER, f"old {self.old_size}"]
        lines.extend(base64.b64encode(h).decode() for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.old_checkpoint

    @classmethod
    def parse(cls, text: str, *, what: str = "consistency proof") -> ConsistencyProofFile:
        lines, checkpoint = _split(text, CONSISTENCY_HEADER, what)
        if not lines:
            raise ProofError(f"{what}: no 'old' line")
        old_size = _number(lines[0], "old", what)
        hashes = _hash_lines(lines[1:], what)
        return cls(old_size=old_size, hashes=hashes, old_checkpoint=checkpoint)
