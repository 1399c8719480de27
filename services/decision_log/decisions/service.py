"""Auditor views: search decisions, one decision with its timeline, explanation and evidence.

Every search and view is first recorded as an access event (``access.record_access``) in the
tenant's access chain; the record is appended while the read runs, and the answer is given only
once both are done, so no read goes unrecorded (ISO/IEC 27001 A.8.15; R15).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, TypeVar

import orjson
from ledger import membership
from ledger.leaf import format_received_at
from ledger.merkle import NodeId, assemble_proof, inclusion_proof_plan, leaf_hash, plan_node_ids
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.chains import repository as chain_rows
from decision_log.chains import service as chain_service
from decision_log.decisions import repository
from decision_log.decisions.access import record_access
from decision_log.decisions.event_types import (
    DECISION_RECORDED,
    EVENT_DATA_MODELS,
)
from decision_log.decisions.explanation import RecordedEvent, explain
from decision_log.decisions.producer_explanation import explain_producer_decision
from decision_log.decisions.projection import (
    DECISION_COLUMNS,
    DecisionRow,
    ProjectedEntry,
    fold_decision,
    project_entry,
)
from decision_log.decisions.projector import ACCESS_CHAIN
from decision_log.decisions.schemas import (
    CheckpointEvidence,
    Cosignature,
    DecisionPage,
    DecisionSummary,
    DecisionView,
    EventProof,
    Evidence,
    ReadModelNote,
    TimelineEvent,
    VerifierAttestation,
    VerifierEvidence,
)
from decision_log.evidence import (
    CheckedCheckpoint,
    StoredEntry,
    check_entries,
    check_inclusion,
    latest_checkpoint,
    latest_verified_checkpoint,
)
from decision_log.keys.service import Principal
from decision_log.problems import IntegrityFailure, InvalidInput, NotFound
from decision_log.signing import LogSigner
from decision_log.state import AppState
from decision_log.verifier_client import VerifierUnavailable

T = TypeVar("T")
MAX_PAGE = 200
# Search filters of GenAI decisions and the read model's columns they compare with.
GENAI_FILTERS = {
    "agent": "genai_agent",
    "provider": "genai_provider",
    "conversation": "genai_conversation",
    "tool": "tool_name",
}


@dataclass(frozen=True, slots=True)
class SearchFilters:
    chain: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    policy_version: str | None = None
    decision: str | None = None
    data_subject_ref: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    decided_from: datetime | None = None
    decided_before: datetime | None = None
    reviewed: bool | None = None
    overridden: bool | None = None
    contested: bool | None = None
    agent: str | None = None
    provider: str | None = None
    conversation: str | None = None
    tool: str | None = None
    source: str | None = None
    limit: int = 50
    cursor: str | None = None

    def as_query(self) -> dict[str, Any]:
        """The filters as recorded in the access event (only those given)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
            if value is not None and name != "limit"
        }


def check_filters(filters: SearchFilters) -> tuple[datetime, int, str] | None:
    """Refuse filters that cannot mean anything; returns the decoded cursor."""
    if not 1 <= filters.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", parameter="limit")
    if (
        filters.score_min is not None
        and filters.score_max is not None
        and filters.score_min > filters.score_max
    ):
        raise InvalidInput("score_min must not exceed score_max", parameter="score_min")
    for name in ("decided_from", "decided_before"):
        moment = getattr(filters, name)
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. Z)", parameter=name)
    if (
        filters.decided_from is not None
        and filters.decided_before is not None
        and filters.decided_from >= filters.decided_before
    ):
        raise InvalidInput("decided_from must be before decided_before", parameter="decided_from")
    for name in (
        "model_name",
        "model_version",
        "policy_version",
        "decision",
        "data_subject_ref",
        "source",
        *GENAI_FILTERS,
    ):
        value = getattr(filters, name)
        if value is not None and not value:
            raise InvalidInput(f"{name} must not be empty", parameter=name)
    return None if filters.cursor is None else decode_cursor(filters.cursor)


