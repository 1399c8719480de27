"""API shapes of an append: receipts and the DSSE envelope that signs them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in the JSON format; extension attributes are allowed."""

    model_config = ConfigDict(extra="allow")

    specversion: str = Field(examples=["1.0"])
    id: str
    source: str
    type: str
    subject: str | None = Field(default=None, description="The decision id")
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any | None = None
    data_base64: str | None = None


class DsseSignature(BaseModel):
    keyid: str
    sig: str


class DsseEnvelope(BaseModel):
    payload: str = Field(description="base64 of the RFC 8785 JSON {log, receipts}")
    payloadType: str = Field(examples=["application/vnd.audit-trail.receipts+json"])
    signatures: list[DsseSignature]


class ReceiptOut(BaseModel):
    tenant: str
    chain: str
    index: int
    leaf_hash: str
    received_at: str
    replayed: bool = Field(description="True when the event had been appended before")


class AppendResponse(ReceiptOut):
    signature: DsseEnvelope


class AppendBatchResponse(BaseModel):
    appended: int
    receipts: list[ReceiptOut]
    signature: DsseEnvelope
