"""What an attestation says: an in-toto Statement v1 about one chain at one size.

The subject is the chain at that size, named by its checkpoint origin, with its RFC 6962 root
as the digest (under the key ``rfc6962-sha256``: it is a Merkle root over SHA-256 leaf hashes,
not the SHA-256 of one blob). The predicate says what was checked, over which range, with what
result, and, for a negative attestation, the finding with its evidence. It also says which
epoch of the chain it belongs to (where that epoch started, and whether it replaced the history
cosigned before), when the last full re-read of the chain finished, and every acknowledged
finding whose first bad index lies in the range, with who acknowledged it, when and why: an
attestation never vouches for a range spanning tampered history without naming it. And it says
how complete the chain's producers are over the entries the verifier replayed (per source: the
count, the highest sequence, the missing ranges, findings, closing and silence; see
docs/completeness.md), so that the figures the log repeats are the verifier's, signed.
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
    "every entry cosigned before re-read on a schedule and compared with the leaf hash this "
    "verifier remembers for it",
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
    epoch: dict[str, Any] | None = None,
    last_full_sweep: dict[str, Any] | None = None,
    acknowledged_findings: list[dict[str, Any]] | None = None,
    completeness: dict[str, Any] | None = None,
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
                "last_full_sweep": None
                if last_full_sweep is None
                else {
                    "finished_at": _rfc3339(last_full_sweep["finished_at"]),
                    "size": last_full_sweep["size"],
                },
            },
            "epoch": epoch,
            "acknowledged_findings": acknowledged_findings or [],
            "completeness": completeness,
            "issued_at": _rfc3339(issued_at),
            "result": "passed" if finding is None else "failed",
            "finding": finding,
        },
    }


def epoch_start(epoch: int, started: Any | None) -> dict[str, Any]:
    """Where an epoch of the chain starts (`started`: its `verifier.epochs` row; None for
    epoch 0, which starts from nothing)."""
    if started is None:
        return {"number": epoch, "start_size": 0, "history_replaced": False, "after_finding": None}
    return {
        "number": epoch,
        "start_size": int(started.start_size),
        "history_replaced": bool(started.history_replaced),
        "after_finding": int(started.after_finding),
        "started_at": _rfc3339(started.started_at),
    }


def acknowledged_finding(row: Any) -> dict[str, Any]:
    """An acknowledged finding as attestations name it (a `repository.acknowledged_findings`
    row)."""
    return {
        "id": int(row.id),
        "kind": row.kind,
        "first_bad_index": None if row.first_bad_index is None else int(row.first_bad_index),
        "found_at": _rfc3339(row.found_at),
        "acknowledged_by": row.operator,
        "acknowledged_at": _rfc3339(row.acknowledged_at),
        "reason": row.reason,
        "next_epoch": None
        if row.next_epoch is None
        else {
            "number": int(row.next_epoch),
            "start_size": int(row.start_size),
            "history_replaced": bool(row.history_replaced),
        },
    }


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