def encode_cursor(decided_at: datetime, chain_id: int, decision_id: str) -> str:
    raw = orjson.dumps([format_received_at(decided_at), chain_id, decision_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, chain_id, decision_id = orjson.loads(raw)
        if not isinstance(chain_id, int) or not isinstance(decision_id, str):
            raise ValueError
        return datetime.fromisoformat(moment), chain_id, decision_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidInput("cursor is not one this API gave out", parameter="cursor") from None


async def _recorded_while(recording: Awaitable[None], reading: Awaitable[T]) -> T:
    """Run the read while its access record is appended; answer only when both are done.

    If the read fails, the attempt is still recorded; if the record fails, nothing is answered.
    """
    record = asyncio.ensure_future(recording)
    try:
        result = await reading
    except BaseException:
        await asyncio.gather(record, return_exceptions=True)
        raise
    await record
    return result


async def search(state: AppState, principal: Principal, filters: SearchFilters) -> DecisionPage:
    after = check_filters(filters)
    if filters.chain is not None and not principal.may_use_chain(filters.chain):
        raise InvalidInput(f"no chain {filters.chain!r}", parameter="chain")
    recording = record_access(
        state, principal, action="decisions.search", chain=filters.chain, query=filters.as_query()
    )

    async def reading() -> DecisionPage:
        async with state.engine.connect() as connection:
            return await search_decisions(
                connection, principal=principal, filters=filters, after=after
            )

    return await _recorded_while(recording, reading())


async def search_decisions(
    connection: AsyncConnection,
    *,
    principal: Principal,
    filters: SearchFilters,
    after: tuple[datetime, int, str] | None,
) -> DecisionPage:
    chains = await repository.tenant_chains(connection, tenant_id=principal.tenant_id)
    chain_ids: list[int] | None = None
    if filters.chain is not None:
        chain_ids = [cid for cid, slug in chains.items() if slug == filters.chain]
        if not chain_ids:
            raise InvalidInput(f"no chain {filters.chain!r}", parameter="chain")
    elif principal.chains is not None:
        chain_ids = [cid for cid, slug in chains.items() if principal.may_use_chain(slug)]
    equal = {
        name: getattr(filters, name)
        for name in repository.SEARCH_EQUALITY_COLUMNS
        if not name.startswith("genai_") and getattr(filters, name) is not None
    }
    equal |= {
        column: getattr(filters, name)
        for name, column in GENAI_FILTERS.items()
        if getattr(filters, name) is not None
    }
    flags = {
        name: getattr(filters, name)
        for name in repository.SEARCH_FLAG_COLUMNS
        if getattr(filters, name) is not None
    }
    rows = await repository.search_decisions(
        connection,
        tenant_id=principal.tenant_id,
        chain_ids=chain_ids,
        equal=equal,
        flags=flags,
        score_min=filters.score_min,
        score_max=filters.score_max,
        decided_from=filters.decided_from,
        decided_before=filters.decided_before,
        after=after,
        limit=filters.limit + 1,
    )
    page = rows[: filters.limit]
    next_cursor = None
    if len(rows) > filters.limit:
        last = page[-1]
        next_cursor = encode_cursor(last.decided_at, int(last.chain_id), str(last.decision_id))
    note = None
    if chain_ids is not None and filters.chain is not None and filters.chain != ACCESS_CHAIN:
        status = await repository.projection_status(connection, chain_id=chain_ids[0])
        note = read_model_note(
            chain_size=status.size,
            next_index=status.next_idx,
            error=status.error,
            failing_since=status.first_failed_at,
        )
    return DecisionPage(
        decisions=await checked_summaries(
            connection, page, chains=chains, tenant_id=principal.tenant_id
        ),
        next_cursor=next_cursor,
        read_model=note,
    )


def read_model_note(
    *, chain_size: int, next_index: int, error: str | None, failing_since: datetime | None
) -> ReadModelNote | None:
    """What to tell an auditor when the read model does not reach the end of the chain."""
    if next_index >= chain_size and error is None:
        return None
    text = (
        f"The read model of this chain holds its entries before index {next_index} "
        f"(of {chain_size}); later entries are not in search or in this view yet."
    )
    if error is not None:
        since = "" if failing_since is None else f" since {format_received_at(failing_since)}"
        text += (
            f" Projecting entry {next_index} fails{since}: {error}. It is retried "
            "automatically; the entries themselves are in the log and can be read and proven."
        )
    return ReadModelNote(
        next_index=next_index,
        chain_size=chain_size,
        error=error,
        failing_since=failing_since,
        text=text,
    )


# The columns a decision takes from its recorded event alone; what later events change
# (reviews, overrides, outcomes, contests) is checked by the decision view, which folds every
# event, and by `audit-trail projections verify`.
RECORDED_COLUMNS = (
    "source",
    "decided_at",
    "received_at",
    "system_name",
    "deployment",
    "model_name",
    "model_version",
    "policy_id",
    "policy_version",
    "decision",
    "score",
    "data_subject_ref",
    "solely_automated",
    "legal_or_similar_effect",
)
# A decision no one event records (a model server's, a GenAI invocation) is checked against
# its whole timeline in a search page: every column a summary shows.
FOLDED_COLUMNS = (
    *RECORDED_COLUMNS,
    "genai_agent",
    "genai_provider",
    "genai_conversation",
    "current_decision",
    "reviewed",
    "overridden",
    "contested",
    "outcome",
)


async def checked_summaries(
    connection: AsyncConnection, rows: list[Any], *, chains: dict[int, str], tenant_id: int
) -> list[DecisionSummary]:
    """Search results, each checked against the events it came from (two indexed reads for
    the page at most): a row is the read model's, which can drift from the log or be altered,
    so the values it shows from the events are the events', and where the row said otherwise
    ``read_model_mismatch`` names the fields. A decision recorded by one event is checked
    against that event; one that no event records on its own (a model server's inference, a
    GenAI invocation) against its whole timeline, folded as the projector folds it."""
    recorded = await repository.recorded_entries(
        connection,
        keys=[(int(r.chain_id), int(r.decision_idx)) for r in rows if r.decision_idx is not None],
    )
    folded = await repository.timelines(
        connection,
        keys=[(int(r.chain_id), r.decision_id) for r in rows if r.decision_idx is None],
    )
    summaries = []
    for row in rows:
        if row.decision_idx is not None:
            found = recorded.get((int(row.chain_id), row.decision_idx))
            stored = [] if found is None else [(int(row.decision_idx), found)]
            checked = _checked_entries(stored, RECORDED_COLUMNS)
        else:
            timeline = folded.get((int(row.chain_id), row.decision_id), [])
            stored = [(int(entry.idx), entry) for entry in timeline if entry.leaf is not None]
            checked = _checked_entries(stored, FOLDED_COLUMNS, decision_id=row.decision_id)
        summaries.append(
            _checked_summary(row, checked, chain=chains[int(row.chain_id)], tenant_id=tenant_id)
        )
    return summaries


@dataclass(frozen=True)
class _Checked:
    """The stored entries a search row is checked against, their events, the columns they
    decide, and what was left out: leaves that are not events, events of another decision."""

    stored: list[tuple[int, Any]]
    events: dict[int, dict[str, Any]]
    columns: tuple[str, ...]
    unreadable: bool
    foreign: bool


def _checked_entries(
    stored: list[tuple[int, Any]], columns: tuple[str, ...], *, decision_id: str | None = None
) -> _Checked:
    """The entries whose leaf holds an event; for a timeline (``decision_id``), only the
    decision's own events (ledger/membership.py): the timeline is the read model's word too."""
    events = {}
    for index, entry in stored:
        try:
            event = orjson.loads(entry.leaf).get("event")
        except (orjson.JSONDecodeError, AttributeError):
            event = None
        if isinstance(event, dict):
            events[index] = event
    readable = [(index, entry) for index, entry in stored if index in events]
    own = readable
    if decision_id is not None:
        members = membership.decision_ids_of(events.items())
        own = [(index, entry) for index, entry in readable if members[index] == decision_id]
    return _Checked(
        own,
        events,
        columns,
        unreadable=len(readable) < len(stored),
        foreign=len(own) < len(readable),
    )


def _checked_summary(row: Any, checked: _Checked, *, chain: str, tenant_id: int) -> DecisionSummary:
    shown, mismatch = row, []
    if checked.stored:
        fresh = _fresh_row(row, checked.stored, checked.events, tenant_id=tenant_id)
        if fresh is not None:
            mismatch = [
                column
                for column in checked.columns
                if _cell(getattr(fresh, column)) != _cell(getattr(row, column))
            ]
            if any(leaf_hash(bytes(e.leaf)) != bytes(e.leaf_hash) for _, e in checked.stored):
                mismatch.append("leaf_hash")
            if mismatch:
                shown = _with_recorded(row, fresh, checked.columns)
    if checked.unreadable:
        mismatch.append("leaf")
    if checked.foreign:
        mismatch.append("timeline")
    return summary(shown, chain=chain, mismatch=mismatch)


def _fresh_row(
    row: Any,
    stored: list[tuple[int, Any]],
    events: dict[int, dict[str, Any]],
    *,
    tenant_id: int,
) -> DecisionRow | None:
    """The row the entries make: the recorded event alone, or a timeline folded whole."""
    projected = [
        ProjectedEntry(
            idx=index,
            received_at=entry.received_at,
            event_type=events[index].get("type", ""),  # the leaf's, not a read-model column
            subject=events[index].get("subject"),
            event=events[index],
        )
        for index, entry in stored
    ]
    if row.decision_idx is not None:
        return project_entry(None, projected[0], chain_id=int(row.chain_id), tenant_id=tenant_id)
    return fold_decision(
        projected, decision_id=row.decision_id, chain_id=int(row.chain_id), tenant_id=tenant_id
    )


def _with_recorded(row: Any, fresh: DecisionRow, columns: tuple[str, ...]) -> Any:
    """The row with the events' values in the checked columns."""
    values = {name: getattr(row, name) for name in row._fields}
    values.update({column: getattr(fresh, column) for column in columns})
    return SimpleNamespace(**values)


# Summary fields named otherwise in the read model's columns.
_SUMMARY_FIELDS = {
    "system_name": "system",
    "genai_agent": "agent",
    "genai_provider": "provider",
    "genai_conversation": "conversation",
}


def summary(row: Any, *, chain: str, mismatch: list[str] | None = None) -> DecisionSummary:
    return DecisionSummary(
        chain=chain,
        decision_id=row.decision_id,
        decided_at=row.decided_at,
        received_at=row.received_at,
        index=row.decision_idx,
        system=row.system_name,
        deployment=row.deployment,
        model_name=row.model_name,
        model_version=row.model_version,
        policy_id=row.policy_id,
        policy_version=row.policy_version,
        decision=row.decision,
        current_decision=row.current_decision,
        score=row.score,
        data_subject_ref=row.data_subject_ref,
        reviewed=row.reviewed,
        overridden=row.overridden,
        contested=row.contested,
        outcome=row.outcome,
        agent=row.genai_agent,
        provider=row.genai_provider,
        conversation=row.genai_conversation,
        source=row.source,
        unprojectable=[_SUMMARY_FIELDS.get(column, column) for column in row.unprojectable],
        read_model_mismatch=[_SUMMARY_FIELDS.get(column, column) for column in mismatch or ()],
    )


async def view(
    state: AppState, principal: Principal, *, chain: str, decision_id: str
) -> DecisionView:
    recording = record_access(
        state, principal, action="decision.view", chain=chain, decision_id=decision_id
    )

    async def reading() -> DecisionView:
        async with state.engine.connect() as connection:
            return await read_decision(
                connection,
                principal=principal,
                signer=state.signer,
                chain=chain,
                decision_id=decision_id,
                now=state.clock(),
            )

    return await _recorded_while(recording, reading())


async def latest_attestation(state: AppState, *, tenant: str, chain: str) -> VerifierEvidence:
    """The verifier's latest signed attestation for the chain, embedded as it signed it (its
    DSSE envelope checks under the verifier's key, which auditors get from the verifier); a
    verifier that cannot say is reported as such, never hidden, and never fails the view."""
    answer = await state.verifier.attestations(tenant=tenant, chain=chain)
    if isinstance(answer, VerifierUnavailable):
        return VerifierEvidence(available=False, reason=answer.reason, attestation=None)
    latest = answer[0] if answer else None
    return VerifierEvidence(
        available=True,
        reason=None if latest else "the verifier has issued no attestation for this chain yet",
        attestation=None if latest is None else VerifierAttestation.model_validate(latest),
    )


async def read_decision(
    connection: AsyncConnection,
    *,
    principal: Principal,
    signer: LogSigner,
    chain: str,
    decision_id: str,
    now: datetime | None = None,
) -> DecisionView:
    """One decision, from its proven events: the read model only says which entries are the
    decision's; every entry is checked from its bytes (``evidence.check_entries``) and proved
    against a checkpoint whose signatures verify now, and the state shown is folded from those
    entries, not read from the read model's row. Anything that does not check out is a 409."""
    # An unknown chain, a chain outside the key's scope, another tenant's chain and an unknown
    # decision all get this same answer.
    unknown = NotFound(f"no decision {decision_id!r} in chain {chain!r}")
    if chain == ACCESS_CHAIN or not principal.may_use_chain(chain):
        raise unknown
    chain_row = await chain_rows.chain_by_slug(
        connection, tenant_id=principal.tenant_id, slug=chain
    )
    if chain_row is None:
        raise unknown
    row = await repository.decision(connection, chain_id=chain_row.id, decision_id=decision_id)
    if row is None:
        raise unknown
    entries = await repository.timeline(connection, chain_id=chain_row.id, decision_id=decision_id)
    leaf_hashes = await _checked(
        connection, chain_row=chain_row, entries=entries, decision_id=decision_id
    )
    timeline = [
        TimelineEvent(
            index=entry.idx,
            type=entry.event_type,
            known=entry.event_type in EVENT_DATA_MODELS,
            received_at=format_received_at(entry.received_at),
            leaf_hash=hashed.hex(),
            leaf=base64.b64encode(bytes(entry.leaf)).decode(),
            event=orjson.loads(entry.leaf)["event"],
        )
        for entry, hashed in zip(entries, leaf_hashes, strict=True)
    ]
    state = fold_timeline(
        entries,
        timeline,
        decision_id=decision_id,
        chain_id=int(chain_row.id),
        tenant_id=principal.tenant_id,
    )
    if state is None:
        raise unknown  # the read model names entries none of which is about this decision
    mismatch = [
        column
        for column in CHECKED_COLUMNS
        if _cell(getattr(state, column)) != _cell(getattr(row, column))
    ]
    explanation = None
    recorded = next(
        (e for e in timeline if e.type == DECISION_RECORDED and e.index == state.decision_idx),
        None,
    )
    if recorded is not None:
        deployment = None
        if state.model_name is not None and state.model_version is not None:
            deployment = await repository.deployment_before(
                connection,
                chain_id=chain_row.id,
                model_name=state.model_name,
                model_version=state.model_version,
                idx=recorded.index,
            )
        deployment_event = None
        if deployment is not None:
            await _checked(connection, chain_row=chain_row, entries=[deployment])
            deployment_event = RecordedEvent(
                int(deployment.idx), "", orjson.loads(deployment.leaf)["event"]
            )
        explanation = explain(
            chain=chain,
            decided_at=state.decided_at,
            recorded=RecordedEvent(recorded.index, recorded.type, recorded.event),
            later=[
                RecordedEvent(e.index, e.type, e.event)
                for e in timeline
                if e.index > recorded.index
            ],
            deployment=deployment_event,
            deployment_leaf_hash=None if deployment is None else bytes(deployment.leaf_hash).hex(),
        )
    if explanation is None:
        explanation = explain_producer_decision(
            chain=chain,
            state=state,
            events=[RecordedEvent(e.index, e.type, e.event) for e in timeline],
            now=now or datetime.now(UTC),
        )
    evidence = await _evidence(
        connection,
        chain_row=chain_row,
        signer=signer,
        proven={entry.index: hashed for entry, hashed in zip(timeline, leaf_hashes, strict=True)},
    )
    return DecisionView(
        chain=chain,
        decision_id=decision_id,
        state=summary(state, chain=chain, mismatch=mismatch),
        timeline=timeline,
        explanation=explanation,
        evidence=evidence,
        read_model=read_model_note(
            chain_size=chain_row.size,
            next_index=chain_row.projected_to,
            error=chain_row.projection_error,
            failing_since=chain_row.projection_failing_since,
        ),
    )


# The columns of a decision row that its events determine (not ``last_idx``, which is the
# read model's bookkeeping).
CHECKED_COLUMNS = tuple(name for name in DECISION_COLUMNS if name != "last_idx")


def _cell(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def fold_timeline(
    entries: list[Any],
    timeline: list[TimelineEvent],
    *,
    decision_id: str,
    chain_id: int,
    tenant_id: int,
) -> DecisionRow | None:
    """The decision's state folded from its checked events, as the projector folds them."""
    return fold_decision(
        [
            ProjectedEntry(
                idx=event.index,
                received_at=entry.received_at,
                event_type=event.type,
                subject=event.event.get("subject"),
                event=event.event,
            )
            for entry, event in zip(entries, timeline, strict=True)
        ],
        decision_id=decision_id,
        chain_id=chain_id,
        tenant_id=tenant_id,
    )


async def _checked(
    connection: AsyncConnection,
    *,
    chain_row: Any,
    entries: list[Any],
    decision_id: str | None = None,
) -> list[bytes]:
    """Check entries read from the store (``evidence.check_entries``): their hashes, their own
    index, their links (reading the leaf before each one that is not among them, which must be
    stored too), and, for a decision's timeline, that each is an event of that decision."""
    for entry in entries:
        if entry.leaf is None:
            raise IntegrityFailure(
                f"entry {entry.idx}, an event of this decision, is missing from the store",
                check="missing",
                index=int(entry.idx),
            )
    wanted = {e.idx for e in entries}
    before = sorted({int(e.idx) - 1 for e in entries if e.idx > 0} - wanted)
    predecessors = await chain_rows.leaves_at(connection, chain_id=chain_row.id, indexes=before)
    absent = [index for index in before if index not in predecessors]
    if absent:
        raise IntegrityFailure(
            f"entry {absent[0]} is missing from the store", check="missing", index=absent[0]
        )
    hashes = check_entries(
        [StoredEntry(int(e.idx), bytes(e.leaf), bytes(e.leaf_hash)) for e in entries],
        tenant=chain_row.tenant,
        chain=chain_row.slug,
        predecessors=predecessors,
    )
    if decision_id is not None:
        # Which decision an event is of comes from the events (ledger/membership.py), as for
        # a selective export: a GenAI span's from the timeline's own spans.
        found = membership.decision_ids_of(
            (int(entry.idx), orjson.loads(entry.leaf)["event"]) for entry in entries
        )
        for index, of in sorted(found.items()):
            if of != decision_id:
                raise IntegrityFailure(
                    f"entry {index} is an event of {of!r}, not of this decision",
                    check="index",
                    index=index,
                    expected=decision_id,
                    found=str(of),
                )
    return hashes


async def projection_health(connection: AsyncConnection) -> dict[str, int]:
    """What /readyz says of the projection: counts only, since anyone may ask."""
    return {"chains_failing": await repository.failing_chain_count(connection)}


async def _evidence(
    connection: AsyncConnection,
    *,
    chain_row: Any,
    signer: LogSigner,
    proven: dict[int, bytes],
) -> Evidence:
    """Each event proved against the latest checkpoint whose cosignature verifies now that
    covers it; where none does, against the latest checkpoint (its log signature checked),
    flagged as not cosigned (DESIGN.md, Evidence). Every proof is checked before it is served.
    ``proven``: the timeline's indexes with their leaf hashes, recomputed from their bytes."""
    origin = signer.chain_origin(tenant=chain_row.tenant, chain=chain_row.slug)
    log_verifier = signer.note_signer.verifier
    cosigned = await latest_verified_checkpoint(
        connection, chain_id=chain_row.id, origin=origin, log_verifier=log_verifier
    )
    latest = await latest_checkpoint(
        connection, chain_row=chain_row, origin=origin, log_verifier=log_verifier
    )
    candidates = [c for c in (cosigned, latest) if c is not None]
    if cosigned is not None and latest is not None and latest.size <= cosigned.size:
        candidates = [cosigned]
    # Prefer the cosigned checkpoint (the smaller size) for every event it covers.
    chosen: dict[int, CheckedCheckpoint] = {}
    plans: dict[int, list[tuple[NodeId, ...]]] = {}
    for index in proven:
        checkpoint = next((c for c in candidates if index < c.size), None)
        if checkpoint is not None:
            chosen[index] = checkpoint
            plans[index] = inclusion_proof_plan(index, checkpoint.size)
    nodes = await chain_service.stored_nodes(
        connection,
        chain_id=chain_row.id,
        node_ids=plan_node_ids(node for plan in plans.values() for node in plan),
    )
    proofs = []
    for index, hashed in proven.items():
        checkpoint = chosen.get(index)
        hashes = None
        if checkpoint is not None:
            hashes = assemble_proof(plans[index], nodes)
            check_inclusion(index=index, hashed=hashed, proof=hashes, checkpoint=checkpoint)
        proofs.append(
            EventProof(
                index=index,
                leaf_hash=hashed.hex(),
                tree_size=None if checkpoint is None else checkpoint.size,
                hashes=None if hashes is None else [h.hex() for h in hashes],
            )
        )
    used = {checkpoint.size for checkpoint in chosen.values()}
    return Evidence(
        origin=origin,
        checkpoints=[
            CheckpointEvidence(
                size=checkpoint.size,
                root_hash=checkpoint.root_hash.hex(),
                cosigned=checkpoint.cosigned,
                note=checkpoint.note,
                cosignatures=[
                    Cosignature(
                        witness=line.witness,
                        cosigned_at=int(line.cosigned_at.timestamp()),
                        signature_line=line.signature_line,
                    )
                    for line in checkpoint.cosignatures
                ],
            )
            for checkpoint in sorted(candidates, key=lambda c: c.size)
            if checkpoint.size in used
        ],
        proofs=proofs,
    )
