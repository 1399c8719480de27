"""Databases of a test's own on the test server, for what must not share the session's: a
second log or verifier, a projector that must do only this test's work."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def own_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """An empty database named ``prefix`` + a random suffix on ``server_url``'s server; its
    URL. Dropped afterwards, whoever is still connected."""
    name = f"{prefix}_{secrets.token_hex(3)}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    finally:
        await _admin(server_url, f'DROP DATABASE "{name}" WITH (FORCE)')
