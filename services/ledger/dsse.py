"""DSSE v1 envelopes (secure-systems-lab/dsse, protocol.md and envelope.md) signed with Ed25519.

The signature covers PAE(payloadType, payload), never the JSON envelope, so the envelope can be
re-serialised freely. Each signature carries the `keyid` that `securesystemslib` derives for the
key (SHA-256 of its canonical key JSON), because its verifier only tries keys whose ID matches:
with that ID, third parties verify our envelopes with `securesystemslib` unchanged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Mapping
from typing import Any, Final

from ledger.canonical import canonicalize
from ledger.errors import SignatureError
from ledger.keys import SigningKey, VerifyingKey

__all__ = [
    "CHAIN_VERIFICATION_PREDICATE_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "IN_TOTO_STATEMENT_TYPE",
    "pae",
    "securesystemslib_keyid",
    "sign_envelope",
    "verify_envelope",
]

IN_TOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
# The verifier's signed attestation that it replayed a chain; export bundles carry and check it.
CHAIN_VERIFICATION_PREDICATE_TYPE: Final = (
    "https://audit-trail.dev/attestations/chain-verification/v1"
)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding (protocol.md "Signature definition").

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, with LEN the byte length in ASCII
    decimal: lengths make the encoding unambiguous whatever bytes type and body contain.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def securesystemslib_keyid(public_key: VerifyingKey) -> str:
    """The key ID `securesystemslib` gives an Ed25519 key (its default, from its key JSON)."""
    return _keyid_of_raw(public_key.raw)


@functools.lru_cache(maxsize=64)
def _keyid_of_raw(raw_public_key: bytes) -> str:
    # Cached: every envelope carries it, and a service signs with one key for its lifetime.
    key_json = {
        "keytype": "ed25519",
        "keyval": {"public": raw_public_key.hex()},
        "scheme": "ed25519",
    }
    return hashlib.sha256(canonicalize(key_json)).hexdigest()


def sign_envelope(*, payload_type: str, payload: bytes, key: SigningKey) -> dict[str, Any]:
    """A DSSE envelope holding `payload`, signed by `key`."""
    signature = key.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {
                "keyid": securesystemslib_keyid(key.public_key),
                "sig": base64.b64encode(signature).decode("ascii"),
            }
        ],
    }


def _decode_base64(text: object, what: str) -> bytes:
    # envelope.md: "Either standard or URL-safe encoding is allowed"; padding is not required.
    if not isinstance(text, str):
        raise SignatureError(f"envelope {what} is not a base64 string")
    url_safe = "-" in text or "_" in text
    if url_safe and ("+" in text or "/" in text):
        raise SignatureError(f"envelope {what} mixes base64 alphabets")
    standard = text.translate({ord("-"): "+", ord("_"): "/"}) if url_safe else text
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"envelope {what} is not valid base64") from None


def verify_envelope(
    envelope: Mapping[str, Any], keys: Mapping[str, VerifyingKey]
) -> tuple[str, bytes]:
    """Verify a DSSE envelope against keys indexed by key ID; return (payloadType, payload).

    1. The envelope must have a string payloadType, a base64 payload and a non-empty list of
       signatures.
    2. Signatures without a key ID in `keys` are skipped.
    3. A signature whose key ID is in `keys` must verify over the PAE, or the envelope is
       rejected (a known key does not sign something else by accident).
    4. At least one signature must have verified; no keys means nothing verifies.
    Raises SignatureError saying which step failed.
    """
    # Step 1.
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise SignatureError("envelope has no string payloadType")
    payload = _decode_base64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("envelope has no signatures")
    message = pae(payload_type, payload)
    verified = 0
    for signature in signatures:
        if not isinstance(signature, Mapping):
            raise SignatureError("envelope signature is not an object")
        # Step 2.
        keyid = signature.get("keyid")
        key = keys.get(keyid) if isinstance(keyid, str) else None
        if key is None:
            continue
        # Step 3.
        try:
            key.verify(_decode_base64(signature.get("sig"), "signature"), message)
        except SignatureError as error:
            raise SignatureError(f"signature by known key {keyid}: {error}") from None
        verified += 1
    # Step 4.
    if not verified:
        raise SignatureError("envelope has no signature by a known key")
    return payload_type, payload
