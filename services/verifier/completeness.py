"""Completeness of a chain's producers as the verifier vouches for it (docs/completeness.md).

The verifier folds `ledger.completeness` over exactly the entries it replays and cosigns, in
the transaction that moves its replay position, so the stored state always covers
``[completeness_start, verified_size)`` of the chain's current epoch: entries it checked itself,
never figures the log reports. A chain verified before this was kept, or whose epoch started
over after an acknowledged finding, starts its fold where the verifier stands then, and the
figures say from which index they count.

What the clock adds (gaps open too long, sources silent past their declared heartbeat) is
judged when the figures are read or attested, against the time given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.completeness import SILENCE_SLACK, CompletenessFold, SourceState, judge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from verifier import repository


def folded_range(state: Any) -> tuple[int, int] | None:
    """The entries [start, end) the chain's stored fold covers, or None when it is not current
    (never folded, or folded in another epoch or up to another size than the verified one)."""
    if (
        state.completeness_epoch is None
        or int(state.completeness_epoch) != int(state.epoch)
        or int(state.completeness_size) != int(state.verified_size)
    ):
        return None
    return int(state.completeness_start), int(state.completeness_size)


class ChainFold:
    """The chain's completeness during one verification pass.

    The replay hands over the events it checked chunk by chunk (`take`); the state of a source
    is read from the store when the replay first meets it, so memory holds the sources this
    pass touches, not the pass's entries nor every source the chain ever had. Nothing is
    written until `save`, in the transaction that advances the chain.
    """

    def __init__(self, *, engine: AsyncEngine, state: Any) -> None:
        self._engine = engine
        self._state = state
        covered = folded_range(state)
        self._current = covered is not None
        start = int(state.verified_size) if covered is None else covered[0]
        self._met: set[str] = set()
        self.fold = CompletenessFold(from_start=start == 0)

    async def take(self, events: list[tuple[dict[str, Any], str]]) -> None:
        """Fold `events` (`EntryReplay.events`) in, and empty the list."""
        new = {str(f["source"]) for f, _ in events if "source" in f} - self._met
        if new and self._current:
            async with self._engine.connect() as connection:
                rows = await repository.source_states(
                    connection, chain_id=self._state.id, sources=sorted(new)
                )
            for row in rows:
                self.fold.sources[row.source] = SourceState.from_json(row.state)
        self._met |= new
        for fields, received_at in events:
            self.fold.add(fields, received_at)
        events.clear()

    async def save(self, connection: AsyncConnection, *, new_size: int) -> None:
        """Store the touched sources, folded up to `new_size`; a stale fold starts over at the
        size the pass started from."""
        state = self._state
        if not self._current:
            await repository.restart_completeness(
                connection,
                chain_id=state.id,
                epoch=int(state.epoch),
                start=int(state.verified_size),
            )
        await repository.save_source_states(
            connection,
            chain_id=state.id,
            size=new_size,
            states=[self.fold.sources[s].to_json() for s in sorted(self.fold.touched)],
        )


async def figures(
    connection: AsyncConnection,
    *,
    state: Any,
    now: datetime,
    gap_age_seconds: float,
    source: str | None = None,
    needing_attention: bool = False,
    limit: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """The sources' figures (or the one named), judged at `now`, with a summary of all of
    them: in order of their names, only those `needing_attention` if asked, a page of `limit`
    after the name `after`; `next_after` names the last listed when more follow."""
    covered = folded_range(state)
    rows = (
        []
        if covered is None
        else await repository.source_states(
            connection, chain_id=state.id, sources=None if source is None else [source]
        )
    )
    judged = sorted(
        (
            judge(SourceState.from_json(row.state), now=now, gap_age_seconds=gap_age_seconds)
            for row in rows
        ),
        key=lambda item: item.state.source,  # by code point, as `after` compares
    )
    listed = [item.to_json() for item in judged]
    if needing_attention:
        listed = [item for item in listed if needs_attention(item)]
    if after is not None:
        listed = [item for item in listed if item["source"] > after]
    more = limit is not None and len(listed) > limit
    listed = listed[:limit]
    return {
        "covers": None if covered is None else {"start": covered[0], "end": covered[1]},
        "judged_at": now.isoformat().replace("+00:00", "Z"),
        "gap_age_seconds": gap_age_seconds,
        "silent_after_intervals": SILENCE_SLACK,
        "summary": {
            "sources": len(judged),
            "tracked": sum(j.state.tracked for j in judged),
            "with_gaps": sum(bool(j.state.missing) for j in judged),
            "with_overdue_gaps": sum(bool(j.overdue_gaps) for j in judged),
            "silent": sum(j.silent for j in judged),
            "with_findings": sum(bool(j.state.finding_count) for j in judged),
            "complete": sum(j.state.complete for j in judged),
            "open_gaps": sum(len(j.state.missing) for j in judged),
        },
        "sources": listed,
        "next_after": listed[-1]["source"] if more else None,
    }


# An attestation lists the sources that need attention, at most this many, each with its first
# `ATTESTED_GAPS` missing ranges (its `missing_count` counts them all); the summary counts every
# source. Producers named by instance come and go, so a chain gathers sources for as long as it
# lives: listing every one would make each attestation, stored every few minutes and embedded
# in every export, grow without bound.
ATTESTED_SOURCES = 256
ATTESTED_GAPS = 32


def needs_attention(item: dict[str, Any]) -> bool:
    """A source's figures (as served) show a gap, a finding or a silence."""
    return bool(item["missing"] or item["finding_count"] or item["silent"])


def attested(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as an attestation carries them: the summary, and the sources with a gap, a
    finding or a silence (findings first, then overdue gaps, gaps, silence; then by name)."""
    needing = sorted(
        (item for item in figures["sources"] if needs_attention(item)),
        key=lambda item: (
            not item["finding_count"],
            not item["overdue_gaps"],
            not item["missing"],
            item["source"],
        ),
    )
    listed = [
        {**item, "missing": item["missing"][:ATTESTED_GAPS]} for item in needing[:ATTESTED_SOURCES]
    ]
    signed = {key: value for key, value in figures.items() if key != "next_after"}
    return {
        **signed,
        "sources": listed,
        "sources_listed": "with a gap, a finding or a silence",
        "sources_unlisted": len(needing) - len(listed),
    }
