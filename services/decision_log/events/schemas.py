"""API shapes of an append: receipts and the DSSE envelope that signs them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from decision_log.boundary import TIME_PATTERN
from decision_log.events.cloudevents import BASE64_PATTERN
from decision_log.limits import MAX_ID_CHARS, MAX_SOURCE_CHARS, MAX_SUBJECT_CHARS, MAX_TYPE_CHARS

# The JSON Schema of one event as the log accepts it, written by hand because it says what a
# model cannot: the attribute-name rule, the value types of extensions, data and data_base64
# never together. It describes exactly what ``cloudevents.check_event`` accepts, apart from rules
# no schema states (the event's canonical size, nesting depth, distinct (source, id) within a
# batch, and the data schema of the log's own event types: see docs/api.md).
NO_NUL = "^[^\\u0000]*$"
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvents 1.0 event in the JSON format; extension attributes are allowed",
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_CHARS,
            "pattern": NO_NUL,
            "description": "With source, the idempotency key",
        },
        "source": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_SOURCE_CHARS,
            "pattern": NO_NUL,
        },
        "type": {"type": "string", "minLength": 1, "maxLength": MAX_TYPE_CHARS, "pattern": NO_NUL},
        "subject": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": MAX_SUBJECT_CHARS,
            "pattern": NO_NUL,
            "description": "The decision id",
        },
        "time": {
            "type": ["string", "null"],
            "format": "date-time",
            "pattern": TIME_PATTERN,
            "description": "RFC 3339; within years 0001 to 9999, not on 0001-01-01 with a "
            "positive offset nor on 9999-12-31 with a negative one",
        },
        "datacontenttype": {"type": ["string", "null"], "minLength": 1},
        "dataschema": {"type": ["string", "null"], "minLength": 1},
        "data": {"description": "Any JSON value (I-JSON: integers within +-(2^53-1))"},
        "data_base64": {"type": "string", "pattern": BASE64_PATTERN},
    },
    "required": ["specversion", "id", "source", "type"],
    "propertyNames": {"pattern": "^(?:[a-z0-9]+|data_base64)$"},
    "additionalProperties": {
        "anyOf": [
            {"type": "string"},
            {"type": "integer", "minimum": -(2**53 - 1), "maximum": 2**53 - 1},
            {"type": "boolean"},
        ]
    },
    "not": {"required": ["data", "data_base64"]},
}


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
