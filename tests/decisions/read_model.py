"""Putting back a read model that a test edited on purpose, so later tests (a rebuild compares
the whole read model with the one it replaces) see it as the projector made it."""

from __future__ import annotations

import asyncpg

from tests.decisions.helpers import projected


async def reproject(database_url: str, chain: int) -> None:
    """Empty the chain's read model and its position; the projector folds it again."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            for table in ("decisions", "decision_events", "model_deployments"):
                await connection.execute(f"DELETE FROM {table} WHERE chain_id = $1", chain)
            await connection.execute("DELETE FROM projection_positions WHERE chain_id = $1", chain)
    finally:
        await connection.close()
    await projected(database_url)
