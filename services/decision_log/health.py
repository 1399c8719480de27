"""Liveness and readiness (no auth)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from decision_log.decisions import service as decisions
from decision_log.migrations import head_revision
from decision_log.problems import Unavailable
from decision_log.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and the schema is current",
    description=(
        "Also says how many chains' decision projection is failing (projection.chains_failing);"
        " that does not make the service unready: appends and proofs do not depend on it, and "
        "each such chain says where and why in its status."
    ),
)
async def readyz(state: State) -> dict[str, Any]:
    try:
        async with state.engine.connect() as connection:
            current = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
            expected = head_revision()
            if current != expected:
                raise Unavailable(f"the schema is at {current}, the service needs {expected}")
            projection = await decisions.projection_health(connection)
    except Unavailable:
        raise
    except Exception:
        raise Unavailable("the database is not reachable") from None
    return {"status": "ready", "schema": expected, "projection": projection}
