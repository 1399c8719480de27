"""CloudEvents 1.0 in the JSON event format, structured and batched mode.

https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md (attributes) and
https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md (JSON format).
Validation is hand-written rather than a pydantic model: it runs for every event on the append
hot path, and the checks are few and flat.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.canonical import canonicalize, parse_json
from ledger.completeness import parse_interval
from ledger.errors import CanonicalJSONError
from ledger.sealing import content_digest

from decision_log.boundary import TIME_PATTERN
from decision_log.decisions.event_types import check_event_data
from decision_log.limits import ATTRIBUTE_MAX_CHARS
from decision_log.problems import InvalidEvent, InvalidInput, InvalidJSON, PayloadTooLarge

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"

REQUIRED_STRINGS = ("id", "source", "type")
OPTIONAL_STRINGS = ("subject", "datacontenttype", "dataschema", "time")
NOT_ATTRIBUTES = frozenset(("data", "data_base64"))
# The log's extension attributes (README, Personal data): JSON Pointers of the fields to seal,
# and the data subject, replaced by its keyed-HMAC pseudonym before the leaf is built.
PERSONAL_DATA = "personaldata"
DATA_SUBJECT = "datasubject"
# The completeness extensions (docs/completeness.md): ``sequence`` is taken as sent (one that is
# not 1-20 decimal digits is simply not tracked), but a declared heartbeat interval must be
# readable, or a producer would believe itself watched for silence when it is not.
HEARTBEAT_INTERVAL = "heartbeatinterval"
# Attribute names are lower-case ASCII letters and digits (spec.md, "Attribute Naming Convention").
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]+$")
# Names known to follow that convention, so the usual event runs no regular expression.
WELL_FORMED_NAMES = frozenset(
    ("specversion", *REQUIRED_STRINGS, *OPTIONAL_STRINGS, PERSONAL_DATA, DATA_SUBJECT)
)
ATTRIBUTE_VALUE_TYPES_REFUSED = (dict, list, float)
# RFC 3339 date-time, as the spec requires of "time", within the years the log stores.
RFC3339 = re.compile(TIME_PATTERN)
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event checked and canonicalised, ready to become a leaf. All of this is computed
    before the chain lock is taken, so that the work under the lock is a splice and a hash."""

    source: str
    event_id: str
    event_type: str
    subject: str | None
    event_json: bytes
    content_digest: bytes
    data_subject: str | None = None


def parse_events(
    body: bytes, *, batch: bool, max_depth: int, max_events: int
) -> list[tuple[str, dict[str, Any]]]:
    """The request's events as (JSON Pointer in the body, checked event object)."""
    try:
        document = parse_json(body, max_depth=max_depth)
    except CanonicalJSONError as error:
        raise InvalidJSON(str(error), pointer=error.pointer) from None
    if not batch:
        return [("", check_event(document, pointer=""))]
    if not isinstance(document, list):
        raise InvalidEvent("a batch must be a JSON array of events", pointer="")
    if not document:
        raise InvalidEvent("the batch is empty", pointer="")
    if len(document) > max_events:
        raise InvalidEvent(
            f"the batch holds {len(document)} events; at most {max_events} are accepted",
            pointer="",
        )
    events = [
        (f"/{position}", check_event(item, pointer=f"/{position}"))
        for position, item in enumerate(document)
    ]
    # The idempotency key is (chain, source, type, id) (events.appender).
    seen: dict[tuple[str, str, str], int] = {}
    for position, (_, event) in enumerate(events):
        key = (event["source"], event["type"], event["id"])
        if key in seen:
            raise InvalidInput(
                f"events {seen[key]} and {position} share source, type and id; "
                "each event of a batch needs its own idempotency key",
                pointer=f"/{position}/id",
            )
        seen[key] = position
    return events


