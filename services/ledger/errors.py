"""The error types of the ledger core.

Every check in the core either returns what it verified or raises one of these. Callers that only
care whether evidence holds catch `VerificationError`; the subclasses say which kind of evidence
failed.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error raised on purpose by the ledger core."""


class CanonicalJSONError(LedgerError, ValueError):
    """A JSON text or value that RFC 8785 / I-JSON (RFC 7493) does not allow.

    `pointer` is the RFC 6901 JSON Pointer of the offending value or member ("" for the root, or
    when the place is unknown, as for a syntax error), `message` says what is wrong with it.
    """

    def __init__(self, message: str, *, pointer: str = "") -> None:
        self.message = message
        self.pointer = pointer
        where = f"at {pointer!r}" if pointer else "at the document root"
        super().__init__(f"{message} ({where})")


class VerificationError(LedgerError):
    """Evidence (a proof, a signed note, a signature) did not verify."""


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof is malformed, or does not prove its claim."""


class NoteError(VerificationError):
    """A signed note or checkpoint is malformed, or its signatures do not verify."""


class SignatureError(VerificationError):
    """A signature does not verify under the expected key."""
