"""The pure core of the audit trail: encodings, hashes, proofs and signatures, with no I/O.

- `ledger.canonical`: RFC 8785 canonical JSON and strict I-JSON parsing.
- `ledger.merkle`: RFC 6962 / RFC 9162 Merkle trees, proof plans over stored subtrees, and
  proof verification.
- `ledger.note`: C2SP signed notes, checkpoints and cosignatures.
- `ledger.dsse`: DSSE envelopes (in-toto attestations, receipts).
- `ledger.keys`: Ed25519 keys and the private key file (the only file the core touches).
- `ledger.completeness`: per-producer sequence gaps, duplicates, closing and silence, folded
  from leaves.
- `ledger.errors`: what all of them raise.

The names below are the ones services need day to day; the modules hold the rest.
"""

from ledger.canonical import canonicalize, parse_json
from ledger.dsse import sign_envelope, verify_envelope
from ledger.errors import (
    CanonicalJSONError,
    LedgerError,
    NoteError,
    ProofError,
    SignatureError,
    VerificationError,
)
from ledger.keys import SigningKey, VerifyingKey
from ledger.merkle import (
    MerkleFrontier,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.note import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    open_note,
    sign_note,
)

__all__ = [
    "CanonicalJSONError",
    "Checkpoint",
    "CosignatureSigner",
    "LedgerError",
    "MerkleFrontier",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "SignatureError",
    "SigningKey",
    "VerificationError",
    "VerifyingKey",
    "canonicalize",
    "leaf_hash",
    "open_note",
    "parse_json",
    "root_hash",
    "sign_envelope",
    "sign_note",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
]
