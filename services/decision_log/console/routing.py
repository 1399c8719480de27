"""How console pages answer: a problem as a page with its status, a request without a live
session by sending the browser to sign in; and the session every page depends on."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from decision_log.console import sessions
from decision_log.console.pages import SECURITY_HEADERS, problem_page
from decision_log.console.sessions import SESSION_COOKIE, ConsoleSession
from decision_log.problems import InvalidInput, Problem, Unauthenticated
from decision_log.state import State

PREFIX = "/console"
SIGN_IN = f"{PREFIX}/sign-in"


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class ConsoleRoute(APIRoute):
    """Answers a problem with a page showing it, and a missing session with the sign-in page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return RedirectResponse(SIGN_IN, status_code=303, headers=SECURITY_HEADERS)
            except RequestValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first.get("loc", ())) or "request"
                return problem_page(request, InvalidInput(f"{where}: {first.get('msg')}"))
            except Problem as problem:
                return problem_page(request, problem)

        return console_handler


def console_router() -> APIRouter:
    """A router of console pages: under /console/, out of the OpenAPI document."""
    return APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)


async def signed_in(request: Request, state: State) -> ConsoleSession:
    try:
        return await sessions.current_session(state, request.cookies.get(SESSION_COOKIE))
    except Unauthenticated:
        raise SignInRequired from None


Session = Annotated[ConsoleSession, Depends(signed_in)]
