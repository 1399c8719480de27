"""What an attestation says: an in-toto Statement v1 about one chain at one size.

The subject is the chain at that size, named by its checkpoint origin, with its RFC 6962 root
as the digest (under the key ``rfc6962-sha256``: it is a Merkle root over SHA-256 leaf hashes,
not the SHA-256 of one blob). The predicate says what was checked, over which range, with what
result, and, for a negative attestation, the finding with its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ledger.dsse import CHAIN_VERIFICATION_PREDICATE_TYPE, IN_TOTO_STATEMENT_TYPE

from verifier import VERSION

CHECKS: Final = (
    "checkpoint signed by the log's key, with the chain's origin",
    "every entry present once, at consecutive indexes",
    "every leaf in leaf format v1 (RFC 8785), for this tenant, chain and index",
    "every leaf's prev is the leaf hash the verifier computed for the entry before",
    "every leaf hash recomputed from the raw leaf bytes",
    "RFC 6962 root rebuilt and equal to the checkpoint's root",
    "checkpoint consistent with the last checkpoint this verifier cosigned",
)


@dataclass(frozen=True)
class ChainSubject:
    tenant: str
    chain: str
    origin: str
    size: int
    root_hash: bytes


def statement(
    *,
    subject: ChainSubject,
    verifier_name: str,
    log_verifier_key: str,
    checkpoint_note: str | None,
    verified_range: tuple[int, int],
    entries_replayed: int,
    verified_at: datetime | None,
    issued_at: datetime,
    finding: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [
            {
                "name": subject.origin,
                "digest": {"rfc6962-sha256": subject.root_hash.hex()},
                "annotations": {"tree_size": subject.size},
            }
        ],
        "predicateType": CHAIN_VERIFICATION_PREDICATE_TYPE,
        "predicate": {
            "verifier": {"name": verifier_name, "version": VERSION},
            "log": {"verifier_key": log_verifier_key},
            "chain": {"tenant": subject.tenant, "chain": subject.chain},
            "checkpoint": checkpoint_note,
            "checked": {
                "range": {"start": verified_range[0], "end": verified_range[1]},
                "entries_replayed": entries_replayed,
                "checks": list(CHECKS),
                "verified_at": None if verified_at is None else _rfc3339(verified_at),
            },
            "issued_at": _rfc3339(issued_at),
            "result": "passed" if finding is None else "failed",
            "finding": finding,
        },
    }


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
