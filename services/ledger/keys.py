"""Ed25519 keys (RFC 8032), and the one place the core touches files: the private key file.

Signing keys are stored as unencrypted PKCS #8 PEM ("BEGIN PRIVATE KEY", RFC 8410 §7), the form
`openssl genpkey -algorithm ed25519` writes, readable only by the owner.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import SignatureError

__all__ = ["SigningKey", "VerifyingKey", "read_private_key", "write_private_key"]

_RAW_KEY_SIZE = 32
_SIGNATURE_SIZE = 64


class VerifyingKey:
    """An Ed25519 public key."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyingKey:
        """The key from its 32-byte RFC 8032 encoding."""
        if len(raw) != _RAW_KEY_SIZE:
            raise ValueError(f"an Ed25519 public key is {_RAW_KEY_SIZE} bytes, not {len(raw)}")
        return cls(Ed25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyingKey:
        """The key from a SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY", RFC 8410 §4)."""
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def raw(self) -> bytes:
        return self._raw

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return if `signature` is this key's signature of `message`, else raise SignatureError."""
        if len(signature) != _SIGNATURE_SIZE:
            raise SignatureError(
                f"an Ed25519 signature is {_SIGNATURE_SIZE} bytes, not {len(signature)}"
            )
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise SignatureError(
                f"signature does not verify under Ed25519 key {self._raw.hex()}"
            ) from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyingKey):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyingKey({self._raw.hex()})"


class SigningKey:
    """An Ed25519 private key. Its repr shows the public half only."""

    __slots__ = ("_key", "_public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public_key = VerifyingKey(key.public_key())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose 32-byte RFC 8032 private key (the seed) is `seed`."""
        if len(seed) != _RAW_KEY_SIZE:
            raise ValueError(f"an Ed25519 seed is {_RAW_KEY_SIZE} bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """The key from an unencrypted PKCS #8 PEM."""
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> VerifyingKey:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public={self._public_key.raw.hex()})"


def write_private_key(path: str | os.PathLike[str], key: SigningKey) -> None:
    """Create `path` holding `key`, readable and writable by the owner only (mode 0600).

    Refuses (FileExistsError) to replace an existing file, so a key is never lost by mistake.
    The key is written and synced under a temporary name in the same directory, then linked to
    `path`: link(2) fails if the target exists and is atomic, so `path` never exists partially
    written, and there is no window where another process could create it in between.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # O_EXCL: never write through a file or symlink planted under the temporary name.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # the umask may only have narrowed it; make it exact
            file.write(key.to_pem())
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    # The new directory entry is durable only once the directory itself is synced.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(descriptor)


def read_private_key(path: str | os.PathLike[str]) -> SigningKey:
    return SigningKey.from_pem(Path(path).read_bytes())
