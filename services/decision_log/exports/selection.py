"""What an export request selects: entry indexes below the latest checkpoint, and the selection
as ``bundle.json`` states it.

A range or a time span selects a run of indexes from the log alone. A decisions export picks
its indexes from the read model (each decision's timeline), which is an index and may have been
altered or have lost a row, so before anything is exported its timelines are checked against
what the read model itself says of each decision (the entry it was recorded at and the one that
last changed it must be in its timeline), and while building, that every entry's own subject is
the decision it was listed under (``prove_selection``). A lost row in the middle of a timeline is
not seen here: ``audit-trail projections verify`` (decisions/verification.py) rebuilds the read
model from the entries on a schedule and reports it as a ``projection-mismatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.leaf import format_received_at
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.exports import repository
from decision_log.exports.schemas import ExportRequest
from decision_log.problems import InvalidInput, NotFound, ProjectionMismatch


@dataclass(frozen=True)
class Selection:
    indexes: Sequence[int]  # ascending: a range, or sorted
    described: dict[str, Any]  # as bundle.json states it
    # Decisions exports: the decision each entry is listed under in the read model.
    subjects: dict[int, str] | None = None
    # Disagreements of the read model with itself found while selecting (see the docstring).
    mismatches: tuple[ProjectionMismatch, ...] = ()


async def select_entries(
    connection: AsyncConnection,
    *,
    chain_id: int,
    chain: str,
    request: ExportRequest,
    latest: int,
) -> Selection:
    """The indexes a request selects among the first ``latest`` entries (those the latest
    checkpoint covers); a bad request is a 400 naming the member, an unknown decision a 404."""
    described: dict[str, Any] = {"kind": request.kind}
    if request.kind == "range":
        start = request.start or 0
        end = latest if request.end is None else request.end
        if end > latest:
            raise InvalidInput(
                f"end is beyond the latest checkpoint (size {latest}); later entries are "
                "not checkpointed yet",
                pointer="/end",
            )
        if start > end:
            raise InvalidInput("start must not be after end", pointer="/start")
        described.update(start=start, end=end)
        return Selection(indexes=range(start, end), described=described)
    if request.kind == "time":
        found = await repository.index_range_received(
            connection, chain_id=chain_id, since=request.since, until=request.until, below=latest
        )
        start, end = found or (0, 0)
        described.update(
            since=None if request.since is None else format_received_at(request.since),
            until=None if request.until is None else format_received_at(request.until),
            start=start,
            end=end,
        )
        return Selection(indexes=range(start, end), described=described)
    wanted = list(dict.fromkeys(request.decision_ids or []))
    timelines = await repository.decision_timelines(
        connection, chain_id=chain_id, decision_ids=wanted
    )
    for position, decision_id in enumerate(wanted):
        if decision_id not in timelines:
            raise NotFound(
                f"no decision {decision_id!r} in chain {chain!r}",
                pointer=f"/decision_ids/{position}",
            )
    subjects = {
        index: decision_id
        for decision_id, timeline in timelines.items()
        for index in timeline.indexes
        if index < latest
    }
    mismatches = tuple(
        mismatch
        for decision_id in wanted
        for mismatch in _timeline_mismatches(decision_id, timelines[decision_id], latest)
    )
    described.update(decision_ids=wanted)
    return Selection(
        indexes=sorted(subjects), described=described, subjects=subjects, mismatches=mismatches
    )


def _timeline_mismatches(
    decision_id: str, timeline: repository.DecisionTimeline, latest: int
) -> list[ProjectionMismatch]:
    """The read model's row of a decision names entries its timeline must hold."""
    listed = set(timeline.indexes)
    mismatches = []
    for column, index in (("decision_idx", timeline.decision_idx), ("last_idx", timeline.last_idx)):
        if index is not None and index < latest and index not in listed:
            mismatches.append(
                ProjectionMismatch(
                    f"the read model's timeline of decision {decision_id!r} lacks entry {index}, "
                    f"which its row names ({column}): the export would miss an event",
                    decision_id=decision_id,
                    column="timeline",
                    expected=f"entry {index} ({column})",
                    found="absent",
                )
            )
    return mismatches
