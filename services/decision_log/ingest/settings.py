"""Each chain's ingest settings as the append path reads them: from a short-lived cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.ingest import repository

DEFAULT_SUBJECT_ATTRIBUTE = "enduser.id"


@dataclass(frozen=True, slots=True)
class ChainIngest:
    """What one chain takes: see ``schemas.IngestSettings`` for each member's meaning."""

    max_event_bytes: int
    oversize: str = "refuse"
    genai_content: str = "seal"
    genai_subject_attribute: str = DEFAULT_SUBJECT_ATTRIBUTE

    @property
    def digest_oversize(self) -> bool:
        return self.oversize == "digest"


class IngestSettingsCache:
    """Each chain's settings, read at most once per ``ttl_seconds`` by each worker: a change
    takes effect on every worker and replica within that time, and the append path pays a dict
    lookup, not a query."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        max_event_bytes: int,
        ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.defaults = ChainIngest(max_event_bytes=max_event_bytes)
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: dict[int, tuple[float, ChainIngest]] = {}

    async def for_chain(self, chain_id: int) -> ChainIngest:
        cached = self._cached.get(chain_id)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._engine.connect() as connection:
            row = await repository.settings_of(connection, chain_id=chain_id)
        settings = (
            self.defaults
            if row is None
            else ChainIngest(
                max_event_bytes=int(row.max_event_bytes),
                oversize=str(row.oversize),
                genai_content=str(row.genai_content),
                genai_subject_attribute=str(row.genai_subject_attribute),
            )
        )
        self._cached[chain_id] = (now + self._ttl, settings)
        return settings

    def forget(self, chain_id: int) -> None:
        self._cached.pop(chain_id, None)
