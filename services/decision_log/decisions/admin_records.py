"""Append the administrative actions noted by ``decision_log.admin_actions`` to each tenant's
access chain.

An API request that changed something flushes its tenant's records before it answers, so the
record is in the chain when the caller hears of the change; a background pass appends what the
command line noted (and anything a crash left between a change and its append) every few
seconds. Rows are taken with ``FOR UPDATE SKIP LOCKED``, so workers and replicas never append
the same record twice at once; a record appended again after a crash is answered from the first
append, since its id is the event's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from http_edge.outages import log_failure
from ledger.leaf import format_received_at
from sqlalchemy import text

from decision_log.decisions.access import ACCESS_SOURCE, tenant_access_chain
from decision_log.decisions.event_types import ADMIN_ACTION_RECORDED
from decision_log.events.cloudevents import check_event
from decision_log.state import AppState

log = logging.getLogger(__name__)

BATCH = 500
PASS_INTERVAL_SECONDS = 2.0


def admin_event(row: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(row.id),
        "source": ACCESS_SOURCE,
        "type": ADMIN_ACTION_RECORDED,
        "time": format_received_at(row.recorded_at),
        "datacontenttype": "application/json",
        "data": row.data,
    }


async def flush(state: AppState, *, tenant_id: int | None = None) -> int:
    """Append pending records (of one tenant, or all) to access chains; how many were appended."""
    appended = 0
    while True:
        async with state.engine.begin() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT p.id, p.tenant_id, t.slug AS tenant, p.recorded_at, p.data "
                        "FROM admin_actions_pending p JOIN tenants t ON t.id = p.tenant_id "
                        "WHERE CAST(:tenant_id AS bigint) IS NULL OR p.tenant_id = :tenant_id "
                        "ORDER BY p.recorded_at, p.id LIMIT :limit "
                        "FOR UPDATE OF p SKIP LOCKED"
                    ),
                    {"tenant_id": tenant_id, "limit": BATCH},
                )
            ).all()
            if not rows:
                return appended
            by_tenant: dict[tuple[int, str], list[Any]] = defaultdict(list)
            for row in rows:
                by_tenant[(row.tenant_id, row.tenant)].append(row)
            for (owner_id, owner), records in by_tenant.items():
                ref = await tenant_access_chain(state, tenant_id=owner_id, tenant=owner)
                prepared = await state.personal_data.prepare(
                    ref,
                    owner_id,
                    [("", check_event(admin_event(row), pointer="")) for row in records],
                    max_event_bytes=state.settings.max_event_bytes,
                )
                await state.committer.append(ref, prepared, batch=True)
            await connection.execute(
                text("DELETE FROM admin_actions_pending WHERE id = ANY(:ids)"),
                {"ids": [row.id for row in rows]},
            )
            appended += len(rows)
        if len(rows) < BATCH:
            return appended


async def flush_after_change(state: AppState, *, tenant_id: int) -> None:
    """Called by a request whose change has committed: the change stands whatever happens
    here, and its record waits in the database for the next pass if it cannot be appended now."""
    try:
        await flush(state, tenant_id=tenant_id)
    except Exception as error:
        log_failure(log, "appending an admin action record (kept for the next pass)", error)


class AdminRecordPasses:
    """The background pass of one worker."""

    def __init__(self, state: AppState, *, interval_seconds: float = PASS_INTERVAL_SECONDS) -> None:
        self._state = state
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="admin-action-records")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await flush(self._state)
            except Exception as error:
                log_failure(log, "appending admin action records", error)
            await asyncio.sleep(self._interval)
