"""Liveness and readiness (no auth): the rules are in ``http_edge.readiness``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from http_edge.readiness import probe_database, schema_range
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.decisions import service as decisions
from decision_log.migrations import OLDEST_RUNNABLE_SCHEMA, migrations_dir
from decision_log.problems import Unavailable
from decision_log.state import State

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process is up (the database is not consulted)")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/healthz", summary="The process is up: the same as /livez")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def projection(connection: AsyncConnection) -> dict[str, object]:
    return {"projection": await decisions.projection_health(connection)}


@router.get(
    "/readyz",
    summary="Whether this replica should be sent traffic",
    description=(
        "503 only while the replica shuts down, when the schema is older than this release "
        "runs on, or when the database has not answered for longer than "
        "AUDIT_TRAIL_READINESS_OUTAGE_SECONDS; during a shorter outage the replica stays "
        "ready and answers 503 itself to the requests that need the database. A schema newer "
        "than this release (an expand-only migration of the next one) is ready. Also says how "
        "many chains' decision projection is failing (projection.chains_failing); that does "
        "not make the replica unready: appends and proofs do not depend on it, and each such "
        "chain says where and why in its status."
    ),
)
async def readyz(state: State) -> dict[str, Any]:
    revisions = schema_range(str(migrations_dir()), OLDEST_RUNNABLE_SCHEMA)
    probe = await probe_database(
        state.readiness,
        state.engine,
        version_table="alembic_version",
        revisions=revisions,
        also=projection,
    )
    if not probe.verdict.ready:
        raise Unavailable(probe.verdict.reason)
    if probe.fit is None:
        return {"status": "ready", "database": probe.verdict.reason}
    return {"status": "ready", "schema": probe.schema, "schema_fit": probe.fit.value} | (
        probe.details or {}
    )
