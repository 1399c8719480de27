"""Receipts: where the log put each event, and the check of the log's signature over them.

The log answers an append with one DSSE envelope (secure-systems-lab/dsse, protocol.md) whose
payload is the RFC 8785 JSON ``{"log", "receipts": [{tenant, chain, index, leaf_hash,
received_at}]}``, signed with Ed25519 over PAE(payloadType, payload). Verifying means: the
signature is by the configured key, and the signed receipts are the ones answered, in order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from audit_trail_sdk.config import Config
from audit_trail_sdk.errors import ConfigurationError, ReceiptVerificationError

log = logging.getLogger("audit_trail_sdk")

RECEIPTS_PAYLOAD_TYPE = "application/vnd.audit-trail.receipts+json"
SIGNED_MEMBERS = ("tenant", "chain", "index", "leaf_hash", "received_at")


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    tenant: str
    chain: str
    index: int
    leaf_hash: str
    received_at: str
    # True when the log had appended the event before (an idempotent replay).
    replayed: bool
    # True when the log's signature over this receipt was checked against the configured key.
    verified: bool


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: lengths make it unambiguous whatever the bytes."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


class ReceiptVerifier:
    """Checks receipt envelopes against one Ed25519 public key (raw 32 bytes or hex)."""

    def __init__(self, public_key: bytes | str) -> None:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            raise ConfigurationError(
                "verifying receipts needs the 'receipts' extra: "
                "pip install 'audit-trail-sdk[receipts]'"
            ) from None
        raw = bytes.fromhex(public_key) if isinstance(public_key, str) else public_key
        if len(raw) != 32:
            raise ConfigurationError("the log's public key must be 32 bytes of Ed25519")
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self._invalid_signature = InvalidSignature
        # The key id the log names its signatures by (securesystemslib's, from its key JSON,
        # which is canonical as written here: sorted keys, no spaces, ASCII only).
        key_json = {"keytype": "ed25519", "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
        canonical = json.dumps(key_json, sort_keys=True, separators=(",", ":"))
        self.keyid = hashlib.sha256(canonical.encode()).hexdigest()

    def verify(self, envelope: Mapping[str, Any], receipts: Sequence[Mapping[str, Any]]) -> None:
        """Raise ``ReceiptVerificationError`` unless the envelope signs exactly ``receipts``."""
        # 1. The envelope is a DSSE envelope of receipts.
        if envelope.get("payloadType") != RECEIPTS_PAYLOAD_TYPE:
            raise ReceiptVerificationError("the envelope does not hold receipts")
        try:
            payload = base64.b64decode(envelope["payload"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise ReceiptVerificationError("the envelope's payload is not base64") from None
        # 2. A signature by our key verifies over PAE(payloadType, payload).
        message = pae(RECEIPTS_PAYLOAD_TYPE, payload)
        signatures = [
            signature
            for signature in envelope.get("signatures") or []
            if isinstance(signature, Mapping) and signature.get("keyid") == self.keyid
        ]
        if not signatures:
            raise ReceiptVerificationError(f"no signature by the log key {self.keyid}")
        for signature in signatures:
            try:
                self._key.verify(base64.b64decode(signature["sig"], validate=True), message)
            except (self._invalid_signature, KeyError, TypeError, binascii.Error):
                raise ReceiptVerificationError("the log's signature does not verify") from None
        # 3. What it signs is what was answered, receipt for receipt.
        signed = json.loads(payload).get("receipts")
        answered = [{name: receipt.get(name) for name in SIGNED_MEMBERS} for receipt in receipts]
        if signed != answered:
            raise ReceiptVerificationError("the signed receipts differ from those answered")


def receipt_verifier(config: Config) -> ReceiptVerifier | None:
    """The verifier the settings ask for: the configured key, the log's own key on explicit
    request (with a warning), or none."""
    if config.log_public_key is not None:
        return ReceiptVerifier(config.log_public_key)
    if not config.fetch_log_key:
        return None
    message = (
        "the log's receipt key is taken from the log itself: this proves receipts come from "
        "that log, not that it is the log you trust; configure log_public_key instead"
    )
    warnings.warn(message, stacklevel=3)
    log.warning(message)
    try:
        response = httpx.get(
            f"{config.url.rstrip('/')}/v1/log/keys", timeout=config.request_timeout
        )
        response.raise_for_status()
        return ReceiptVerifier(response.json()["keys"][0]["public_key"])
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
        raise ConfigurationError(f"the log's key could not be fetched: {error}") from None
