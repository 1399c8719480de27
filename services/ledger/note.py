"""C2SP signed notes, tlog checkpoints and tlog cosignatures (Ed25519).

- signed-note (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line, then one
  signature line per signer, ``— <key name> base64(key ID || signature)``. The key ID is the
  first four bytes of SHA-256(key name || 0x0A || signature type || public key).
- tlog-checkpoint (c2sp.org/tlog-checkpoint): the note text ``<origin>\\n<size>\\n
  base64(<root hash>)\\n`` plus optional extension lines. We accept SHA-256 RFC 6962 roots only.
- tlog-cosignature (c2sp.org/tlog-cosignature), cosignature/v1: a witness's note signature of
  type 0x04 whose payload is an 8-byte big-endian timestamp and an Ed25519 signature over
  ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint text.

Our log signs every chain's checkpoint under one key name, the log origin, while each
checkpoint's origin line is ``<log origin>/<tenant>/<chain>``. tlog-checkpoint says the key name
SHOULD match the origin line; we deviate on purpose, so that one verifier key checks every chain
and publishing it reveals no chain names.

Errors: a malformed note, checkpoint or verifier key, or a signature that fails, raises
`NoteError`. Invalid arguments from the caller (a key name with a space, a timestamp out of
range, checkpoint fields that cannot be written, a note with no signer) raise `ValueError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ledger.errors import NoteError, SignatureError
from ledger.keys import SigningKey, VerifyingKey

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Checkpoint",
    "CosignatureSigner",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "OpenedNote",
    "note_key_id",
    "open_note",
    "sign_note",
    "verify_cosignature",
]

ALG_ED25519: Final = 0x01  # signed-note §"Signature types"
ALG_COSIGNATURE_V1: Final = 0x04  # tlog-cosignature, Ed25519 with a timestamp
_SUPPORTED_ALGS: Final = frozenset({ALG_ED25519, ALG_COSIGNATURE_V1})

# signed-note asks verifiers to cap the signatures they process and to accept at least 16;
# 100 is golang.org/x/mod's cap, so a note it opens, we open.
MAX_SIGNATURES: Final = 100

_SIGNATURE_LINE_PREFIX: Final = "\u2014 "  # em dash, space
_ED25519_SIGNATURE_SIZE: Final = 64
_TIMESTAMP_SIZE: Final = 8
_MAX_TIMESTAMP: Final = 2**63 - 1  # tlog-cosignature: "MUST NOT exceed 2^63 - 1"
_MAX_TREE_SIZE: Final = 2**64 - 1  # tree sizes are uint64 in RFC 9162 and the C2SP specs
_ROOT_HASH_SIZE: Final = 32

# signed-note: valid UTF-8 (in a Python str: no lone surrogates) without ASCII control
# characters other than newline.
_NOT_ALLOWED_IN_NOTES: Final = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")
_TREE_SIZE: Final = re.compile("0|[1-9][0-9]*")
_KEY_ID_HEX: Final = re.compile("[0-9a-f]{8}")


def uint64_decimal(text: str) -> int | None:
    """A uint64 written in decimal without leading zeros (tree sizes and indexes), else None."""
    if len(text) > 20 or not _TREE_SIZE.fullmatch(text):  # 2^64 - 1 has 20 digits
        return None
    number = int(text)
    return number if number <= _MAX_TREE_SIZE else None


def note_key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || signature type || public key)[:4] (signed-note)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()[:4]


def _is_valid_key_name(name: str) -> bool:
    # signed-note: non-empty, without Unicode spaces or "+".
    return (
        bool(name)
        and "+" not in name
        and not any(character.isspace() for character in name)
        and not _NOT_ALLOWED_IN_NOTES.search(name)
    )


def _check_key_name(name: str) -> None:
    if not _is_valid_key_name(name):
        raise ValueError(f"{name!r} is not a valid note key name (non-empty, no spaces, no '+')")


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _NOT_ALLOWED_IN_NOTES.search(text):
        raise NoteError("note text must be valid UTF-8 without control characters but newline")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_strict(text: str) -> bytes:
    """Standard base64 (RFC 4648 §4) with padding, in its one canonical spelling."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("invalid base64") from None
    if _b64encode(data) != text:  # e.g. non-zero padding bits
        raise NoteError("non-canonical base64")
    return data


