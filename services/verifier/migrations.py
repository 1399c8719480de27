"""Apply the verifier's own Alembic migrations (``migrations/verifier``) from code."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from verifier.db import async_url


def migrations_dir() -> Path:
    configured = os.environ.get("AUDIT_TRAIL_VERIFIER_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    # services/verifier/migrations.py -> <project>/migrations/verifier
    return Path(__file__).resolve().parents[2] / "migrations" / "verifier"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if database_url is not None:
        # Alembic's config is an .ini parser: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the verifier's schema to the newest revision, outside any running event loop."""
    command.upgrade(alembic_config(database_url), "head")


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no verifier migrations found")
    return head


# The oldest schema of its store this release's code runs on (see decision_log.migrations: it
# moves up only when the code starts to need a newer revision).
OLDEST_RUNNABLE_SCHEMA = "v0003_source_completeness"
