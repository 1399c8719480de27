"""API shapes for witnesses."""

from __future__ import annotations

from pydantic import BaseModel, Field

from decision_log.boundary import JsonInt, RequestBody
from decision_log.limits import MAX_BIGINT


class CosignatureIn(RequestBody):
    size: JsonInt = Field(ge=0, le=MAX_BIGINT, description="Size of the checkpoint this cosigns")
    signature: str = Field(
        min_length=1,
        max_length=1000,
        description="The C2SP tlog-cosignature line: '— <name> base64(keyid || time || sig)'",
    )


class CosignatureAccepted(BaseModel):
    tenant: str
    chain: str
    size: int
    witness: str
    stored: bool = Field(description="False when this exact cosignature was already stored")


class AcknowledgementIn(RequestBody):
    """A finding the witness's operator acknowledged, as the witness recorded it."""

    finding_id: JsonInt = Field(ge=1, le=MAX_BIGINT, description="The finding's id at the witness")
    kind: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,63}$", description="The finding's kind, e.g. rollback"
    )
    first_bad_index: JsonInt | None = Field(
        default=None, ge=0, le=MAX_BIGINT, description="The first entry the finding concerns"
    )
    operator: str = Field(min_length=1, max_length=200, description="Who acknowledged it")
    reason: str = Field(min_length=1, max_length=2000, description="Why, as they gave it")
    epoch: JsonInt = Field(
        ge=0, le=MAX_BIGINT, description="The epoch the witness started for the chain after it"
    )


class AcknowledgementRecorded(BaseModel):
    tenant: str
    chain: str
    finding_id: int
    witness: str
