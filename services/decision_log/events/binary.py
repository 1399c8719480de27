"""CloudEvents HTTP binding, content modes and binary mode.

https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md

- §3: the mode is read off ``Content-Type``: a type starting ``application/cloudevents-batch`` is
  batched mode, one starting ``application/cloudevents`` structured mode (of these the log reads
  the JSON format only: any other is 415), and anything else, or no ``Content-Type`` at all, is
  binary mode.
- §3.1: in binary mode the body is the event's data, ``Content-Type`` is its ``datacontenttype``
  (a ``ce-datacontenttype`` header MUST NOT be present as well), and every other attribute is a
  ``ce-<name>`` header, names case-insensitive (ASGI servers hand them over lower-cased).
- §3.1.3.2: a header value is first unquoted when it is a legacy quoted string (RFC 7230 §3.2.6),
  then percent-decoded once as UTF-8; invalid UTF-8 (``%C0%A0``) MUST be refused. Senders that
  do not encode at all (the Go SDK, which KServe uses, writes values raw: ``{"a":["b"]}``) pass
  unchanged, since only ``%`` has a meaning to the decoder.

The event is rebuilt as the JSON format would carry it, so that it is checked, canonicalised and
hashed exactly as a structured event is; a binary and a structured request of one event are
therefore idempotent replays of each other when their attribute values are strings in both (in
binary mode every extension value is a string). The body becomes ``data`` when its type is JSON
(``application/json``, ``*/*+json``, or absent) and it parses under the log's JSON rules, and
``data_base64`` otherwise: binary senders mostly cannot retry, so a body is never refused for
what it holds (its size is the chain's rule, ``events.ingest``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any, Literal

from ledger.canonical import parse_json
from ledger.errors import CanonicalJSONError

from decision_log.events.cloudevents import BATCH, STRUCTURED, check_event
from decision_log.problems import InvalidEvent, InvalidInput, UnsupportedMediaType

ContentMode = Literal["structured", "batch", "binary"]

CE_PREFIX = b"ce-"
CLOUDEVENTS_MEDIA = "application/cloudevents"
CLOUDEVENTS_BATCH_MEDIA = "application/cloudevents-batch"
REQUIRED_HEADERS = ("ce-specversion", "ce-id", "ce-source", "ce-type")
# A percent sign that does not start two hex digits: not percent-encoding (RFC 3986 §2.1).
STRAY_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
# A media type or a full Content-Type value: visible ASCII, spaces and tabs (RFC 9110 §8.3).
CONTENT_TYPE_VALUE = re.compile(rb"^[\x21-\x7e][\x20-\x7e\t]*$")


def content_mode(media_type: str) -> ContentMode:
    """The mode of a request by its media type (lower-case, parameters removed), §3."""
    if media_type.startswith(CLOUDEVENTS_BATCH_MEDIA):
        if media_type == BATCH:
            return "batch"
    elif media_type.startswith(CLOUDEVENTS_MEDIA):
        if media_type == STRUCTURED:
            return "structured"
    else:
        return "binary"
    raise UnsupportedMediaType(
        f"event format {media_type!r} is not accepted; send {STRUCTURED} (one event), {BATCH} "
        "(a JSON array of events), or the event in binary mode (ce-* headers, any other "
        "content type)"
    )


def media_type_of(content_type: bytes | None) -> str:
    """The media type of a Content-Type value: lower-case, without parameters ("" if none)."""
    if content_type is None:
        return ""
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def is_json_media_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def event_from_binary(
    ce_headers: Sequence[tuple[bytes, bytes]],
    content_type: bytes | None,
    body: bytes,
    *,
    max_depth: int,
    media_type: str | None = None,
) -> dict[str, Any]:
    """The event a binary-mode request carries, checked as a structured event is
    (``cloudevents.check_event``). Problems name the header at fault (``header``), or the
    place in the body (``pointer``) for the data schema of the log's own event types.
    ``media_type``: ``content_type``'s, where the caller has it already.

    It runs for every binary event, so the usual header (no ``%``, not quoted) is decoded
    inline, and header names are spelled out only for a problem."""
    event: dict[str, Any] = {}
    for raw_name, raw_value in ce_headers:
        name = _ATTRIBUTE_NAMES.get(raw_name) or raw_name[3:].decode("latin-1")
        if name in event or name in NOT_BINARY_ATTRIBUTES:
            _refuse_header(name, event)
        if b"%" in raw_value or raw_value.startswith(b'"'):
            event[name] = decode_header_value(raw_value, header=f"ce-{name}")
            continue
        try:
            event[name] = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            event[name] = decode_header_value(raw_value, header=f"ce-{name}")
    if not ("specversion" in event and "id" in event and "source" in event and "type" in event):
        missing = [header for header in REQUIRED_HEADERS if header[3:] not in event]
        raise InvalidEvent(_missing_detail(missing, content_type, body), header=missing[0])
    if content_type is not None:
        if not CONTENT_TYPE_VALUE.fullmatch(content_type):
            raise InvalidInput(
                "Content-Type must be visible ASCII (a media type and its parameters)",
                header="Content-Type",
            )
        event["datacontenttype"] = content_type.decode("ascii")
    if body:
        if media_type is None:
            media_type = media_type_of(content_type)
        data = (
            _json_or_not(body, max_depth)
            if not media_type or is_json_media_type(media_type)
            else _NOT_JSON
        )
        if data is _NOT_JSON:
            event["data_base64"] = base64.b64encode(body).decode("ascii")
        else:
            event["data"] = data
    try:
        return check_event(event, pointer="", from_binary=True)
    except InvalidEvent as problem:
        raise _located_in_binary(problem) from None
    except InvalidInput as problem:  # the data schema of the log's own event types
        raise _located_in_binary(problem) from None


_NOT_JSON = object()
# The usual headers' attribute names, spelled once rather than for every event.
_ATTRIBUTE_NAMES = {
    f"ce-{name}".encode(): name
    for name in (
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "dataschema",
        "inferenceservicename",
        "namespace",
        "component",
        "endpoint",
        "metadata",
        "annotations",
        "recordedtime",
        "requestid",
        "modelid",
        "protocol",
    )
}
# Members of the JSON format that are not attributes, and the one attribute that travels as
# Content-Type: none of them may come as a ce-* header (§3.1.1, §3.1.2).
NOT_BINARY_ATTRIBUTES = frozenset(("datacontenttype", "data", "data_base64"))


def _refuse_header(name: str, event: dict[str, Any]) -> None:
    header = f"ce-{name}"
    if name == "datacontenttype":
        raise InvalidEvent(
            "ce-datacontenttype must not be sent in binary mode: Content-Type is the data's "
            "content type (HTTP binding §3.1.1)",
            header=header,
        )
    if name in NOT_BINARY_ATTRIBUTES:
        raise InvalidEvent(
            f"{header} is not an attribute: in binary mode the body is the data", header=header
        )
    raise InvalidEvent(f"{header} is sent more than once", header=header)


def _json_or_not(body: bytes, max_depth: int) -> Any:
    """The body as JSON under the log's rules, or ``_NOT_JSON`` (it is kept as bytes then)."""
    try:
        return parse_json(body, max_depth=max_depth)
    except CanonicalJSONError:
        return _NOT_JSON


