"""Console sessions: who signed in with which API key, kept in PostgreSQL.

The browser holds a random 256-bit session id; the table holds only its SHA-256, so reading the
table opens no session. Each sign-in makes a new id (no fixation). A session keeps the id of the
key that signed in, never the key, and every request checks that key again through the API's own
authenticator (``ApiKeyAuthenticator.authenticate_key_id``): a revoked or expired key ends its
sessions on their next request. Sign-in and sign-out are admin actions in the access chain.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log import admin_actions
from decision_log.auth import tenant_caller
from decision_log.console import repository
from decision_log.decisions.admin_records import flush_after_change
from decision_log.keys.service import Principal
from decision_log.problems import Problem, Unauthenticated
from decision_log.state import AppState

SESSION_COOKIE = "audit_trail_console"
# The roles the console serves; a producer's or a witness's key has nothing to read here.
CONSOLE_ROLES = frozenset({"auditor", "admin", "personal-data"})


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    id_hash: bytes
    principal: Principal
    csrf_token: str


def id_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def start_session(state: AppState, principal: Principal) -> tuple[str, str]:
    """A new session for a key just authenticated: its id (for the cookie) and CSRF token."""
    if not principal.roles & CONSOLE_ROLES:
        raise Unauthenticated(
            "the console is for keys with the auditor, admin or personal-data role"
        )
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    now = state.clock()
    async with state.engine.begin() as connection:
        await forget_expired(state, connection=connection, now=now)
        await repository.insert_session(
            connection,
            id_hash=id_hash(session_id),
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            csrf_token=csrf_token,
            now=now,
        )
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=admin_actions.api_actor(principal),
            action="console.sign-in",
            target={"key_id": principal.key_id},
            at=now,
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    return session_id, csrf_token


async def current_session(state: AppState, session_id: str | None) -> ConsoleSession:
    """The session of this cookie, still within its timeouts and with its key still valid;
    a session that is not is deleted and the request is unauthenticated."""
    if not session_id or len(session_id) > 100:
        raise Unauthenticated("sign in to the console")
    hashed = id_hash(session_id)
    now = state.clock()
    async with state.engine.connect() as connection:
        row = await repository.session_by_hash(connection, id_hash=hashed)
    if row is None:
        raise Unauthenticated("sign in to the console")
    refusal = None
    if _expired(state, created_at=row.created_at, last_seen_at=row.last_seen_at, now=now):
        refusal = "the console session has expired; sign in again"
    else:
        try:
            principal = tenant_caller(await state.authenticator.authenticate_key_id(row.key_id))
        except Problem:
            refusal = "the API key of this session is no longer valid; sign in again"
    if refusal is not None:
        async with state.engine.begin() as connection:
            await repository.delete_session(connection, id_hash=hashed)
        raise Unauthenticated(refusal)
    # Reading a page writes nothing but its access record: the last use is written only when
    # the stored one is a tenth of the idle timeout old (at most a minute), so a session may
    # end that much before its idle timeout, never after it.
    if now - row.last_seen_at >= _touch_interval(state):
        async with state.engine.begin() as connection:
            await repository.touch_session(connection, id_hash=hashed, now=now)
    return ConsoleSession(id_hash=hashed, principal=principal, csrf_token=row.csrf_token)


def _touch_interval(state: AppState) -> timedelta:
    return timedelta(seconds=min(60.0, state.settings.console_idle_seconds / 10))


async def end_session(state: AppState, session: ConsoleSession) -> None:
    now = state.clock()
    principal = session.principal
    async with state.engine.begin() as connection:
        if not await repository.delete_session(connection, id_hash=session.id_hash):
            return  # signed out already, by another tab
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=admin_actions.api_actor(principal),
            action="console.sign-out",
            target={"key_id": principal.key_id},
            at=now,
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)


async def forget_expired(state: AppState, *, connection: AsyncConnection, now: datetime) -> int:
    """Delete the sessions past a timeout. Run at each sign-in, the only thing that adds a
    row, so the table never holds more than the live sessions and those expired since the
    last sign-in."""
    settings = state.settings
    return await repository.delete_expired(
        connection,
        idle_before=now - timedelta(seconds=settings.console_idle_seconds),
        created_before=now - timedelta(seconds=settings.console_session_seconds),
    )


def _expired(
    state: AppState, *, created_at: datetime, last_seen_at: datetime, now: datetime
) -> bool:
    settings = state.settings
    return now - last_seen_at >= timedelta(
        seconds=settings.console_idle_seconds
    ) or now - created_at >= timedelta(seconds=settings.console_session_seconds)
