"""The one place that signs for the verifier: cosignatures (C2SP tlog-cosignature) and
attestations (in-toto Statement v1 in DSSE), with one Ed25519 key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.canonical import canonicalize
from ledger.dsse import IN_TOTO_PAYLOAD_TYPE, securesystemslib_keyid, sign_envelope
from ledger.keys import SigningKey
from ledger.note import CosignatureSigner


@dataclass(frozen=True)
class VerifierSigner:
    key: SigningKey
    cosigner: CosignatureSigner
    dsse_keyid: str

    @classmethod
    def create(cls, *, key: SigningKey, name: str) -> VerifierSigner:
        return cls(
            key=key,
            cosigner=CosignatureSigner(name=name, key=key),
            dsse_keyid=securesystemslib_keyid(key.public_key),
        )

    @property
    def name(self) -> str:
        return self.cosigner.name

    def cosign(self, checkpoint_text: str, *, timestamp: int) -> str:
        """The cosignature line (no final newline) for a checkpoint the verifier checked."""
        return self.cosigner.sign(checkpoint_text, timestamp=timestamp).rstrip("\n")

    def sign_statement(self, statement: dict[str, Any]) -> dict[str, Any]:
        return sign_envelope(
            payload_type=IN_TOTO_PAYLOAD_TYPE, payload=canonicalize(statement), key=self.key
        )

    def public_keys(self) -> dict[str, str]:
        return {
            "name": self.name,
            "cosignature_verifier_key": self.cosigner.verifier_key,
            "note_key_id": self.cosigner.key_id.hex(),
            "dsse_keyid": self.dsse_keyid,
            "public_key": self.key.public_key.raw.hex(),
            "public_key_pem": self.key.public_key.to_pem().decode("ascii"),
            "algorithm": "ed25519",
        }
