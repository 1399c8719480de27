"""Personal data in events: sealed per data subject before the leaf is built (DESIGN.md, Privacy).

- A producer marks personal values with JSON Pointers (RFC 6901) into the event's ``data``. Each
  marked value is replaced by ``{"enc": "A256GCM", "kid", "iv", "ct"}``: AES-256-GCM under the
  data subject's own key, so the leaf, its hash and every proof commit to the ciphertext only.
  Destroying that key makes the value unreadable everywhere while every proof still verifies.
- The associated data binds a ciphertext to its place (tenant, chain, event source, type and
  id, pointer), so it cannot be moved to another event or field and still open: not even
  between a model server's request and response, which share their source and id. Values
  sealed before the type was bound (no ``type`` in their associated data) still open, under
  that older binding only.
- Data subjects are named by a keyed HMAC pseudonym, per tenant, so pseudonyms do not link
  people across tenants and cannot be reversed without the key.
- Data keys are stored only wrapped (AES key wrap, RFC 3394) under a key-encryption key (KEK)
  that lives outside the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from ledger.canonical import canonicalize, parse_json
from ledger.errors import LedgerError

SEALED_ALGORITHM: Final = "A256GCM"
SEALED_FIELDS: Final = frozenset({"enc", "kid", "iv", "ct"})
PSEUDONYM_PREFIX: Final = "ps1:"
KEY_SIZE: Final = 32
_IV_SIZE: Final = 12


class SealingError(LedgerError, ValueError):
    """A pointer that names nothing, a sealed value that does not open, a bad key."""


def pseudonym(key: bytes, *, tenant: str, subject: str) -> str:
    """The keyed-HMAC pseudonym of a data subject within one tenant."""
    digest = hmac.new(key, f"{tenant}\x00{subject}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest


def content_digest(key: bytes, canonical_event: bytes) -> bytes:
    """A keyed digest of an event's plaintext, for idempotency: ciphertexts are randomised, and
    a plain hash of personal data could be confirmed by guessing."""
    # hmac.digest is the one-shot C path: no HMAC object per event on the append path.
    return hmac.digest(key, b"idempotency\x00" + canonical_event, "sha256")


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_key(kek: bytes, data_key: bytes) -> bytes:
    return aes_key_wrap(kek, data_key)


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    try:
        return aes_key_unwrap(kek, wrapped)
    except InvalidUnwrap:
        raise SealingError("the data key does not unwrap under this key-encryption key") from None


@dataclass(frozen=True, slots=True)
class SealingContext:
    """Where a sealed value sits; bound into its ciphertext as associated data."""

    tenant: str
    chain: str
    source: str
    event_id: str
    event_type: str

    def associated_data(self, pointer: str) -> bytes:
        return canonicalize({**self._place(pointer), "type": self.event_type})

    def associated_data_accepted(self, pointer: str) -> tuple[bytes, ...]:
        """What a value at ``pointer`` may have been sealed with: the current binding, then
        the one before the event type was bound (for values sealed then)."""
        return self.associated_data(pointer), canonicalize(self._place(pointer))

    def _place(self, pointer: str) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "chain": self.chain,
            "source": self.source,
            "id": self.event_id,
            "pointer": pointer,
        }


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 reference tokens of a pointer into ``data``; "" (the whole data) is allowed."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise SealingError(f"{pointer!r} is not a JSON Pointer (RFC 6901)")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _locate(document: Any, tokens: list[str], pointer: str) -> tuple[Any, str | int]:
    parent = document
    for position, token in enumerate(tokens):
        last = position == len(tokens) - 1
        if isinstance(parent, dict):
            if token not in parent:
                break
            if last:
                return parent, token
            parent = parent[token]
        elif isinstance(parent, list):
            if (
                not token.isdigit()
                or int(token) >= len(parent)
                or (len(token) > 1 and token[0] == "0")
            ):
                break
            if last:
                return parent, int(token)
            parent = parent[int(token)]
        else:
            break
    raise SealingError(f"personal-data pointer {pointer!r} names nothing in data")


def seal_fields(
    data: Any,
    pointers: Sequence[str],
    *,
    key: bytes,
    kid: str,
    context: SealingContext,
) -> Any:
    """A copy of ``data`` with the value at each pointer sealed under ``key``."""
    if "" in pointers:
        return _seal_value(data, key=key, kid=kid, aad=context.associated_data(""))
    sealed = _deep_copy(data)
    for pointer in sorted(set(pointers), key=lambda p: -p.count("/")):
        parent, name = _locate(sealed, parse_pointer(pointer), pointer)
        parent[name] = _seal_value(
            parent[name], key=key, kid=kid, aad=context.associated_data(pointer)
        )
    return sealed


def _seal_value(value: Any, *, key: bytes, kid: str, aad: bytes) -> dict[str, str]:
    iv = os.urandom(_IV_SIZE)
    ciphertext = AESGCM(key).encrypt(iv, canonicalize(value), aad)
    return {
        "enc": SEALED_ALGORITHM,
        "kid": kid,
        "iv": _b64(iv),
        "ct": _b64(ciphertext),
    }


def is_sealed(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == SEALED_FIELDS
        and value.get("enc") == SEALED_ALGORITHM
    )


@dataclass(frozen=True, slots=True)
class Opened:
    """Data with every sealed value it could open replaced by its plaintext."""

    data: Any
    withheld: tuple[str, ...]  # pointers of sealed values left sealed (no key, or no right)


def open_fields(
    data: Any,
    pointers: Sequence[str],
    *,
    keys: Mapping[str, bytes],
    context: SealingContext,
) -> Opened:
    """Open the sealed values at ``pointers`` whose key id is in ``keys``; list the others."""
    if "" in pointers:
        if is_sealed(data) and data["kid"] in keys:
            return Opened(
                _open_value(data, keys[data["kid"]], context.associated_data_accepted("")), ()
            )
        return Opened(data, ("",))
    opened = _deep_copy(data)
    withheld: list[str] = []
    for pointer in sorted(set(pointers), key=lambda p: p.count("/")):
        try:
            parent, name = _locate(opened, parse_pointer(pointer), pointer)
        except SealingError:
            withheld.append(pointer)
            continue
        value = parent[name]
        if is_sealed(value) and value["kid"] in keys:
            parent[name] = _open_value(
                value, keys[value["kid"]], context.associated_data_accepted(pointer)
            )
        else:
            withheld.append(pointer)
    return Opened(opened, tuple(withheld))


def _open_value(sealed: dict[str, str], key: bytes, accepted: Sequence[bytes]) -> Any:
    try:
        iv, ciphertext = _unb64(sealed["iv"]), _unb64(sealed["ct"])
    except ValueError:
        raise SealingError("a sealed value is not base64") from None
    for aad in accepted:
        try:
            return parse_json(AESGCM(key).decrypt(iv, ciphertext, aad))
        except (InvalidTag, ValueError):
            continue
    raise SealingError("a sealed value does not open with its key and place")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
