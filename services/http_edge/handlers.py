"""FastAPI's errors as problems: one handler per kind, installed once per app."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from http_edge.guard import problem_for_exception
from http_edge.problems import (
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    Problem,
    problem_response,
)

# Exceptions that come from the database layer; the handler decides 503, 400 or 500.
DATABASE_ERRORS = (
    sqlalchemy.exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        problem: Problem
        if exc.status_code == 404:
            problem = NotFound(f"no such resource: {request.url.path}")
        elif exc.status_code == 405:
            allowed = ", ".join(allowed_methods(request))
            problem = MethodNotAllowed(
                f"{request.method} is not allowed here; {allowed} is", headers={"Allow": allowed}
            )
        else:
            problem = Problem(str(exc.detail), headers=dict(exc.headers or {}))
            problem.status = exc.status_code
            problem.slug = "http-" + str(exc.status_code)
            problem.title = str(exc.detail)
        return problem_response(problem)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        return problem_response(problem_for_exception(exc, request.scope))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware raises the exception again after this answer; the
        # guard outside it logs it then.
        return problem_response(problem_for_exception(exc, request.scope, logged=False))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, on_database_error)


def validation_problem(exc: RequestValidationError) -> InvalidInput:
    """The first refusal, naming the parameter (query, path, header) or the body member."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ())]
    message = str(first.get("msg", "invalid"))
    name = location[-1] if location else "request"
    if location[:1] in (["query"], ["path"], ["header"]):
        return InvalidInput(f"{name}: {message}", parameter=name)
    return InvalidInput(
        f"{'.'.join(location) or 'request'}: {message}", pointer="/" + "/".join(location[1:])
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette names only the first route's
    methods, while a path (``/v1/keys``) is often served by one route per method."""
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes of an app, with those of included routers (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _routes(nested.routes)
        else:
            yield route
