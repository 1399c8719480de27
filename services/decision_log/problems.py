"""The decision_log's problems: the shared RFC 9457 base (``http_edge.problems``) and the kinds
only the log raises. Everything below the routers raises one of these and knows nothing of HTTP
beyond its status code."""

from __future__ import annotations

from http_edge.handlers import install_problem_handlers
from http_edge.problems import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    Forbidden,
    IntegrityFailure,
    InternalError,
    InvalidInput,
    InvalidJSON,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Problem,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    problem_response,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Conflict",
    "Forbidden",
    "IdempotencyConflict",
    "IntegrityFailure",
    "InternalError",
    "InvalidEvent",
    "InvalidInput",
    "InvalidJSON",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "Problem",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "install_problem_handlers",
    "problem_response",
]


class InvalidEvent(Problem):
    status, slug, title = 400, "invalid-cloudevent", "Not a valid CloudEvents 1.0 event"


class IdempotencyConflict(Conflict):
    slug = "idempotency-conflict"
    title = "Same (source, type, id) already appended with other content"