def check_event(value: Any, *, pointer: str, from_binary: bool = False) -> dict[str, Any]:
    """The event if the log takes it, else the problem at its pointer. ``from_binary``: built by
    ``binary.event_from_binary``, whose attribute values are strings and whose ``data_base64``
    it encoded itself, so neither is checked again (a large body's base64 is not decoded)."""
    if not isinstance(value, dict):
        raise InvalidEvent("an event must be a JSON object", pointer=pointer)
    version = value.get("specversion")
    if version != "1.0":
        detail = (
            "specversion is required"
            if version is None
            else f"specversion {version!r} is not supported; use '1.0'"
        )
        raise InvalidEvent(detail, pointer=f"{pointer}/specversion")
    for name in REQUIRED_STRINGS:
        field = value.get(name)
        if not isinstance(field, str) or not field:
            raise InvalidEvent(
                f"{name} is required and must be a non-empty string", pointer=f"{pointer}/{name}"
            )
        _check_stored(name, field, pointer=pointer)
    for name in OPTIONAL_STRINGS:
        field = value.get(name)
        if field is not None and (not isinstance(field, str) or not field):
            raise InvalidEvent(f"{name} must be a non-empty string", pointer=f"{pointer}/{name}")
    subject = value.get("subject")
    if subject is not None:
        _check_stored("subject", subject, pointer=pointer)
    time = value.get("time")
    if time is not None:
        check_time(time, pointer=f"{pointer}/time")
    if "data" in value and "data_base64" in value:
        raise InvalidEvent(
            "an event carries data or data_base64, not both", pointer=f"{pointer}/data_base64"
        )
    if "data_base64" in value and not from_binary:
        encoded = value["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise TypeError
            base64.b64decode(encoded, validate=True)
        except (TypeError, binascii.Error):
            raise InvalidEvent(
                "data_base64 must be a base64 string", pointer=f"{pointer}/data_base64"
            ) from None
    for name, field in value.items():
        if name in NOT_ATTRIBUTES:
            continue
        if name not in WELL_FORMED_NAMES and not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidEvent(
                f"attribute name {name!r} must be lower-case letters and digits only",
                pointer=f"{pointer}/{_escape(name)}",
            )
        if not from_binary and isinstance(field, ATTRIBUTE_VALUE_TYPES_REFUSED):
            raise InvalidEvent(
                f"attribute {name} must be a string, an integer or a boolean",
                pointer=f"{pointer}/{name}",
            )
    interval = value.get(HEARTBEAT_INTERVAL)
    if interval is not None and parse_interval(interval) is None:
        raise InvalidEvent(
            "heartbeatinterval must be the heartbeat interval in whole seconds as decimal "
            "text, from 1 to 999999999",
            pointer=f"{pointer}/{HEARTBEAT_INTERVAL}",
        )
    check_event_data(value, pointer=pointer)
    return value


def _check_stored(name: str, field: str, *, pointer: str) -> None:
    """Attributes the log keeps in indexed columns: no NUL (PostgreSQL text cannot hold one),
    and no longer than an index row can hold (``decision_log.limits``)."""
    limit = ATTRIBUTE_MAX_CHARS[name]
    if len(field) > limit:
        raise InvalidEvent(
            f"{name} is {len(field)} characters long; at most {limit} are accepted",
            pointer=f"{pointer}/{name}",
        )
    if "\x00" in field:
        raise InvalidEvent(f"{name} must not contain NUL (U+0000)", pointer=f"{pointer}/{name}")


def check_time(time: str, *, pointer: str) -> None:
    """An RFC 3339 timestamp of a real moment within years 1 to 9999 in UTC (what PostgreSQL
    and Python both hold), as ``TIME_PATTERN`` states it. A leap second (``:60``) is RFC 3339
    and accepted. The pattern settles the calendar's edges; the rest is read off the digits,
    and the date is looked up once per day seen (it runs for every event)."""
    if not RFC3339.fullmatch(time):
        raise InvalidEvent(
            "time must be an RFC 3339 timestamp within the years 0001 to 9999 (not on "
            "0001-01-01 with a positive offset nor on 9999-12-31 with a negative one)",
            pointer=pointer,
        )
    if not _real_date(time[:10]):
        raise InvalidEvent(f"time {time!r} is not on a real date", pointer=pointer)
    hour, minute, second = int(time[11:13]), int(time[14:16]), int(time[17:19])
    zone = time[-6:]
    if (
        hour > 23
        or minute > 59
        or second > 60
        or (zone[0] in "+-" and (int(zone[1:3]) > 23 or int(zone[4:6]) > 59))
    ):
        raise InvalidEvent(f"time {time!r} is not a real moment", pointer=pointer)


@functools.lru_cache(maxsize=1024)
def _real_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def canonical_event(value: dict[str, Any], *, pointer: str) -> bytes:
    """The RFC 8785 bytes of an event; what JSON cannot hold is a problem at its pointer."""
    try:
        return canonicalize(value)
    except CanonicalJSONError as error:
        raise InvalidJSON(str(error), pointer=pointer + error.pointer) from None


def prepare_event(
    value: dict[str, Any],
    *,
    pointer: str,
    max_event_bytes: int,
    digest_key: bytes,
    plaintext_json: bytes | None = None,
    data_subject: str | None = None,
    oversize_to_digest: bool = False,
) -> PreparedEvent:
    """Canonicalise a checked event. ``plaintext_json`` is the event before its personal fields
    were sealed: idempotency compares plaintexts, since ciphertexts differ on every retry.

    An event over ``max_event_bytes`` is refused, or, with ``oversize_to_digest`` (the chain's
    setting), kept with its data replaced by what identifies it (``data_digested``). Events with
    personal data are always refused: a plain digest of personal data is never stored."""
    event_json = canonical_event(value, pointer=pointer)
    if (
        len(event_json) > max_event_bytes
        and oversize_to_digest
        and plaintext_json is None
        and ("data" in value or "data_base64" in value)
    ):
        value = data_digested(value)
        event_json = canonical_event(value, pointer=pointer)
    if len(event_json) > max_event_bytes:
        raise PayloadTooLarge(
            f"the event is {len(event_json)} bytes in canonical form; this chain takes at most "
            f"{max_event_bytes}",
            pointer=pointer,
        )
    return PreparedEvent(
        source=value["source"],
        event_id=value["id"],
        event_type=value["type"],
        subject=value.get("subject"),
        event_json=event_json,
        content_digest=content_digest(digest_key, plaintext_json or event_json),
        data_subject=data_subject,
    )


# Extension attributes of an event whose data was over its chain's limit and is not stored.
DATA_DIGEST = "datadigest"
DATA_SIZE = "datasize"


def data_digested(value: dict[str, Any]) -> dict[str, Any]:
    """The event without its data, naming it instead: ``datadigest`` (``sha256:<hex>`` of the
    data's bytes: those of ``data_base64`` decoded, or the RFC 8785 form of JSON ``data``, which
    for a binary-mode JSON body is the body with its whitespace and key order normalised),
    ``datasize`` (their length) and ``datacontenttype`` as sent."""
    digested = {name: field for name, field in value.items() if name not in NOT_ATTRIBUTES}
    if "data_base64" in value:
        payload = base64.b64decode(value["data_base64"])
    else:
        payload = canonical_event(value["data"], pointer="/data")
    digested[DATA_DIGEST] = "sha256:" + hashlib.sha256(payload).hexdigest()
    digested[DATA_SIZE] = len(payload)
    return digested


def _escape(name: str) -> str:
    """A key as a JSON Pointer reference token (RFC 6901 section 4)."""
    return name.replace("~", "~0").replace("/", "~1")
