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
    "ProjectionMismatch",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "VerifierRequired",
    "install_problem_handlers",
    "problem_response",
]


class InvalidEvent(Problem):
    status, slug, title = 400, "invalid-cloudevent", "Not a valid CloudEvents 1.0 event"


class IdempotencyConflict(Conflict):
    slug = "idempotency-conflict"
    title = "Same (source, type, id) already appended with other content"


class VerifierRequired(Conflict):
    """What is asked for must be vouched for by the independent verifier, and no verifier is
    configured, it did not answer, or it refused: nothing is certified without it. ``reason``
    says which."""

    slug, title = "verifier-unavailable", "No independent verifier could vouch for this"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, reason=reason)


class ProjectionMismatch(Conflict):
    """The read model says something the proven events do not: ``decision_id``, ``column``,
    ``expected`` (from the events) and ``found`` (in the read model)."""

    slug, title = "projection-mismatch", "The read model disagrees with the recorded events"

    def __init__(
        self,
        detail: str,
        *,
        decision_id: str | None,
        column: str,
        expected: str | None,
        found: str | None,
    ) -> None:
        super().__init__(
            detail, decision_id=decision_id, column=column, expected=expected, found=found
        )
