"""API shapes of the verifier."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Acknowledgement(BaseModel):
    operator: str
    reason: str
    acknowledged_at: datetime


class EpochStart(BaseModel):
    epoch: int
    start_size: int = Field(
        description="The epoch continues from the checkpoint of this size, cosigned before the "
        "acknowledged finding's first bad index; entries [0, start_size) are still compared "
        "with the leaf hashes remembered for them"
    )
    history_replaced: bool = Field(
        description="True when the epoch had to start from 0 although entries had been "
        "cosigned: none of the history cosigned before is carried over"
    )
    after_finding: int | None = Field(description="The acknowledged finding that started it")
    started_at: datetime | None


class FindingOut(BaseModel):
    id: int
    epoch: int
    kind: str = Field(
        description="Which check failed: leaf-mismatch, missing-entry, misplaced-leaf, "
        "rewritten-history, rollback, forked-history, inconsistent-checkpoint, ..."
    )
    first_bad_index: int | None
    detail: str
    evidence: dict[str, Any] = Field(description="Expected vs found, checkpoints, proofs")
    found_at: datetime
    acknowledged: Acknowledgement | None
    next_epoch: EpochStart | None = Field(description="The epoch its acknowledgement started")
    attestation: dict[str, Any] = Field(description="The signed negative attestation (DSSE)")


class CosignedCheckpoint(BaseModel):
    size: int
    root_hash: str
    note: str = Field(description="The log-signed checkpoint with this verifier's cosignature")
    cosigned_at: datetime


class SweepStatus(BaseModel):
    current_pass: int | None = Field(description="The pass running, or the last one")
    running: bool
    requested: Literal["schedule", "on-demand"] | None
    cursor: int = Field(description="Entries [0, cursor) re-read by the current pass so far")
    end: int = Field(description="Entries [0, end) the current pass re-reads")
    started_at: datetime | None
    round_started_at: datetime | None = Field(
        description="When the sweep's current round started: it re-reads every chain followed"
    )
    next_round_at: datetime | None = Field(
        description="When the next round starts (later, if this one has not ended by then)"
    )
    last_full_sweep_finished_at: datetime | None = Field(
        description="When a pass last re-read the whole chain (this epoch) and found it as cosigned"
    )
    last_full_sweep_size: int | None
    behind: bool = Field(
        description="The chain is not done with a round that started more than a period ago"
    )
    period_seconds: float
    rate_entries_per_second: float = Field(description="The cap, over all chains")
    entries_per_period_at_cap: int
    watched_entries: int = Field(description="Entries of every chain the sweep re-reads")
    rate_covers_period: bool = Field(
        description="Whether the cap re-reads every watched entry within one period"
    )


class ChainStatus(BaseModel):
    tenant: str
    chain: str
    origin: str
    epoch: int = Field(description="Goes up by one when a finding is acknowledged")
    epoch_start: EpochStart = Field(description="Where the current epoch started, and why")
    verified_size: int = Field(description="Entries replayed and checked; the cosigned size")
    root_hash: str
    verified_at: datetime | None
    entries_replayed: int
    halted: bool = Field(description="True while a finding awaits an operator: nothing is cosigned")
    cosigned_checkpoint: CosignedCheckpoint | None
    findings: list[FindingOut]
    sweep: SweepStatus


class ChainStatusList(BaseModel):
    chains: list[ChainStatus]


class Attestation(BaseModel):
    id: int
    size: int
    root_hash: str
    result: str = Field(description="passed or failed")
    issued_at: datetime
    envelope: dict[str, Any] = Field(description="in-toto Statement v1 in a DSSE envelope")


class AttestationList(BaseModel):
    attestations: list[Attestation]


class Verification(BaseModel):
    status: ChainStatus
    attestation: Attestation | None


class FindingRef(BaseModel):
    id: int
    kind: str
    first_bad_index: int | None


class SweepPass(BaseModel):
    """One pass re-reading a chain: a job when asked for with `verify?full=true`."""

    chain: str
    number: int
    requested: Literal["schedule", "on-demand"]
    state: Literal["running", "passed", "failed", "abandoned"]
    started_at: datetime
    finished_at: datetime | None
    cursor: int = Field(description="Entries [0, cursor) re-read so far")
    end: int = Field(description="Entries [0, end) this pass re-reads")
    finding: FindingRef | None = Field(description="What a failed pass found")


class InclusionProof(BaseModel):
    tree_size: int
    leaf_hash: str
    root_hash: str
    hashes: list[str]


class HaltingFinding(BaseModel):
    id: int
    kind: str
    first_bad_index: int | None = Field(
        description="The first entry found not to be what was cosigned; null if none is named"
    )


class Coverage(BaseModel):
    index: int
    halted_by: HaltingFinding | None = Field(
        description="The finding the chain is halted by, if any: entries from its first bad "
        "index on may no longer be the ones the checkpoint below committed, so compare the "
        "leaf hash you compute with the proof's"
    )
    covered: bool = Field(description="Whether a checkpoint this verifier cosigned covers it")
    cosigned_size: int | None
    checkpoint: str | None = Field(description="That checkpoint, with this verifier's cosignature")
    inclusion_proof: InclusionProof | None = Field(
        description="RFC 6962 inclusion proof against it, checked by the verifier"
    )


class VerifierKeys(BaseModel):
    name: str
    cosignature_verifier_key: str = Field(
        description="C2SP signed-note verifier key (type 0x04, cosignature/v1)"
    )
    note_key_id: str
    dsse_keyid: str = Field(description="securesystemslib key id of the DSSE signatures")
    public_key: str = Field(description="raw Ed25519 public key, hex")
    public_key_pem: str
    algorithm: str
    log_verifier_key: str = Field(description="The log key this verifier trusts")


class MissingRange(BaseModel):
    from_: str = Field(alias="from", description="First missing sequence (decimal text)")
    to: str = Field(description="Last missing sequence (decimal text)")
    opened_at: str = Field(description="received_at of the event that jumped over the range")

    model_config = {"populate_by_name": True}


class SourceCompleteness(BaseModel):
    source: str
    status: Literal["not-tracked", "ok", "complete", "gaps", "findings", "silent"] = Field(
        description="not-tracked: no event with a sequence; gaps: a range missing longer than "
        "the allowed age; findings: a sequence claimed by two ids, or a closing event that "
        "names another number; silent: quiet longer than twice its declared heartbeat; "
        "complete: closed with nothing missing; ok: none of these (gaps younger than the "
        "allowed age may be open)"
    )
    tracked: bool = Field(description="Whether any of its events carried a sequence")
    count: int = Field(description="Events of this source in the entries folded")
    first_received_at: str
    last_received_at: str
    last_event_time: str | None = Field(description="The CloudEvents time of its last event")
    highest_sequence: str | None = Field(description="Highest sequence seen (decimal text)")
    counted_from: str | None = Field(
        description="The lowest sequence the figures vouch for: 1 when the verifier folded the "
        "chain from its first entry, else the first number it saw of this source"
    )
    missing: list[MissingRange] = Field(description="Numbers below the highest never seen")
    missing_count: str = Field(description="How many numbers are missing (decimal text)")
    overdue_gaps: int = Field(description="Missing ranges open longer than the allowed age")
    closed: bool = Field(description="Its last event was a closing event")
    complete: bool = Field(description="Closed, with no number up to its last one missing")
    heartbeat_interval: int | None = Field(description="Seconds, as last declared")
    silent: bool
    silent_for_seconds: float | None
    findings: list[dict[str, Any]] = Field(description="The first findings (kind, sequence)")
    finding_count: int


class CompletenessSummary(BaseModel):
    sources: int
    tracked: int
    with_gaps: int = Field(description="Sources with any missing range open")
    with_overdue_gaps: int
    silent: int
    with_findings: int
    complete: int
    open_gaps: int = Field(description="Missing ranges over all sources")


class CompletenessRange(BaseModel):
    start: int
    end: int


class AttestationRef(BaseModel):
    id: int
    size: int
    result: str
    issued_at: datetime


class ChainCompleteness(BaseModel):
    tenant: str
    chain: str
    verifier: str = Field(description="The verifier's key name: whose figures these are")
    verified_size: int
    covers: CompletenessRange | None = Field(
        description="The entries [start, end) the figures are folded from, all replayed by "
        "this verifier; null until it has replayed any"
    )
    judged_at: str = Field(description="The time gaps' age and silence are judged at")
    gap_age_seconds: float
    silent_after_intervals: int
    summary: CompletenessSummary = Field(description="Over every source, whatever is listed")
    sources: list[SourceCompleteness] = Field(description="In order of their names")
    next_after: str | None = Field(
        default=None, description="More sources follow: ask again with after=this"
    )
    attestation: AttestationRef | None = Field(
        description="The latest attestation, which signs these figures as of its size and "
        "issue time in its predicate's completeness"
    )
