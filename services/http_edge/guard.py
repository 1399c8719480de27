"""The guard every request passes before routing, authentication or parsing.

1. It gives the request its id (``request_ids``) and puts ``X-Request-Id`` on the answer.
2. It refuses a path or query string that PostgreSQL cannot store: a NUL, or percent-encoded
   bytes that are not UTF-8 (lone surrogates included), as a 400 naming the parameter.
3. It reads the body under a cap before anything else runs, so an unauthenticated 900 MiB POST
   costs a 413, not the server's memory: a declared ``Content-Length`` above the cap is refused
   before one byte is read, a chunked body as soon as it passes the cap. A JSON body is parsed
   once here, strictly (no lone surrogates), and refused if any string in it holds a NUL.
   The append hot path, which caps its own body after authentication, does the rest of this
   inline and never comes here (``decision_log.events.endpoints.serve_append``).
4. It turns any exception that escapes the app into a problem: 503 with Retry-After when the
   database is unreachable, 500 otherwise, with ``Connection: close`` after a 500; an exception
   after the answer has started is logged and the connection is left for the server to close.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from http_edge.logs import log_request, route_template
from http_edge.metrics import observe_request
from http_edge.outages import DatabaseFault, classify
from http_edge.problems import (
    PROBLEM_MEDIA_TYPE,
    InternalError,
    InvalidInput,
    InvalidJSON,
    PayloadTooLarge,
    Problem,
    Unavailable,
)
from http_edge.request_ids import request_id_from, set_request_id

log = logging.getLogger("http_edge")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        set_request_id(request_id)
        began = time.perf_counter()
        started = False
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("ascii")),
                ]
            await send(message)

        try:
            check_target(scope)
            body = await read_capped_body(scope, receive, limit=self.max_body_bytes)
            if body is None:
                return  # the client went away
            if body and is_json(scope):
                check_json_body(body)
            await self.app(scope, replay(body, receive), send_with_id)
        except Exception as error:
            problem = problem_for_exception(error, scope)
            if not started:
                await send_problem(send_with_id, problem)
        finally:
            route = route_template(scope)
            observe_request(
                route=route,
                method=scope["method"],
                status=status,
                seconds=time.perf_counter() - began,
            )
            log_request(
                method=scope["method"],
                route=route,
                status=status,
                started=began,
                headers=scope["headers"],
            )


def problem_for_exception(error: Exception, scope: Scope, *, logged: bool = True) -> Problem:
    """What to answer for an exception nobody handled; logs it once unless ``logged`` is off
    (for a handler whose exception the server stack raises again, to be logged then)."""
    if isinstance(error, Problem):
        return error
    fault = classify(error)
    where = f"{scope.get('method', '')} {scope.get('path', '')}"
    if fault is DatabaseFault.UNAVAILABLE:
        if logged:
            log.warning("database unavailable during %s: %s", where, type(error).__name__)
        return Unavailable("the database is unreachable; retry shortly")
    if fault is DatabaseFault.BUSY:
        if logged:
            log.warning("a row stayed locked too long during %s", where)
        return Unavailable("what this request needs is held by other work; retry shortly")
    if fault is DatabaseFault.BAD_DATA:
        if logged:
            log.warning("database refused a value during %s: %s", where, type(error).__name__)
        return InvalidInput("a value in the request cannot be stored")
    if logged:
        log.error("unexpected error during %s", where, exc_info=error)
    return InternalError()


async def send_problem(send: Send, problem: Problem) -> None:
    body = problem.to_json()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in problem.headers.items()
        ),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_target(scope: Scope) -> None:
    """Refuse a path or query string holding a NUL or bytes that are not UTF-8."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    if not _storable(unquote_to_bytes(raw_path)):
        raise InvalidInput("the path holds a NUL or bytes that are not UTF-8", parameter="path")
    query: bytes = scope.get("query_string", b"")
    if not query:
        return
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        name_bytes = unquote_to_bytes(name.replace(b"+", b" "))
        parameter = name_bytes.decode("utf-8", "replace")
        if not _storable(name_bytes) or not _storable(unquote_to_bytes(value.replace(b"+", b" "))):
            raise InvalidInput(
                f"query parameter {parameter!r} holds a NUL or bytes that are not UTF-8",
                parameter=parameter if _storable(name_bytes) else "query",
            )


def _storable(raw: bytes) -> bool:
    if b"\x00" in raw:
        return False
    try:
        raw.decode("utf-8")  # strict: encoded surrogates (ED A0 80 ...) are refused too
    except UnicodeDecodeError:
        return False
    return True


async def read_capped_body(scope: Scope, receive: Receive, *, limit: int) -> bytes | None:
    """The whole body, refused as soon as it is known to exceed ``limit``; None on disconnect."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise InvalidInput("Content-Length is not a number", parameter="Content-Length")
            if int(value) > limit:
                raise PayloadTooLarge(
                    f"the body is {int(value)} bytes; this route accepts at most {limit}"
                )
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes, the most this route accepts")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out the body read already, then waits on the real one (for the
    disconnect that streaming responses listen for)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return False


def check_json_body(body: bytes) -> None:
    """Parse strictly (orjson refuses lone surrogates and invalid UTF-8) and refuse NULs."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidJSON(f"the body is not valid JSON: {error}", pointer="") from None
    pointer = _nul_pointer(document)
    if pointer is not None:
        raise InvalidInput(
            "a string holds a NUL character, which cannot be stored", pointer=pointer
        )


def _nul_pointer(document: Any) -> str | None:
    """The JSON Pointer of the first string (or member name) holding a NUL, if any. Iterative:
    orjson accepts nesting deeper than Python's recursion limit."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, pointer = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return pointer
        elif isinstance(value, dict):
            for name, member in reversed(value.items()):
                here = f"{pointer}/{name.replace('~', '~0').replace('/', '~1')}"
                if "\x00" in name:
                    return here
                stack.append((member, here))
        elif isinstance(value, list):
            stack.extend((item, f"{pointer}/{i}") for i, item in reversed(list(enumerate(value))))
    return None
