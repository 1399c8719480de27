"""CloudEvents 1.0 as the SDK sends them (JSON format, batched mode), and the event types the
log publishes, named here by the same strings (the SDK never imports the server)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit_trail_sdk.errors import EventTooLarge
from audit_trail_sdk.limits import MAX_EVENT_BYTES

DECISION_RECORDED = "dev.audit-trail.decision.recorded.v1"
DECISION_REVIEWED = "dev.audit-trail.decision.reviewed.v1"
DECISION_OVERRIDDEN = "dev.audit-trail.decision.overridden.v1"
DECISION_CONTESTED = "dev.audit-trail.decision.contested.v1"
OUTCOME_OBSERVED = "dev.audit-trail.outcome.observed.v1"
MODEL_DEPLOYED = "dev.audit-trail.model.deployed.v1"
GENAI_INVOCATION = "dev.audit-trail.genai.invocation.v1"
# The completeness contract: heartbeats while idle, and a closing event naming the last sequence.
PRODUCER_HEARTBEAT = "dev.audit-trail.producer.heartbeat.v1"
PRODUCER_CLOSED = "dev.audit-trail.producer.closed.v1"

# Extension attributes: JSON Pointers of the personal fields in data, the data subject, the
# producer's per-source event number and its heartbeat interval in seconds.
PERSONAL_DATA = "personaldata"
DATA_SUBJECT = "datasubject"
SEQUENCE = "sequence"
HEARTBEAT_INTERVAL = "heartbeatinterval"
SEQUENCE_DIGITS = 20
# What ``stamp_sequence`` puts in front of an encoded event: '{"sequence":"<20 digits>",'.
SEQUENCE_PREFIX_BYTES = len(b'{"sequence":"",') + SEQUENCE_DIGITS
# Compact UTF-8 JSON, as the log measures it; made once (json.dumps with options makes an
# encoder per call). NaN and infinities are not JSON, so they are refused here, not by the log.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def format_sequence(number: int) -> str:
    """The contract's form: exactly 20 decimal digits, zero-padded."""
    return str(number).zfill(SEQUENCE_DIGITS)


def utc_now() -> str:
    """Now as RFC 3339 in UTC, to the microsecond."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class QueuedEvent:
    """An event encoded once, as it goes on the wire and into the journal."""

    event_id: str
    body: bytes
    delivery: Future[Any] | None = field(default=None, compare=False)
    # Counted in this process's flush accounting (false for a previous run's journal).
    accounted: bool = True


def encode_event(
    event_type: str,
    *,
    source: str,
    data: Any,
    subject: str | None = None,
    personal: Sequence[str] = (),
    data_subject: str | None = None,
    event_id: str | None = None,
    time: str | None = None,
    extensions: Mapping[str, str | int | bool] | None = None,
) -> tuple[str, bytes]:
    """(id, compact JSON) of an event without its sequence, which ``stamp_sequence`` adds.

    The id is made here, once: retries and journal replays send these very bytes, so the log
    recognises a resent event as a replay of the first."""
    if personal and not data_subject:
        raise ValueError("events with personal data must name their data subject")
    for pointer in personal:
        if not pointer.startswith("/") or "," in pointer:
            raise ValueError(f"personal field {pointer!r} must be a JSON Pointer into data")
    event_id = event_id or str(uuid.uuid4())
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time or utc_now(),
        "datacontenttype": "application/json",
    }
    if subject is not None:
        event["subject"] = subject
    if personal:
        event[PERSONAL_DATA] = ",".join(personal)
    if data_subject is not None:
        event[DATA_SUBJECT] = data_subject
    if extensions:
        event.update(extensions)
    event["data"] = data
    body = _ENCODER.encode(event).encode()
    size = len(body) + SEQUENCE_PREFIX_BYTES
    if size > MAX_EVENT_BYTES:
        raise EventTooLarge(
            f"event {event_id} is {size} bytes; the log takes at most {MAX_EVENT_BYTES}"
        )
    return event_id, body


def stamp_sequence(body: bytes, number: int) -> bytes:
    """The encoded event with its ``sequence`` attribute first: a splice, not a re-encoding,
    since numbers are given out under the queue's lock."""
    return b'{"sequence":"' + format_sequence(number).encode() + b'",' + body[1:]


def sequence_of(body: bytes) -> int:
    """The sequence number ``stamp_sequence`` put first in an encoded event."""
    start = len(b'{"sequence":"')
    return int(body[start : start + SEQUENCE_DIGITS])


def batch_body(events: Sequence[QueuedEvent]) -> bytes:
    return b"[" + b",".join(event.body for event in events) + b"]"


def drop_none(**members: Any) -> dict[str, Any]:
    return {name: value for name, value in members.items() if value is not None}
