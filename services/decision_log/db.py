"""The one place that opens database connections.

Reads go through SQLAlchemy Core on an async engine over asyncpg. The append path borrows the
same pool's asyncpg connection directly (``driver_connection``) to use COPY, which SQLAlchemy
does not expose, and to keep per-event Python work small.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs as operators write them; SQLAlchemy wants the driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def create_engine(
    url: str,
    *,
    role: str | None,
    pool_size: int = 10,
    lock_timeout_seconds: float | None = None,
) -> AsyncEngine:
    server_settings = {"application_name": "audit-trail"}
    if lock_timeout_seconds is not None:
        # No request waits on a row lock for longer than this: a chain head held by a stuck
        # transaction makes appends fail with SQLSTATE 55P03, answered 503, instead of queueing
        # them for as long as it lasts (https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-LOCK-TIMEOUT).
        server_settings["lock_timeout"] = f"{int(lock_timeout_seconds * 1000)}ms"
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # A checkout that waits longer than this for a pooled connection is answered 503 (the
        # default of 30 s would hold the request that long).
        pool_timeout=5,
        connect_args={"server_settings": server_settings},
    )
    if role:

        @event.listens_for(engine.sync_engine, "connect")
        def _act_as_writer_role(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
            # Acting as the writer role drops the login role's rights (a superuser's, in the
            # embedded mode) for this connection: the service cannot UPDATE, DELETE or TRUNCATE
            # the append-only tables even before their triggers would refuse it.
            statement = f'SET ROLE "{role}"'
            dbapi_connection.run_async(lambda driver: driver.execute(statement))

    return engine


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection as the raw asyncpg connection, for COPY on the append path."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        yield driver
