"""DSSE envelopes: the PAE and official vector, the in-toto Ed25519 vector, securesystemslib."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from ledger.canonical import canonicalize
from ledger.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    pae,
    securesystemslib_keyid,
    sign_envelope,
    verify_envelope,
)
from ledger.errors import SignatureError
from ledger.keys import SigningKey, VerifyingKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from tests.core.conformance_vectors import load_vectors

VECTORS = load_vectors("dsse_vectors.json")
OFFICIAL = VECTORS["official_vector"]
IN_TOTO = VECTORS["intoto_ed25519_vector"]
IN_TOTO_KEY = SigningKey.from_seed(bytes.fromhex(IN_TOTO["ed25519_seed_hex"]))


def test_pae_of_the_official_vector() -> None:
    encoded = pae(OFFICIAL["payload_type"], OFFICIAL["payload_utf8"].encode())
    assert encoded == OFFICIAL["pae_utf8"].encode()
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("t\u00e9", b"\x00 x") == b"DSSEv1 3 t\xc3\xa9 3 \x00 x"  # lengths count bytes


def test_official_ecdsa_vector_verifies_with_cryptography() -> None:
    key = OFFICIAL["key"]
    curve = ec.SECP256R1()
    public_key = ec.EllipticCurvePublicNumbers(int(key["x"]), int(key["y"]), curve).public_key()
    envelope = OFFICIAL["envelope"]
    raw = base64.b64decode(envelope["signatures"][0]["sig"])
    assert len(raw) == 64  # r || s, not DER
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    message = pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    # RFC 6979 makes the signature deterministic, so the private scalar reproduces it.
    private_key = ec.derive_private_key(int(key["d"]), curve)
    der = private_key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert b"".join(n.to_bytes(32, "big") for n in decode_dss_signature(der)) == raw


def test_in_toto_ed25519_vector_reproduced_byte_for_byte() -> None:
    public_key = IN_TOTO_KEY.public_key
    assert public_key.raw.hex() == IN_TOTO["ed25519_public_hex"]
    assert securesystemslib_keyid(public_key) == IN_TOTO["sslib_keyid"]
    payload = canonicalize(IN_TOTO["statement"])
    assert pae(IN_TOTO_PAYLOAD_TYPE, payload).hex() == IN_TOTO["pae_hex"]
    envelope = sign_envelope(payload_type=IN_TOTO_PAYLOAD_TYPE, payload=payload, key=IN_TOTO_KEY)
    assert envelope == IN_TOTO["envelope"]
    assert canonicalize(envelope) == canonicalize(IN_TOTO["envelope"])
    keys = {IN_TOTO["sslib_keyid"]: public_key}
    assert verify_envelope(IN_TOTO["envelope"], keys) == (IN_TOTO_PAYLOAD_TYPE, payload)


def test_securesystemslib_verifies_our_envelopes_unchanged() -> None:
    key = SigningKey.generate()
    envelope = sign_envelope(payload_type="text/plain", payload=b"receipt", key=key)
    sslib_key = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(key.public_key.raw))
    assert sslib_key.keyid == securesystemslib_keyid(key.public_key)
    parsed = Envelope.from_dict(copy.deepcopy(envelope))
    assert set(parsed.verify([sslib_key], threshold=1)) == {sslib_key.keyid}
    assert parsed.payload == b"receipt"


def keyring(key: SigningKey) -> dict[str, VerifyingKey]:
    return {securesystemslib_keyid(key.public_key): key.public_key}


def signed(payload: bytes = b"{}") -> dict[str, Any]:
    return sign_envelope(payload_type=IN_TOTO_PAYLOAD_TYPE, payload=payload, key=IN_TOTO_KEY)


def test_verification_accepts_both_base64_alphabets_with_or_without_padding() -> None:
    envelope = signed(b"\xfb\xff\xfe payload?>")
    url_safe = dict(envelope, payload=base64.urlsafe_b64encode(b"\xfb\xff\xfe payload?>").decode())
    url_safe["payload"] = url_safe["payload"].rstrip("=")
    assert "-" in url_safe["payload"] or "_" in url_safe["payload"]
    assert verify_envelope(url_safe, keyring(IN_TOTO_KEY))[1] == b"\xfb\xff\xfe payload?>"


def test_other_signatures_are_ignored_but_one_known_signature_is_needed() -> None:
    envelope = signed()
    other = SigningKey.generate()
    both = dict(envelope, signatures=[{"sig": "AAAA"}, *envelope["signatures"]])
    verify_envelope(both, {**keyring(IN_TOTO_KEY), **keyring(other)})
    with pytest.raises(SignatureError, match="no signature by a known key"):
        verify_envelope(envelope, keyring(other))
    with pytest.raises(SignatureError, match="no signature by a known key"):
        verify_envelope(envelope, {})


def tampered(change: dict[str, Any]) -> dict[str, Any]:
    return dict(signed(), **change)


@pytest.mark.parametrize(
    ("envelope", "problem"),
    [
        (tampered({"payload": base64.b64encode(b"[]").decode()}), "does not verify"),
        (tampered({"payloadType": "application/json"}), "does not verify"),
        (tampered({"signatures": []}), "no signatures"),
        (tampered({"signatures": "x"}), "no signatures"),
        (tampered({"signatures": ["x"]}), "not an object"),
        (tampered({"payload": "not base64!"}), "not valid base64"),
        (tampered({"payload": "a+b-"}), "mixes"),
        (tampered({"payload": None}), "not a base64 string"),
        ({"payload": "e30=", "signatures": []}, "payloadType"),
    ],
)
def test_tampered_or_malformed_envelopes_fail(envelope: dict[str, Any], problem: str) -> None:
    with pytest.raises(SignatureError, match=problem):
        verify_envelope(envelope, keyring(IN_TOTO_KEY))


def test_a_bad_signature_by_a_known_key_rejects_even_beside_a_good_one() -> None:
    envelope = signed()
    good = envelope["signatures"][0]
    bad = dict(good, sig=base64.b64encode(bytes(64)).decode())
    for signatures in ([bad, good], [good, bad]):
        with pytest.raises(SignatureError, match="known key"):
            verify_envelope(dict(envelope, signatures=signatures), keyring(IN_TOTO_KEY))
