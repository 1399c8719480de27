"""RFC 9457 problem details: one error base class, one way to render it.

Everything below a service's routers raises a ``Problem`` (or a subclass) and knows nothing of
HTTP beyond its status code; ``problem_response`` and the handlers in ``handlers`` turn it into
``application/problem+json``. Every body carries the request's id (``request_id``), taken when
the body is rendered, so a problem made once and answered to several requests (a failed group
commit) names each request's own id.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from http_edge.request_ids import current_request_id

PROBLEM_TYPE_BASE = "https://audit-trail.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        pointer: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer
        self.headers = headers or {}
        self.extensions = extensions

    def to_json(self) -> bytes:
        return orjson.dumps(self.body())

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.pointer is not None:
            body["pointer"] = self.pointer
        body.update(self.extensions)
        request_id = current_request_id()
        if request_id is not None:
            body["request_id"] = request_id
        return body


class InvalidInput(Problem):
    status, slug, title = 400, "invalid-input", "Invalid input"


class InvalidJSON(Problem):
    status, slug, title = 400, "invalid-json", "Request body is not valid I-JSON"


class Unauthenticated(Problem):
    status, slug, title = 401, "unauthenticated", "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "The API key lacks the right for this"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class RequestTimeout(Problem):
    status, slug, title = 408, "request-timeout", "The request body did not arrive in time"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class IntegrityFailure(Problem):
    """What is stored does not check out: the service will not serve it as proven.

    Members: ``index`` (the entry at fault, where one is), ``check`` (``leaf-hash``, ``link``,
    ``index``, ``inclusion``, ``consistency``, ``cosignature``, ``missing``, or
    ``verifier-finding`` when the independent verifier has an unacknowledged finding on the
    chain, then with ``finding``), ``expected`` and ``found``."""

    status, slug, title = 409, "integrity-failure", "The stored record does not verify"

    def __init__(
        self,
        detail: str,
        *,
        check: str,
        index: int | None = None,
        expected: str | None = None,
        found: str | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(
            detail, index=index, check=check, expected=expected, found=found, **extensions
        )


INTEGRITY_CHECKS = (
    "leaf-hash",
    "link",
    "index",
    "inclusion",
    "consistency",
    "cosignature",
    "missing",
    "verifier-finding",
)


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported content type"


class InternalError(Problem):
    """A bug: answered without detail, and the connection is closed after it, since whatever
    failed may have left the connection's state (a half-read body) behind."""

    status, slug, title = 500, "internal-error", "Internal error"

    def __init__(self) -> None:
        super().__init__(
            "the service failed on this request; it is logged under the request id",
            headers={"Connection": "close"},
        )


class Unavailable(Problem):
    """Try again later and it will work: the database is unreachable or restarting."""

    status, slug, title = 503, "unavailable", "The service cannot answer this right now"

    def __init__(self, detail: str, *, retry_after: int = 1, **extensions: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extensions)


class Overloaded(Problem):
    """More work is waiting than can be done in time (tessera's ErrPushback): retry later."""

    status, slug, title = 503, "overloaded", "The service is busy; retry later"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def problem_response(problem: Problem) -> Response:
    return Response(
        problem.to_json(),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )
