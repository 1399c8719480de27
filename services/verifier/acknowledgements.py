"""Telling the log that a finding was acknowledged, so the tenant's auditors see it.

An acknowledgement restarts the verifier's account of a chain (a new epoch). It is recorded for
good in the verifier's own store first; the log then records it among the tenant's
administrative actions (its access-log chain), where auditors look for who changed what. Only a
witness may report one: a verifier following with a tenant's auditor key keeps it to itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from verifier.log_client import ChainName, LogClient
from verifier.problems import NotFound


async def acknowledgement(
    engine: AsyncEngine, *, finding_id: int
) -> tuple[ChainName, dict[str, Any]]:
    """The acknowledged finding's chain, and what the log records of it: kind, where, who,
    why, and the epoch it started."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT c.tenant, c.chain, f.kind, f.first_bad_index, a.operator, a.reason, "
                    "e.epoch FROM verifier.acknowledgements a "
                    "JOIN verifier.findings f ON f.id = a.finding_id "
                    "JOIN verifier.chains c ON c.id = f.chain_id "
                    "JOIN verifier.epochs e ON e.after_finding = f.id WHERE a.finding_id = :id"
                ),
                {"id": finding_id},
            )
        ).first()
    if row is None:
        raise NotFound(f"finding {finding_id} is not acknowledged")
    body = {
        "finding_id": finding_id,
        "kind": row.kind,
        "first_bad_index": row.first_bad_index,
        "operator": row.operator,
        "reason": row.reason,
        "epoch": row.epoch,
    }
    return ChainName(row.tenant, row.chain), body


async def report_to_log(engine: AsyncEngine, *, finding_id: int, log: LogClient) -> None:
    """Post the acknowledgement to the log's witness API, as cosignatures are posted. Raises
    LogUnavailable saying why when the log did not record it."""
    name, body = await acknowledgement(engine, finding_id=finding_id)
    await log.post_acknowledgement(name, body)