def _cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    # tlog-cosignature "Ed25519 signed message": a header line, a timestamp line (decimal, no
    # leading zeros), then the whole checkpoint text.
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: who (key name and ID) and the signature bytes after the key ID.

    For a cosignature the bytes are the 8-byte timestamp followed by the Ed25519 signature.
    """

    name: str
    key_id: bytes
    signature: bytes

    def to_line(self) -> str:
        """The signature line, newline included; appending it to a note adds the signature."""
        return f"{_SIGNATURE_LINE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (with or without its final newline)."""
        line = line.removesuffix("\n")
        if not line.startswith(_SIGNATURE_LINE_PREFIX) or _NOT_ALLOWED_IN_NOTES.search(line):
            raise NoteError(f"not a signature line: {line[:80]!r}")
        name, space, encoded = line[len(_SIGNATURE_LINE_PREFIX) :].partition(" ")
        if not space or not _is_valid_key_name(name) or not encoded:
            raise NoteError(f"malformed signature line: {line[:80]!r}")
        try:
            payload = _b64decode_strict(encoded)
        except NoteError as error:
            raise NoteError(f"signature of {name!r}: {error}") from None
        if len(payload) < 5:
            raise NoteError(f"signature of {name!r} is too short")
        return cls(name=name, key_id=payload[:4], signature=payload[4:])


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text is vouched for by every signature in `verified`.

    `unverified` lists the signatures by keys the caller did not name; they were ignored.
    """

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


class NoteVerifier:
    """A public key that may sign notes: its name, type (0x01 or 0x04) and Ed25519 key."""

    __slots__ = ("_alg", "_key_id", "_name", "_public_key")

    def __init__(self, *, name: str, public_key: VerifyingKey, alg: int = ALG_ED25519) -> None:
        _check_key_name(name)
        if alg not in _SUPPORTED_ALGS:
            raise ValueError(f"unsupported note signature type 0x{alg:02x}")
        self._name = name
        self._alg = alg
        self._public_key = public_key
        self._key_id = note_key_id(name, alg, public_key.raw)

    @classmethod
    def from_verifier_key(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+base64(<type> || <public key>)`` (signed-note).

        Strict: the key ID must be 8 lowercase hex digits and match the key, the base64 must be
        canonical, the type 0x01 (Ed25519) or 0x04 (cosignature/v1), the key 32 bytes.
        """
        name, plus, rest = vkey.partition("+")
        key_id_hex, plus_again, encoded = rest.partition("+")
        if not (plus and plus_again) or not _is_valid_key_name(name):
            raise NoteError(f"malformed verifier key {vkey!r}")
        if not _KEY_ID_HEX.fullmatch(key_id_hex):
            raise NoteError(f"verifier key {vkey!r} has a malformed key ID")
        try:
            material = _b64decode_strict(encoded)
        except NoteError as error:
            raise NoteError(f"verifier key {vkey!r}: {error}") from None
        if len(material) != 33:
            raise NoteError(f"verifier key {vkey!r} does not hold a type byte and 32-byte key")
        alg, raw_key = material[0], material[1:]
        if alg not in _SUPPORTED_ALGS:
            raise NoteError(f"verifier key {vkey!r} has unsupported signature type 0x{alg:02x}")
        if note_key_id(name, alg, raw_key) != bytes.fromhex(key_id_hex):
            raise NoteError(f"verifier key {vkey!r} has a key ID that does not match its key")
        return cls(name=name, public_key=VerifyingKey.from_bytes(raw_key), alg=alg)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def alg(self) -> int:
        return self._alg

    @property
    def public_key(self) -> VerifyingKey:
        return self._public_key

    @property
    def verifier_key(self) -> str:
        material = bytes([self._alg]) + self._public_key.raw
        return f"{self._name}+{self._key_id.hex()}+{_b64encode(material)}"

    def _verify(self, text: str, signature: NoteSignature) -> None:
        if self._alg == ALG_COSIGNATURE_V1:
            _verify_cosignature_payload(text, signature, self)
            return
        try:
            self._public_key.verify(signature.signature, text.encode("utf-8"))
        except SignatureError:
            raise NoteError(
                f"signature by known key {self._name}+{self._key_id.hex()} does not verify"
            ) from None

    def __repr__(self) -> str:
        return f"NoteVerifier({self.verifier_key!r})"


