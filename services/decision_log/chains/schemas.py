"""API shapes for chains, entries and proofs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from decision_log.boundary import SLUG_PATTERN, RequestBody
from decision_log.limits import MAX_SOURCE_CHARS


class ChainCreate(RequestBody):
    chain: str = Field(
        pattern=SLUG_PATTERN,
        min_length=1,
        max_length=64,
        description="Lowercase slug (a-z, 0-9, '-'), unique within the tenant",
    )
    description: str = Field(default="", max_length=1000)


class CheckpointInfo(BaseModel):
    size: int
    root_hash: str = Field(description="Merkle root, hex")
    note: str = Field(description="The C2SP signed note, as served at .../checkpoint")
    signed_at: datetime


class ChainProjection(BaseModel):
    """How far the decision read model (search and decision views) covers the chain."""

    next_index: int = Field(
        description="Entries below this index are in the read model; projection goes on from it"
    )
    behind: int = Field(description="Committed entries not in the read model yet")
    error: str | None = Field(
        description="Why projection stopped at next_index, while it fails; null when it does not"
    )
    failing_since: datetime | None = Field(description="When it first failed at next_index")
    last_failed_at: datetime | None
    attempts: int = Field(
        description="Failed attempts since failing_since; retried with growing delays, at most "
        "a minute apart, and the failure is cleared once an attempt makes progress"
    )
    retry_at: datetime | None = Field(description="When the next attempt is due")
    unprojectable_entries: int = Field(
        description="Entries left out of the read model because no column can take their "
        "decision id (subject) or deployed model name or version; they stay in the log"
    )
    last_unprojectable_index: int | None


class ChainInfo(BaseModel):
    tenant: str
    chain: str
    origin: str = Field(description="The checkpoint origin line of this chain")
    description: str
    created_at: datetime
    size: int = Field(description="Entries committed so far")
    root_hash: str = Field(description="Merkle root at that size, hex")
    checkpoint: CheckpointInfo | None
    projection: ChainProjection | None = Field(
        default=None, description="The decision read model's coverage; null for the access log"
    )


class ChainList(BaseModel):
    chains: list[ChainInfo]


def _absent(value: object) -> bool:
    return value is None


class Entry(BaseModel):
    index: int
    # Members that do not apply are left out, not sent as null: a healthy entry reads
    # {index, leaf, leaf_hash} as it always has.
    leaf: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="The exact leaf bytes, base64; absent if missing",
    )
    leaf_hash: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="SHA-256(0x00 || leaf) as stored, hex; absent if missing",
    )
    problems: list[str] | None = Field(
        default=None,
        exclude_if=_absent,
        description="What does not check out about this entry as stored, beside it: "
        "`leaf-hash` (the bytes do not hash to the stored hash), `index` (the leaf names "
        "another index, tenant or chain), `link` (its prev is not the stored hash of the entry "
        "before), `missing` (no entry is stored at this index). Absent when all is well; "
        "nothing here is a claim that the entry was verified",
    )


class EntryPage(BaseModel):
    entries: list[Entry]
    next_start: int | None = Field(description="start of the next page; null at the end")


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    hashes: list[str]
    problems: list[str] | None = Field(
        default=None,
        description="What does not check out, beside the proof: `leaf-hash` (the entry's "
        "bytes do not hash to the stored leaf hash), `inclusion` (the proof does not lead to "
        "root_hash). Absent when all is well",
    )


class ConsistencyProof(BaseModel):
    from_size: int = Field(serialization_alias="from")
    to_size: int = Field(serialization_alias="to")
    from_root: str
    to_root: str
    hashes: list[str]
    problems: list[str] | None = Field(
        default=None,
        description="`consistency` when the proof does not show to_root extends from_root",
    )


class LogKey(BaseModel):
    name: str
    verifier_key: str = Field(description="C2SP signed-note verifier key: name+keyid+base64")
    note_key_id: str
    dsse_keyid: str = Field(description="securesystemslib key id used in DSSE signatures")
    public_key: str = Field(description="raw Ed25519 public key, hex")
    algorithm: str


class LogKeys(BaseModel):
    origin: str
    keys: list[LogKey]


class MissingRange(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="First missing sequence (decimal text)")
    to: str = Field(description="Last missing sequence (decimal text)")
    opened_at: str = Field(description="received_at of the event that jumped over the range")


class ProducerSource(BaseModel):
    """One producer (CloudEvents ``source``) of the chain, with the verifier's figures."""

    source: str
    status: Literal["not-tracked", "ok", "complete", "gaps", "findings", "silent"] = Field(
        description="not-tracked: no event with a sequence; gaps: a range missing longer than "
        "the allowed age; findings: a sequence claimed by two ids, or a closing event that "
        "names another number; silent: quiet longer than twice its declared heartbeat; "
        "complete: closed with nothing missing; ok: none of these (gaps younger than the "
        "allowed age may be open)"
    )
    tracked: bool = Field(description="Whether any of its events carried a sequence")
    count: int = Field(description="Its events in the entries the verifier folded")
    first_received_at: str
    last_received_at: str = Field(description="When the log received its last event")
    last_event_time: str | None = Field(description="The CloudEvents time of its last event")
    highest_sequence: str | None = Field(description="Highest sequence seen (decimal text)")
    counted_from: str | None = Field(
        description="The lowest sequence the figures vouch for: 1 when the verifier folded the "
        "chain from its first entry, else the first number it saw of this source"
    )
    missing: list[MissingRange] = Field(description="Open gaps: numbers below the highest unseen")
    missing_count: str = Field(description="How many numbers are missing (decimal text)")
    overdue_gaps: int = Field(description="Missing ranges open longer than the allowed age")
    closed: bool = Field(description="Its last event was a closing event")
    complete: bool = Field(description="Closed, with no number up to its last one missing")
    heartbeat_interval: int | None = Field(description="Seconds, as it last declared")
    silent: bool
    silent_for_seconds: float | None
    findings: list[dict[str, Any]] = Field(description="The first findings (kind, sequence)")
    finding_count: int


