"""API shapes of the verifier."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Acknowledgement(BaseModel):
    operator: str
    reason: str
    acknowledged_at: datetime


class FindingOut(BaseModel):
    id: int
    epoch: int
    kind: str = Field(description="Which check failed, e.g. broken-link, rewritten-history")
    first_bad_index: int | None
    detail: str
    evidence: dict[str, Any] = Field(description="Expected vs found, checkpoints, proofs")
    found_at: datetime
    acknowledged: Acknowledgement | None
    attestation: dict[str, Any] = Field(description="The signed negative attestation (DSSE)")


class CosignedCheckpoint(BaseModel):
    size: int
    root_hash: str
    note: str = Field(description="The log-signed checkpoint with this verifier's cosignature")
    cosigned_at: datetime


class ChainStatus(BaseModel):
    tenant: str
    chain: str
    origin: str
    epoch: int = Field(description="Starts over from an empty tree when a finding is acknowledged")
    verified_size: int = Field(description="Entries replayed and checked; the cosigned size")
    root_hash: str
    verified_at: datetime | None
    entries_replayed: int
    halted: bool = Field(description="True while a finding awaits an operator: nothing is cosigned")
    cosigned_checkpoint: CosignedCheckpoint | None
    findings: list[FindingOut]


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


class InclusionProof(BaseModel):
    tree_size: int
    leaf_hash: str
    root_hash: str
    hashes: list[str]


class Coverage(BaseModel):
    index: int
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
