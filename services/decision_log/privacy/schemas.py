"""API shapes for personal data, retention and legal holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.sealing import PSEUDONYM_PREFIX
from pydantic import BaseModel, Field, model_validator

from decision_log.boundary import JsonInt, RequestBody, StoredTime, body_schema
from decision_log.limits import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS

PSEUDONYM_PATTERN = f"^{PSEUDONYM_PREFIX}[0-9a-f]{{64}}$"
MAX_SUBJECT_IDENTIFIER_CHARS = 1000


class SubjectIn(RequestBody):
    subject: str = Field(
        min_length=1,
        max_length=MAX_SUBJECT_IDENTIFIER_CHARS,
        description="The data subject's identifier (not stored)",
    )


class PseudonymOut(BaseModel):
    pseudonym: str


class ErasureIn(RequestBody):
    model_config = body_schema(
        oneOf=[
            {"required": ["subject"], "not": {"required": ["pseudonym"]}},
            {"required": ["pseudonym"], "not": {"required": ["subject"]}},
        ]
    )

    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SUBJECT_IDENTIFIER_CHARS,
        description="The identifier, or ...",
    )
    pseudonym: str | None = Field(
        default=None, pattern=PSEUDONYM_PATTERN, description="... its pseudonym"
    )
    reason: str = Field(min_length=1, max_length=2000)
    override_reason: str | None = Field(
        default=None,
        max_length=2000,
        description="Erase despite the retention floor or a legal hold; recorded in the log",
    )

    @model_validator(mode="after")
    def one_reference(self) -> ErasureIn:
        if (self.subject is None) == (self.pseudonym is None):
            raise ValueError("give exactly one of subject and pseudonym")
        return self


class ErasureOut(BaseModel):
    pseudonym: str
    keys_destroyed: int
    chains: list[str]
    erasure_events: list[dict[str, Any]] = Field(description="Receipts of the erasure events")


class DisposalIn(RequestBody):
    before: StoredTime = Field(description="Dispose of subjects whose last record is older")
    reason: str = Field(min_length=1, max_length=2000)
    override_reason: str | None = Field(
        default=None,
        max_length=2000,
        description="Dispose inside the retention period or under a legal hold; recorded",
    )


class DisposalOut(BaseModel):
    chain: str
    before: datetime
    subjects: int = Field(description="Data subjects whose keys were destroyed")
    disposal_event: dict[str, Any] = Field(description="Receipt of the disposal event")


class RetentionIn(RequestBody):
    days: JsonInt = Field(
        ge=MIN_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
        description="At least 183 days (AI Act Art. 19(1), 26(6)), at most a century",
    )


class RetentionOut(BaseModel):
    chain: str
    days: int


class HoldIn(RequestBody):
    reason: str = Field(min_length=1, max_length=2000)


class Hold(BaseModel):
    id: int
    reason: str
    set_by: str
    set_at: datetime
    lifted_by: str | None
    lifted_at: datetime | None
    lift_reason: str | None


class RevealedEvent(BaseModel):
    index: int
    event: dict[str, Any]
    withheld: list[str] = Field(description="Pointers into data still sealed")
    why_withheld: str | None = Field(description="'no right', 'erased', or null")