class SourcesVerifier(BaseModel):
    """Whose figures these are: the independent verifier's, and how far it has checked."""

    available: bool = Field(description="False when the verifier could not be asked")
    reason: str | None = Field(description="Why there are no figures, if there are none")
    name: str | None = Field(description="The verifier's key name")
    verified_size: int | None = Field(description="Entries [0, verified_size) it has checked")
    covers: dict[str, int] | None = Field(
        description="The entries {start, end} the figures are folded from"
    )
    judged_at: str | None = Field(description="When gaps' age and silence were judged")
    gap_age_seconds: float | None
    silent_after_intervals: int | None
    attestation: dict[str, Any] | None = Field(
        description="The verifier's latest attestation {id, size, result, issued_at}; its "
        "signed predicate carries these figures as of its size (GET the verifier's "
        "/v1/chains/{chain}/attestations/latest)"
    )


class ChainSources(BaseModel):
    chain: str
    figures_by: Literal["verifier"] = Field(
        default="verifier",
        description="The log repeats the verifier's figures; it computes none of its own",
    )
    verifier: SourcesVerifier
    summary: dict[str, int] | None = Field(
        description="sources, tracked, with_gaps, with_overdue_gaps, silent, with_findings, "
        "complete, open_gaps"
    )
    sources: list[ProducerSource] = Field(description="In order of their names")
    next_after: str | None = Field(
        default=None, description="More producers follow: ask again with after=this"
    )


class ProducerClose(RequestBody):
    source: str = Field(
        min_length=1,
        max_length=MAX_SOURCE_CHARS,
        description="The producer (CloudEvents source) to close: one whose process is gone",
    )
    reason: str = Field(
        min_length=1, max_length=2000, description="Why, as it will stand in the chain for good"
    )


class ProducerClosed(BaseModel):
    chain: str
    source: str
    last_sequence: str = Field(description="The number its closing event took: the last")
    receipt: dict[str, Any] = Field(description="The closing event's receipt, as an append's")
