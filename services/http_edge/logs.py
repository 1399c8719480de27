"""Structured logs: one JSON object per line, each with the id of the request it belongs to.

Both services log through ``JsonLineFormatter`` (``audit_trail.server.logging_config`` installs
it): a record becomes ``{"time", "level", "logger", "message", "request_id", ...}`` plus the
fields a caller passed in ``extra={"fields": {...}}``. A request line (``log_request``) names the
route's template, never the path as sent or its query string, which may carry a token
(``?access_token=``) or personal data; nothing here ever logs a header but ``traceparent``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from http_edge.request_ids import current_request_id

# W3C Trace Context: version-traceid-parentid-flags, lowercase hex, not all zeros.
TRACEPARENT = re.compile(rb"[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

requests_log = logging.getLogger("http_edge.requests")


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def traceparent_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's ``traceparent`` header if it is well-formed W3C Trace Context, else None."""
    for name, value in headers:
        if name == b"traceparent":
            return value.decode("ascii") if TRACEPARENT.fullmatch(value) else None
    return None


def log_request(
    *,
    method: str,
    route: str,
    status: int,
    started: float,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """One line per request: what was asked (the route template), the answer and its time, and
    the caller's well-formed ``traceparent`` (read from ``headers`` only when the line is
    logged)."""
    if not requests_log.isEnabledFor(logging.INFO):
        return
    traceparent = traceparent_of(headers)
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if traceparent is not None:
        fields["traceparent"] = traceparent
    requests_log.info("request", extra={"fields": fields, "request_id": current_request_id()})


def route_template(scope: Mapping[str, Any]) -> str:
    """The template of the route that served the request (``/v1/chains/{chain}``), never the
    path as sent; ``unmatched`` when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
