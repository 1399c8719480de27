"""Liveness and readiness (no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from decision_log.migrations import head_revision
from decision_log.problems import Unavailable
from decision_log.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and the schema is current")
async def readyz(state: State) -> dict[str, str]:
    try:
        async with state.engine.connect() as connection:
            current = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
    except Exception:
        raise Unavailable("the database is not reachable") from None
    expected = head_revision()
    if current != expected:
        raise Unavailable(f"the schema is at {current}, the service needs {expected}")
    return {"status": "ready", "schema": expected}
