"""Authentication: Bearer API keys, checked against the database.

Reads look the key up on every request. Appends are the hot path, so each worker caches the keys
it has verified for them; the cache is trusted only while the worker listens for key changes
(PostgreSQL LISTEN/NOTIFY, https://www.postgresql.org/docs/current/sql-notify.html), which
drops a revoked or expired key as the change commits, and while the listener is down nothing is
cached. Because a notification takes a moment to arrive, the group commit re-checks its keys
under the chain lock, so no append commits after its key's revocation has.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.keys import repository
from decision_log.keys.service import (
    Caller,
    Principal,
    Witness,
    principal_from_row,
    secret_hash,
    secret_matches,
    split_api_key,
)
from decision_log.problems import Forbidden, InvalidInput, NotFound, Unauthenticated

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApiKeyAuthenticator:
    def __init__(self, *, engine: AsyncEngine, listen_dsn: str, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._listen_dsn = listen_dsn
        self._clock = clock
        # key id -> (SHA-256 of the whole key, who it is)
        self._cache: dict[str, tuple[bytes, Caller]] = {}
        self._listening = False
        # Bumped by every change notice: a lookup that raced with a revocation is not cached.
        self._generation = 0
        self._listener_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener_task = asyncio.create_task(self._listen_forever(), name="api-key-listener")

    async def stop(self) -> None:
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener_task

    async def _listen_forever(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._listen_dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(repository.KEYS_CHANGED_CHANNEL, self._on_change)
                self._cache.clear()
                self._listening = True
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("API key change listener unavailable: %s", type(error).__name__)
            finally:
                self._listening = False
                self._cache.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close()
            await asyncio.sleep(1.0)

    def _on_change(self, _connection: object, _pid: int, _channel: str, key_id: object) -> None:
        self._generation += 1
        self._cache.pop(str(key_id), None)

    async def authenticate(self, api_key: str | None, *, use_cache: bool = False) -> Caller:
        """Who holds this key. Reads look it up every time; the append path may use the cache,
        because the group commit checks its keys again, under the chain lock, before it
        commits (``events.appender``): an append is never committed after its key's revocation.
        """
        if not api_key:
            raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
        api_key = api_key.strip()
        parts = split_api_key(api_key)
        if parts is None:
            raise Unauthenticated("the API key is malformed")
        key_id = parts[0]
        now = self._clock()
        cached = self._cache.get(key_id) if use_cache else None
        if cached is not None and hmac.compare_digest(cached[0], secret_hash(api_key)):
            principal = cached[1]
            if principal.expires_at is not None and principal.expires_at <= now:
                raise Unauthenticated("the API key has expired")
            return principal
        generation = self._generation
        async with self._engine.connect() as connection:
            row = await repository.key_by_id(connection, key_id=key_id)
        if row is None or not secret_matches(row, api_key):
            raise Unauthenticated("the API key is not valid")
        principal = self._usable(row, now)
        if self._listening and generation == self._generation:
            self._cache[key_id] = (bytes(row.secret_hash), principal)
        return principal

    async def authenticate_key_id(self, key_id: str) -> Caller:
        """Who holds the key with this id, checked now as a presented key is (revoked,
        expired): a console session keeps the key's id, never the key, and each of its
        requests asks this, so the session ends with its key."""
        async with self._engine.connect() as connection:
            row = await repository.key_by_id(connection, key_id=key_id)
        if row is None:
            raise Unauthenticated("the API key is not valid")
        return self._usable(row, self._clock())

    @staticmethod
    def _usable(row: Any, now: datetime) -> Caller:
        if row.revoked_at is not None:
            raise Unauthenticated("the API key has been revoked")
        principal = principal_from_row(row)
        if principal.expires_at is not None and principal.expires_at <= now:
            raise Unauthenticated("the API key has expired")
        return principal


def require_role(principal: Principal, role: str) -> None:
    if role not in principal.roles:
        raise Forbidden(f"this operation needs an API key with the {role!r} role")


def require_chain(principal: Principal, chain: str) -> None:
    # A chain outside the key's scope is reported exactly like a chain that does not exist.
    if not principal.may_use_chain(chain):
        raise NotFound(f"no chain {chain!r}")


def tenant_caller(caller: Caller) -> Principal:
    if isinstance(caller, Witness):
        raise Forbidden("a witness key may only use the /v1/witness API")
    return caller


def witness_caller(caller: Caller) -> Witness:
    if not isinstance(caller, Witness):
        raise Forbidden("this operation needs a witness key")
    return caller


# Webhook senders that cannot set headers (KServe's and Seldon's payload loggers) put the key in
# the URL instead: ``?access_token=`` (CloudEvents http-webhook.md §3.2, RFC 6750 §2.3).
ACCESS_TOKEN = b"access_token"
URL_KEY_RULE = (
    "an API key in the URL (access_token) is accepted only on the ingest routes, and only for a "
    "key whose sole role is producer and that is limited to this one chain; send any other key "
    "as 'Authorization: Bearer <key>'"
)


def access_token_in(query: bytes) -> str | None:
    """The ``access_token`` of a query string, percent-decoded, or None. Never echoed: the
    problems below name the parameter, not its value."""
    found: str | None = None
    if ACCESS_TOKEN not in query:
        return None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name != ACCESS_TOKEN:
            continue
        if found is not None:
            raise InvalidInput("access_token is given more than once", parameter="access_token")
        try:
            found = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise Unauthenticated("the API key is malformed") from None
    return found


async def ingest_caller(
    authenticator: ApiKeyAuthenticator, *, authorization: bytes, query: bytes, chain: str
) -> tuple[Principal, bool]:
    """Who appends through an ingest route (events, OTLP), and whether the key came in the URL.

    A key in the URL counts as exposed: senders log their target URLs, and the URL sits in
    InferenceService specs. So it is taken only from a key that can do nothing but append to
    this one chain (role producer alone, limited to exactly this chain); any other key there is
    refused (401), even a valid one, rather than used."""
    url_key = access_token_in(query)
    if url_key is None:
        scheme, _, api_key = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
        return tenant_caller(await authenticator.authenticate(api_key, use_cache=True)), False
    if authorization:
        raise InvalidInput(
            "the API key is sent twice, in Authorization and in access_token; send it once "
            "(RFC 6750 §2)",
            parameter="access_token",
        )
    caller = await authenticator.authenticate(url_key, use_cache=True)
    if (
        not isinstance(caller, Principal)
        or caller.roles != frozenset(("producer",))
        or caller.chains != frozenset((chain,))
    ):
        raise Unauthenticated(URL_KEY_RULE)
    return caller, True


def refuse_url_key(query: bytes) -> None:
    """Every route but the ingest ones refuses a key in its URL, so that it is not left there."""
    if ACCESS_TOKEN in query and access_token_in(query) is not None:
        raise Unauthenticated(URL_KEY_RULE)
