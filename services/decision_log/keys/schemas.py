"""API shapes for keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from decision_log.boundary import RequestBody, SlugField, StoredTime

Role = Literal["producer", "auditor", "admin", "personal-data"]


class KeyCreate(RequestBody):
    roles: list[Role] = Field(min_length=1, max_length=4, description="What the key may do")
    chains: list[SlugField] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Limit the key to these chains; omit for every chain",
    )
    label: str = Field(default="", max_length=200)
    expires_at: StoredTime | None = Field(
        default=None, description="When the key stops working; in the future"
    )


class KeyUpdate(RequestBody):
    expires_at: StoredTime = Field(description="When the key stops working")


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