class NoteSigner:
    """Signs note texts with an Ed25519 key under a key name (signature type 0x01)."""

    __slots__ = ("_key", "_key_id", "_name")

    def __init__(self, *, name: str, key: SigningKey) -> None:
        _check_key_name(name)
        self._name = name
        self._key = key
        self._key_id = note_key_id(name, ALG_ED25519, key.public_key.raw)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(name=self._name, public_key=self._key.public_key, alg=ALG_ED25519)

    @property
    def verifier_key(self) -> str:
        return self.verifier.verifier_key

    def sign(self, text: str) -> str:
        """The signature line (newline included) for a note with this text."""
        _check_note_text(text)
        signature = self._key.sign(text.encode("utf-8"))
        return NoteSignature(self._name, self._key_id, signature).to_line()


class CosignatureSigner:
    """A witness's cosigning key (tlog-cosignature, cosignature/v1, signature type 0x04)."""

    __slots__ = ("_key", "_key_id", "_name")

    def __init__(self, *, name: str, key: SigningKey) -> None:
        _check_key_name(name)
        self._name = name
        self._key = key
        self._key_id = note_key_id(name, ALG_COSIGNATURE_V1, key.public_key.raw)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(
            name=self._name, public_key=self._key.public_key, alg=ALG_COSIGNATURE_V1
        )

    @property
    def verifier_key(self) -> str:
        return self.verifier.verifier_key

    def sign(self, checkpoint_text: str, *, timestamp: int) -> str:
        """The cosignature line for a checkpoint text, made at `timestamp` (POSIX seconds).

        The clock is a parameter: a cosignature states the largest consistent tree seen *as of*
        this time, and tests need to fix it.
        """
        Checkpoint.parse(checkpoint_text)  # only checkpoints are cosigned
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise ValueError(f"timestamp {timestamp} is outside 0..2^63-1")
        signature = self._key.sign(_cosigned_message(checkpoint_text, timestamp))
        payload = timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
        return NoteSignature(self._name, self._key_id, payload).to_line()


