"""Signing in and out, and the console's own static files."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from decision_log.auth import tenant_caller
from decision_log.console import csrf, sessions
from decision_log.console.pages import SECURITY_HEADERS, form_fields, printable, render, static_file
from decision_log.console.routing import PREFIX, SIGN_IN, Session, console_router
from decision_log.console.sessions import SESSION_COOKIE
from decision_log.problems import Problem
from decision_log.state import State

router = console_router()


@router.get("/static/{name}")
async def console_static(name: str) -> Response:
    return static_file(name)


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


def _sign_in_page(
    request: Request, *, error: str | None = None, status_code: int = 200
) -> Response:
    token = csrf.new_token()
    response = render(
        request, "sign_in.html", status_code=status_code, csrf_token=token, error=error
    )
    response.set_cookie(
        csrf.SIGN_IN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=SIGN_IN,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/sign-in")
async def sign_in(request: Request, state: State) -> Response:
    fields = await form_fields(request)
    csrf.check_token(
        expected=request.cookies.get(csrf.SIGN_IN_CSRF_COOKIE), given=fields.get(csrf.FIELD)
    )
    api_key = printable(fields.get("api_key", ""), name="api_key", max_length=200).strip()
    try:
        principal = tenant_caller(await state.authenticator.authenticate(api_key))
        session_id, _ = await sessions.start_session(state, principal)
    except Problem as problem:
        return _sign_in_page(request, error=problem.detail, status_code=problem.status)
    response = RedirectResponse(f"{PREFIX}/", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(csrf.SIGN_IN_CSRF_COOKIE, path=SIGN_IN)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, state: State, session: Session) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    await sessions.end_session(state, session)
    response = RedirectResponse(SIGN_IN, status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"
