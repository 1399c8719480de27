"""The one place that signs for the log: checkpoints (signed notes) and receipts (DSSE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.dsse import securesystemslib_keyid, sign_envelope
from ledger.keys import SigningKey
from ledger.note import Checkpoint, NoteSigner, sign_note

RECEIPTS_PAYLOAD_TYPE = "application/vnd.audit-trail.receipts+json"


@dataclass(frozen=True)
class LogSigner:
    """The log's Ed25519 key in its two roles.

    Checkpoints of every chain are signed under one key name, the log origin, so that one
    verifier key checks them all and publishing it names no chain (a deliberate deviation from
    C2SP's SHOULD that the key name equal the checkpoint origin; see README).
    """

    key: SigningKey
    origin: str
    note_signer: NoteSigner
    dsse_keyid: str

    @classmethod
    def create(cls, *, key: SigningKey, origin: str) -> LogSigner:
        return cls(
            key=key,
            origin=origin,
            note_signer=NoteSigner(name=origin, key=key),
            dsse_keyid=securesystemslib_keyid(key.public_key),
        )

    def chain_origin(self, *, tenant: str, chain: str) -> str:
        return f"{self.origin}/{tenant}/{chain}"

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        return sign_note(checkpoint.to_text(), [self.note_signer])

    def sign_receipts(self, payload: bytes) -> dict[str, Any]:
        return sign_envelope(payload_type=RECEIPTS_PAYLOAD_TYPE, payload=payload, key=self.key)

    def public_keys(self) -> list[dict[str, str]]:
        return [
            {
                "name": self.origin,
                "verifier_key": self.note_signer.verifier_key,
                "note_key_id": self.note_signer.key_id.hex(),
                "dsse_keyid": self.dsse_keyid,
                "public_key": self.key.public_key.raw.hex(),
                "algorithm": "ed25519",
            }
        ]
