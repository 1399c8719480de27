"""Re-reading entries the verifier already checked: windows of the log's raw leaves against the
leaf hashes the verifier remembers (`verifier.history`), and the facts that name a difference.

Used by the sweep, one window at a time, and by the incremental check to locate the first bad
entry when the log's checkpoint no longer extends what was cosigned.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ledger.errors import NoteError
from ledger.merkle import MerkleFrontier
from ledger.note import Checkpoint, NoteVerifier, open_note
from sqlalchemy.ext.asyncio import AsyncEngine

from verifier import repository
from verifier.history import MAX_WINDOW, Difference, HistoryWindow, name_difference
from verifier.log_client import ChainName, LogClient
from verifier.problems import LogUnavailable
from verifier.remembered import Lineage, lineage, remembered_window
from verifier.replay import Finding


class HistoryReader:
    def __init__(
        self, *, engine: AsyncEngine, log_client: LogClient, log_verifier: NoteVerifier
    ) -> None:
        self._engine = engine
        self._log = log_client
        self._log_verifier = log_verifier

    async def lineage(self, state: Any) -> Lineage:
        async with self._engine.connect() as connection:
            return await lineage(connection, chain_id=state.id, epoch=int(state.epoch))

    async def compare_window(
        self,
        name: ChainName,
        *,
        chain_id: int,
        lineage: Lineage,
        start: int,
        stop: int,
        frontier: MerkleFrontier,
    ) -> HistoryWindow:
        """Entries [start, stop) as the log serves them now, against what is remembered."""
        async with self._engine.connect() as connection:
            remembered = await remembered_window(
                connection, chain_id=chain_id, lineage=lineage, start=start, stop=stop
            )
        window = HistoryWindow(start=start, stop=stop, remembered=remembered, frontier=frontier)
        # One entry past the window: it tells a hole at stop - 1 from a cut (`HistoryWindow`).
        entries = self._log.entries(name, start=start, end=stop + 1)
        try:
            async with contextlib.aclosing(entries) as chunks:
                async for chunk, frames in chunks:
                    window.feed(chunk, binary=frames)
                    if window.settled:
                        break
        except LogUnavailable:
            # A log that notices a problem of its own (a stored hash that differs, say) ends
            # the stream without its last chunk. If every entry of the window has arrived and
            # is byte for byte what was cosigned, the window stands; only the entry after it,
            # which is optional, is missing.
            if not window.compared_all:
                raise
        window.finish()
        return window

    async def first_difference(self, name: ChainName, state: Any, *, end: int) -> Difference | None:
        """The first of entries [0, end) that is not what the verifier remembers, read a window
        at a time (memory stays bounded whatever the chain's length)."""
        chain_lineage = await self.lineage(state)
        frontier = MerkleFrontier()
        for start in range(0, end, MAX_WINDOW):
            window = await self.compare_window(
                name,
                chain_id=state.id,
                lineage=chain_lineage,
                start=start,
                stop=min(start + MAX_WINDOW, end),
                frontier=frontier,
            )
            if window.difference is not None:
                return window.difference
            frontier = window.frontier
        return None

    async def diagnose(
        self,
        name: ChainName,
        state: Any,
        difference: Difference,
        *,
        served: Checkpoint | None = None,
    ) -> Finding:
        """Gather what names the difference (`verifier.history.name_difference`) and name it.

        `served`: the log's latest checkpoint, already verified, if the caller has it."""
        logged_size = stored_hash = first_cosigned_at = None
        if difference.what == "short":
            logged_size = served.size if served is not None else await self._logged_size(name)
        if difference.what == "changed":
            if not difference.successor_served:
                stored_hash = await self._log.stored_leaf_hash(name, index=difference.index)
            chain_lineage = await self.lineage(state)
            async with self._engine.connect() as connection:
                first_cosigned_at = await repository.first_cosigned_covering(
                    connection,
                    chain_id=state.id,
                    epoch=chain_lineage.epoch_of(difference.index),
                    index=difference.index,
                )
        return name_difference(
            difference,
            tenant=name.tenant,
            chain=name.chain,
            logged_size=logged_size,
            stored_hash=stored_hash,
            first_cosigned_at=first_cosigned_at,
        )

    async def _logged_size(self, name: ChainName) -> int | None:
        """The size of the log's latest checkpoint, if it verifies under the log's key."""
        try:
            opened = open_note(await self._log.checkpoint(name), [self._log_verifier])
            return Checkpoint.parse(opened.text).size
        except (LogUnavailable, NoteError):
            return None
