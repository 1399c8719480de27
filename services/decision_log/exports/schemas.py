"""Export requests and jobs as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from decision_log.boundary import JsonInt, RequestBody, StoredTime, body_schema
from decision_log.limits import MAX_BIGINT, MAX_SUBJECT_CHARS

MAX_DECISIONS = 1000
MAX_CONSISTENCY_SIZES = 32
MAX_REASON_CHARS = 2000

DecisionIdField = Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT_CHARS)]
CheckpointSize = Annotated[JsonInt, Field(ge=1, le=MAX_BIGINT)]


def _only(kind: str, *members: str, **more: Any) -> dict[str, Any]:
    """The members an export of one kind may carry, as a JSON Schema branch."""
    others = [name for name in KIND_MEMBERS if name not in members]
    return {
        "properties": {"kind": {"const": kind}},
        "not": {"anyOf": [{"required": [name]} for name in others]},
        **more,
    }


KIND_MEMBERS = ("start", "end", "since", "until", "decision_ids")


class ExportRequest(RequestBody):
    """What to export from one chain: an index range, a time range, or chosen decisions."""

    model_config = body_schema(
        oneOf=[
            _only("range", "start", "end"),
            _only(
                "time",
                "since",
                "until",
                anyOf=[{"required": ["since"]}, {"required": ["until"]}],
            ),
            _only("decisions", "decision_ids", required=["decision_ids"]),
        ]
    )

    kind: Literal["range", "time", "decisions"] = Field(
        description="range: entries [start, end); time: entries received in [since, until); "
        "decisions: only the events of the listed decisions (selective disclosure)"
    )
    start: JsonInt | None = Field(
        default=None, ge=0, le=MAX_BIGINT, description="range: first index (default 0)"
    )
    end: JsonInt | None = Field(
        default=None,
        ge=1,
        le=MAX_BIGINT,
        description="range: one past the last index (default: the checkpoint's size)",
    )
    since: StoredTime | None = Field(default=None, description="time: first receipt time")
    until: StoredTime | None = Field(default=None, description="time: receipt times before this")
    decision_ids: list[DecisionIdField] | None = Field(
        default=None, min_length=1, max_length=MAX_DECISIONS, description="decisions: their ids"
    )
    consistency_from: list[CheckpointSize] = Field(
        default_factory=list,
        max_length=MAX_CONSISTENCY_SIZES,
        description="Sizes of earlier checkpoints the recipient holds; the bundle proves that "
        "its checkpoint extends each of them",
    )
    override_reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REASON_CHARS,
        description="Export even what does not verify (a failed check, a verifier finding, no "
        "verifier): needs a key with the admin role besides auditor. The reason is recorded "
        "in the access log and printed at the top of the bundle with every check that failed",
    )

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ExportRequest:
        allowed = {
            "range": {"start", "end"},
            "time": {"since", "until"},
            "decisions": {"decision_ids"},
        }[self.kind]
        for name in ("start", "end", "since", "until", "decision_ids"):
            if getattr(self, name) is not None and name not in allowed:
                raise ValueError(f"{name} does not apply to an export of kind {self.kind!r}")
        if self.kind == "decisions" and not self.decision_ids:
            raise ValueError("an export of kind 'decisions' needs decision_ids")
        if self.kind == "time" and self.since is None and self.until is None:
            raise ValueError("an export of kind 'time' needs since, until or both")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ExportJob(BaseModel):
    id: str
    chain: str
    status: Literal["running", "ready", "failed"]
    selection: dict[str, object]
    checkpoint_size: int
    total: int = Field(description="Entries to export")
    done: int = Field(description="Entries written so far")
    bytes: int | None = None
    sha256: str | None = Field(default=None, description="SHA-256 of the bundle file")
    error: str | None = None
    problem: dict[str, Any] | None = Field(
        default=None,
        description="Why it failed: the problem (RFC 9457) it was refused with, e.g. an "
        "integrity-failure naming the entry and the check",
    )
    override_reason: str | None = Field(
        default=None, description="Built under an administrator's override, for this reason"
    )
    overridden: list[dict[str, Any]] | None = Field(
        default=None,
        description="Under an override: the checks that failed and were exported anyway (at "
        "most 100 listed)",
    )
    created_at: datetime
    finished_at: datetime | None = None
    expires_at: datetime
    download: str | None = Field(default=None, description="Where to GET the bundle when ready")


class ExportList(BaseModel):
    exports: list[ExportJob]
