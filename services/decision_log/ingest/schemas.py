"""API shapes of a chain's ingest settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from decision_log.boundary import JsonInt, RequestBody
from decision_log.limits import MAX_EVENT_BYTES_CEILING, MIN_EVENT_BYTES

Oversize = Literal["refuse", "digest"]
GenAIContent = Literal["seal", "keep"]


class IngestSettings(BaseModel):
    max_event_bytes: int = Field(
        description="The largest event this chain takes, in canonical form (RFC 8785)"
    )
    oversize: Oversize = Field(
        description="refuse: an event over the limit is refused (413). digest: its body is "
        "stored as its SHA-256 digest, size and content type instead (extension attributes "
        "datadigest, datasize), so a sender that never retries loses nothing but the bytes"
    )
    genai_content: GenAIContent = Field(
        description="seal: GenAI message content (gen_ai.input.messages, gen_ai.output.messages, "
        "gen_ai.system_instructions) is sealed per data subject, erasable; keep: kept in clear"
    )
    genai_subject_attribute: str = Field(
        description="The span or resource attribute naming the data subject whose key seals "
        "message content; without it, the conversation (gen_ai.conversation.id), else the trace"
    )


class IngestSettingsIn(RequestBody):
    max_event_bytes: JsonInt = Field(ge=MIN_EVENT_BYTES, le=MAX_EVENT_BYTES_CEILING)
    oversize: Oversize = "refuse"
    genai_content: GenAIContent = "seal"
    genai_subject_attribute: str = Field(
        default="enduser.id", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"
    )