def decode_header_value(raw: bytes, *, header: str) -> str:
    """A ``ce-*`` header value as the attribute's string (§3.1.3.2)."""
    if len(raw) >= 2 and raw[:1] == b'"' and raw[-1:] == b'"':
        # A legacy quoted string (RFC 7230 §3.2.6): backslash escapes the next character.
        raw = QUOTED_PAIR.sub(rb"\1", raw[1:-1])
    if b"%" in raw:
        if STRAY_PERCENT.search(raw):
            raise InvalidEvent(
                f"{header} holds a '%' that does not start a percent-encoded byte (%XX)",
                header=header,
            )
        raw = PERCENT_ESCAPE.sub(lambda match: bytes((int(match.group(1), 16),)), raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(
            f"{header} is not UTF-8 once percent-decoded (e.g. an overlong encoding such as "
            "%C0%A0), which the HTTP binding requires refusing",
            header=header,
        ) from None


def _missing_detail(missing: list[str], content_type: bytes | None, body: bytes) -> str:
    sent_as = "no Content-Type" if content_type is None else f"Content-Type {content_type!r}"
    detail = (
        f"a binary-mode event ({sent_as}) needs the header{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)}"
    )
    if body.lstrip()[:1] == b"{" and b'"specversion"' in body:
        detail += f"; the body looks like a whole event: send it with Content-Type: {STRUCTURED}"
    return detail


def _located_in_binary(problem: InvalidEvent | InvalidInput) -> InvalidEvent | InvalidInput:
    """The problem as a binary request should read it: an attribute is a header, and the data
    is the body itself (``/data/x`` of the event is ``/x`` of the body)."""
    pointer = problem.pointer or ""
    if pointer.startswith("/data/") or pointer == "/data":
        problem.pointer = pointer[len("/data") :]
        return problem
    if pointer == "/data_base64":
        problem.pointer = ""
        return problem
    name = pointer[1:].split("/", 1)[0]
    header = "Content-Type" if name == "datacontenttype" else f"ce-{name}"
    problem.pointer = None
    problem.extensions["header"] = header
    problem.detail = f"{header}: {problem.detail}"
    return problem
