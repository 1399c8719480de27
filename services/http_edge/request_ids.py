"""The id of the request being served: taken from ``X-Request-Id`` when it is safe, else made.

A caller's id is reused only if it matches ``^[A-Za-z0-9._-]{1,64}$``: anything else could carry
line breaks or markup into logs and problem bodies, so it is replaced rather than echoed.
The id lives in a context variable that the guard sets for each request; tasks started while a
request is served inherit it, so code that answers several requests at once (the group commit)
must render per-request output in the request's own task.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar

HEADER = b"x-request-id"
SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current.get()


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` if it is safe to repeat, else a new one."""
    for name, value in headers:
        if name == HEADER:
            if SAFE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return new_request_id()


def set_request_id(request_id: str) -> None:
    _current.set(request_id)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record (``%(request_id)s``), ``-`` outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get() or "-"
        return True
