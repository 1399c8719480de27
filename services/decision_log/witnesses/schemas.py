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
