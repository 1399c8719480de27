"""SQL of the per-chain ingest settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def settings_of(connection: AsyncConnection, *, chain_id: int) -> Any | None:
    result = await connection.execute(
        text(
            "SELECT max_event_bytes, oversize, genai_content, genai_subject_attribute "
            "FROM chain_ingest_settings WHERE chain_id = :chain_id"
        ),
        {"chain_id": chain_id},
    )
    return result.first()


async def save_settings(
    connection: AsyncConnection,
    *,
    chain_id: int,
    max_event_bytes: int,
    oversize: str,
    genai_content: str,
    genai_subject_attribute: str,
) -> None:
    await connection.execute(
        text(
            "INSERT INTO chain_ingest_settings (chain_id, max_event_bytes, oversize, "
            "genai_content, genai_subject_attribute) VALUES (:chain_id, :max_event_bytes, "
            ":oversize, :genai_content, :genai_subject_attribute) "
            "ON CONFLICT (chain_id) DO UPDATE SET max_event_bytes = EXCLUDED.max_event_bytes, "
            "oversize = EXCLUDED.oversize, genai_content = EXCLUDED.genai_content, "
            "genai_subject_attribute = EXCLUDED.genai_subject_attribute, updated_at = now()"
        ),
        {
            "chain_id": chain_id,
            "max_event_bytes": max_event_bytes,
            "oversize": oversize,
            "genai_content": genai_content,
            "genai_subject_attribute": genai_subject_attribute,
        },
    )
