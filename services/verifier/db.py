"""The one place that opens connections to the verifier's own store."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs as operators write them; SQLAlchemy wants the driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("the verifier's DATABASE_URL must be a postgresql:// URL")


def create_engine(url: str, *, role: str | None, pool_size: int = 5) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"server_settings": {"application_name": "audit-trail-verifier"}},
    )
    if role:

        @event.listens_for(engine.sync_engine, "connect")
        def _act_as_verifier_role(
            dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry
        ) -> None:
            # The role holds INSERT but no UPDATE or DELETE on what the verifier remembers, so
            # not even a bug in the verifier can rewrite its evidence.
            statement = f'SET ROLE "{role}"'
            dbapi_connection.run_async(lambda driver: driver.execute(statement))

    return engine
