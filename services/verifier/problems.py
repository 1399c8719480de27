"""The verifier's problems: the shared RFC 9457 base (``http_edge.problems``) and the kinds only
the verifier raises."""

from __future__ import annotations

from http_edge.handlers import install_problem_handlers
from http_edge.problems import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    Forbidden,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    Problem,
    Unauthenticated,
    Unavailable,
    problem_response,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Conflict",
    "Forbidden",
    "IntegrityFailure",
    "InvalidInput",
    "LogUnavailable",
    "NotFound",
    "Problem",
    "TooManyRequests",
    "Unauthenticated",
    "Unavailable",
    "install_problem_handlers",
    "problem_response",
]


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests from this caller"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class LogUnavailable(Unavailable):
    """The decision_log could not be reached or answered out of protocol: try again later."""

    slug, title = "log-unavailable", "The decision_log did not answer usefully"
