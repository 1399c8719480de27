"""Apply the Alembic migrations from code (the CLI and the tests do; so can an operator)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from decision_log.db import async_url


def migrations_dir() -> Path:
    configured = os.environ.get("AUDIT_TRAIL_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    # services/decision_log/migrations.py -> <project>/migrations
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if database_url is not None:
        # Alembic's config is an .ini parser: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision. Call it outside any running event loop."""
    command.upgrade(alembic_config(database_url), "head")


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


# The oldest schema this release's code runs on. A migration that only adds (a table, a
# nullable column, an index) leaves it where it is, so replicas of the previous release stay
# ready while it runs; it moves up to a revision only when the code starts to need that
# revision, and a contracting migration (one that drops what an older release reads) ships a
# release after the code that stopped reading it.
OLDEST_RUNNABLE_SCHEMA = "0014_genai_span_source"
