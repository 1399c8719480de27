"""RFC 9457 problem details: one error base class, one handler.

Everything below the routers raises a ``Problem`` (or a subclass) and knows nothing of HTTP
beyond its status code; the handler turns it into ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

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
        return body


class InvalidInput(Problem):
    status, slug, title = 400, "invalid-input", "Invalid input"


class InvalidJSON(Problem):
    status, slug, title = 400, "invalid-json", "Request body is not valid I-JSON"


class InvalidEvent(Problem):
    status, slug, title = 400, "invalid-cloudevent", "Not a valid CloudEvents 1.0 event"


class Unauthenticated(Problem):
    status, slug, title = 401, "unauthenticated", "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "The API key lacks the right for this"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class IdempotencyConflict(Conflict):
    slug, title = "idempotency-conflict", "Same (source, id) already appended with other content"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported content type"


class Overloaded(Problem):
    """The append queue is full: the client should retry after a pause (tessera's ErrPushback)."""

    status, slug, title = 503, "overloaded", "The log is busy; retry later"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class Unavailable(Problem):
    status, slug, title = 503, "unavailable", "The log cannot serve this right now"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def problem_response(problem: Problem) -> Response:
    return Response(
        problem.to_json(),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        location = [str(part) for part in first.get("loc", ())]
        name = location[-1] if location else "request"
        if location[:1] in (["query"], ["path"], ["header"]):
            problem = InvalidInput(f"{name}: {first.get('msg', 'invalid')}", parameter=name)
        else:
            problem = InvalidInput(
                f"{'.'.join(location) or 'request'}: {first.get('msg', 'invalid')}",
                pointer="/" + "/".join(location[1:]),
            )
        return problem_response(problem)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        problem = Problem(str(exc.detail), headers=dict(exc.headers or {}))
        problem.status = exc.status_code
        problem.slug = "http-" + str(exc.status_code)
        problem.title = str(exc.detail)
        return problem_response(problem)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