def sign_note(
    text: str,
    signers: Sequence[NoteSigner],
    *,
    existing: Sequence[NoteSignature] = (),
) -> str:
    """The signed note: `text`, a blank line, then the signature lines.

    `existing` signatures (for instance those of an opened note) come first, as in
    golang.org/x/mod's note.Sign; one by the same key as a new signer is replaced by the new one.
    """
    _check_note_text(text)
    if not signers and not existing:
        raise ValueError("a note needs at least one signature")
    new_keys = {(signer.name, signer.key_id) for signer in signers}
    kept = [line for line in existing if (line.name, line.key_id) not in new_keys]
    lines = [signature.to_line() for signature in kept]
    lines.extend(signer.sign(text) for signer in signers)
    return text + "\n" + "".join(lines)


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Parse a signed note and verify it against known keys, as golang.org/x/mod's note.Open.

    1. The note must be well-formed: valid UTF-8, no control characters but newline, a text
       ending in newline, a blank line, at least one and at most MAX_SIGNATURES signature lines.
    2. Signatures whose (key name, key ID) match no verifier are ignored (kept in `unverified`).
    3. Every signature by a known key must verify; one that does not rejects the note.
    4. At least one signature by a known key is required.
    Raises NoteError saying which step failed.
    """
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        previous = known.setdefault((verifier.name, verifier.key_id), verifier)
        if previous.public_key != verifier.public_key or previous.alg != verifier.alg:
            raise ValueError(f"two different verifiers share name and key ID: {verifier.name}")
    # Step 1.
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("malformed note: not valid UTF-8") from None
    if _NOT_ALLOWED_IN_NOTES.search(note):
        raise NoteError("malformed note: control characters or invalid UTF-8")
    # signed-note: "the text is separated from the signatures by the last empty line".
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or no final newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    try:
        signatures = [NoteSignature.from_line(line) for line in lines]
    except NoteError as error:
        raise NoteError(f"malformed note: {error}") from None
    # Steps 2 and 3; identical signatures are listed once.
    verified: dict[NoteSignature, None] = {}
    unverified: dict[NoteSignature, None] = {}
    for signature in signatures:
        known_key = known.get((signature.name, signature.key_id))
        if known_key is None:
            unverified[signature] = None
        elif signature not in verified:
            known_key._verify(text, signature)
            verified[signature] = None
    # Step 4.
    if not verified:
        raise NoteError("note has no signature by a known key")
    return OpenedNote(text=text, verified=tuple(verified), unverified=tuple(unverified))


def _verify_cosignature_payload(
    checkpoint_text: str, signature: NoteSignature, verifier: NoteVerifier
) -> int:
    if len(signature.signature) != _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE:
        raise NoteError(
            f"cosignature by {verifier.name} is {len(signature.signature)} bytes, "
            f"not {_TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE}"
        )
    timestamp = int.from_bytes(signature.signature[:_TIMESTAMP_SIZE], "big")
    if timestamp > _MAX_TIMESTAMP:
        raise NoteError(f"cosignature by {verifier.name} has timestamp beyond 2^63 - 1")
    try:
        verifier.public_key.verify(
            signature.signature[_TIMESTAMP_SIZE:], _cosigned_message(checkpoint_text, timestamp)
        )
    except SignatureError:
        raise NoteError(
            f"cosignature by known key {verifier.name}+{verifier.key_id.hex()} does not verify"
        ) from None
    return timestamp


def verify_cosignature(
    checkpoint_text: str, signature: NoteSignature, verifier: NoteVerifier
) -> int:
    """Verify a cosignature of a checkpoint text; return its timestamp (POSIX seconds).

    Raises NoteError if the verifier is not a cosignature/v1 key, the signature is not by it,
    the checkpoint text is malformed, or the signature does not verify.
    """
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise NoteError(f"{verifier.name} is not a cosignature/v1 (type 0x04) key")
    if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
        raise NoteError(
            f"signature is by {signature.name}+{signature.key_id.hex()}, "
            f"not by {verifier.name}+{verifier.key_id.hex()}"
        )
    Checkpoint.parse(checkpoint_text)
    return _verify_cosignature_payload(checkpoint_text, signature, verifier)


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: a log's origin, tree size and RFC 6962 SHA-256 root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _NOT_ALLOWED_IN_NOTES.search(self.origin):
            raise ValueError(f"invalid checkpoint origin {self.origin!r}")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise ValueError(f"tree size {self.size} is outside 0..2^64-1")
        if len(self.root_hash) != _ROOT_HASH_SIZE:
            raise ValueError(f"root hash is {len(self.root_hash)} bytes, not {_ROOT_HASH_SIZE}")
        for line in self.extensions:
            if not line or "\n" in line or _NOT_ALLOWED_IN_NOTES.search(line):
                raise ValueError(f"invalid checkpoint extension line {line!r}")

    def to_text(self) -> str:
        """The note text: origin, size and base64 root hash lines, then extension lines."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (tlog-checkpoint "Note text").

        At least three lines, each ending in a newline: a non-empty origin, the tree size in
        decimal without leading zeros (at most 2^64 - 1), the canonical base64 of a 32-byte
        root hash; then non-empty extension lines. Raises NoteError.
        """
        _check_note_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin is empty")
        size = uint64_decimal(size_text)
        if size is None:
            raise NoteError(f"checkpoint tree size {size_text[:30]!r} is not a uint64 in decimal")
        try:
            root_hash = _b64decode_strict(root_text)
        except NoteError as error:
            raise NoteError(f"checkpoint root hash: {error}") from None
        if len(root_hash) != _ROOT_HASH_SIZE:
            raise NoteError(
                f"checkpoint root hash is {len(root_hash)} bytes, not a {_ROOT_HASH_SIZE}-byte "
                "SHA-256 root"
            )
        if any(not line for line in extensions):
            raise NoteError("checkpoint extension lines must not be empty")
        return cls(origin, size, root_hash, tuple(extensions))
