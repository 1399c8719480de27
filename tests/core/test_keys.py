"""Ed25519 keys and the private key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ledger.errors import SignatureError
from ledger.keys import SigningKey, VerifyingKey, read_private_key, write_private_key

# RFC 8032 §7.1, TEST 1.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_test_vector() -> None:
    key = SigningKey.from_seed(RFC8032_SECRET)
    assert key.public_key.raw == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIGNATURE
    VerifyingKey.from_bytes(RFC8032_PUBLIC).verify(RFC8032_SIGNATURE, b"")


def test_signatures_verify_and_forgeries_do_not() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"message")
    key.public_key.verify(signature, b"message")
    with pytest.raises(SignatureError):
        key.public_key.verify(signature, b"messagE")
    with pytest.raises(SignatureError):
        SigningKey.generate().public_key.verify(signature, b"message")
    with pytest.raises(SignatureError, match="64 bytes"):
        key.public_key.verify(signature[:-1], b"message")


def test_pem_round_trips() -> None:
    key = SigningKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert SigningKey.from_pem(pem).public_key == key.public_key
    public_pem = key.public_key.to_pem()
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert VerifyingKey.from_pem(public_pem) == key.public_key
    assert hash(VerifyingKey.from_pem(public_pem)) == hash(key.public_key)


def test_keys_of_other_types_or_sizes_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        SigningKey.from_pem(ec_pem)
    ec_public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="Ed25519"):
        VerifyingKey.from_pem(ec_public_pem)
    with pytest.raises(ValueError):
        SigningKey.from_pem(b"not a key")
    with pytest.raises(ValueError):
        VerifyingKey.from_bytes(bytes(31))
    with pytest.raises(ValueError):
        SigningKey.from_seed(bytes(33))


def test_repr_never_shows_the_private_key() -> None:
    key = SigningKey.from_seed(RFC8032_SECRET)
    assert RFC8032_SECRET.hex() not in repr(key)
    assert RFC8032_PUBLIC.hex() in repr(key)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_key_file_is_created_owner_only(tmp_path: Path, umask: int) -> None:
    key = SigningKey.generate()
    path = tmp_path / "log.key"
    previous = os.umask(umask)
    try:
        write_private_key(path, key)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_private_key(path).public_key == key.public_key
    assert read_private_key(str(path)).public_key == key.public_key
    assert sorted(os.listdir(tmp_path)) == ["log.key"]  # no temporary file left behind


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    first = SigningKey.generate()
    write_private_key(path, first)
    with pytest.raises(FileExistsError):
        write_private_key(path, SigningKey.generate())
    assert read_private_key(path).public_key == first.public_key
    assert sorted(os.listdir(tmp_path)) == ["log.key"]


def test_key_file_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "log.key").symlink_to(target)
    with pytest.raises(FileExistsError):
        write_private_key(tmp_path / "log.key", SigningKey.generate())
    assert not target.exists()
