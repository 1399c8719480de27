"""API shapes for keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Role = Literal["producer", "auditor", "admin", "personal-data"]


class KeyCreate(BaseModel):
    roles: list[Role] = Field(min_length=1, description="What the key may do")
    chains: list[str] | None = Field(
        default=None, description="Limit the key to these chains; omit for every chain"
    )
    label: str = Field(default="", max_length=200)
    expires_at: datetime | None = None


class KeyUpdate(BaseModel):
    expires_at: datetime = Field(description="When the key stops working")


class KeyInfo(BaseModel):
    key_id: str
    tenant: str
    roles: list[Role]
    chains: list[str] | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    api_key: str = Field(description="The secret; shown once, stored only as a hash")
