"""API shapes for witnesses."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CosignatureIn(BaseModel):
    size: int = Field(ge=0, description="Size of the checkpoint this cosigns")
    signature: str = Field(
        description="The C2SP tlog-cosignature line: '— <name> base64(keyid || time || sig)'"
    )


class CosignatureAccepted(BaseModel):
    tenant: str
    chain: str
    size: int
    witness: str
    stored: bool = Field(description="False when this exact cosignature was already stored")
