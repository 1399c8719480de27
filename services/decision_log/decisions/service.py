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
from datetime import datetime
from typing import Any, TypeVar

import httpx
import orjson
from ledger.leaf import format_received_at
from ledger.merkle import NodeId, assemble_proof, inclusion_proof_plan, plan_node_ids
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.chains import repository as chain_rows
from decision_log.chains import service as chain_service
from decision_log.decisions import repository
from decision_log.decisions.access import record_access
from decision_log.decisions.event_types import DECISION_RECORDED, EVENT_DATA_MODELS
from decision_log.decisions.explanation import RecordedEvent, explain
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
)
from decision_log.keys.service import Principal
from decision_log.problems import InvalidInput, NotFound
from decision_log.signing import LogSigner
from decision_log.state import AppState
from decision_log.witnesses import repository as witness_rows

T = TypeVar("T")
MAX_PAGE = 200


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
    for name in ("model_name", "model_version", "policy_version", "decision", "data_subject_ref"):
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
        decisions=[summary(row, chain=chains[int(row.chain_id)]) for row in page],
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


# Summary fields named otherwise in the read model's columns.
_SUMMARY_FIELDS = {"system_name": "system"}


def summary(row: Any, *, chain: str) -> DecisionSummary:
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
        unprojectable=[_SUMMARY_FIELDS.get(column, column) for column in row.unprojectable],
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
            )

    return await _recorded_while(recording, reading())


async def verifier_status(
    http: httpx.AsyncClient, verifier_url: str, *, chain: str, api_key: str
) -> dict[str, Any]:
    """The verifier's status of a chain, as it says it; a verifier that does not answer is
    reported, not hidden, and never fails the view."""
    url = f"{verifier_url.rstrip('/')}/v1/chains/{chain}"
    try:
        response = await http.get(url, headers={"Authorization": f"Bearer {api_key}"})
    except httpx.HTTPError as error:
        return {"available": False, "url": url, "error": type(error).__name__}
    if response.status_code != 200:
        return {"available": False, "url": url, "status": response.status_code}
    status: dict[str, Any] = response.json()
    return {"available": True, "url": url, **status}


async def read_decision(
    connection: AsyncConnection,
    *,
    principal: Principal,
    signer: LogSigner,
    chain: str,
    decision_id: str,
) -> DecisionView:
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
    timeline = [
        TimelineEvent(
            index=entry.idx,
            type=entry.event_type,
            known=entry.event_type in EVENT_DATA_MODELS,
            received_at=format_received_at(entry.received_at),
            leaf_hash=bytes(entry.leaf_hash).hex(),
            leaf=base64.b64encode(bytes(entry.leaf)).decode(),
            event=orjson.loads(entry.leaf)["event"],
        )
        for entry in entries
    ]
    explanation = None
    recorded = next(
        (e for e in timeline if e.type == DECISION_RECORDED and e.index == row.decision_idx), None
    )
    if recorded is not None:
        deployment = None
        if row.model_name is not None and row.model_version is not None:
            deployment = await repository.deployment_before(
                connection,
                chain_id=chain_row.id,
                model_name=row.model_name,
                model_version=row.model_version,
                idx=recorded.index,
            )
        explanation = explain(
            chain=chain,
            decided_at=row.decided_at,
            recorded=RecordedEvent(recorded.index, recorded.type, recorded.event),
            later=[
                RecordedEvent(e.index, e.type, e.event)
                for e in timeline
                if e.index > recorded.index
            ],
            deployment=None
            if deployment is None
            else RecordedEvent(int(deployment.idx), "", orjson.loads(deployment.leaf)["event"]),
            deployment_leaf_hash=None if deployment is None else bytes(deployment.leaf_hash).hex(),
        )
    evidence = await _evidence(connection, chain_row=chain_row, signer=signer, timeline=timeline)
    return DecisionView(
        chain=chain,
        decision_id=decision_id,
        state=summary(row, chain=chain),
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


async def projection_health(connection: AsyncConnection) -> dict[str, int]:
    """What /readyz says of the projection: counts only, since anyone may ask."""
    return {"chains_failing": await repository.failing_chain_count(connection)}


async def _evidence(
    connection: AsyncConnection, *, chain_row: Any, signer: LogSigner, timeline: list[TimelineEvent]
) -> Evidence:
    """Each event proved against the latest cosigned checkpoint that covers it; where none
    does yet, against the latest checkpoint, flagged as not cosigned (DESIGN.md, Evidence)."""
    cosigned = await witness_rows.latest_cosigned_checkpoint(connection, chain_id=chain_row.id)
    checkpoints: dict[int, CheckpointEvidence] = {}
    if cosigned is not None:
        note, lines = await chain_service.cosigned_note(
            connection, chain_id=chain_row.id, size=cosigned.size, note=cosigned.note
        )
        checkpoints[int(cosigned.size)] = CheckpointEvidence(
            size=cosigned.size,
            root_hash=bytes(cosigned.root_hash).hex(),
            cosigned=True,
            note=note,
            cosignatures=[
                Cosignature(
                    witness=line.name,
                    cosigned_at=line.cosigned_at,
                    signature_line=line.signature_line,
                )
                for line in lines
            ],
        )
    latest_size = chain_row.checkpoint_size
    if latest_size is not None and (cosigned is None or latest_size > cosigned.size):
        checkpoints[int(latest_size)] = CheckpointEvidence(
            size=latest_size,
            root_hash=bytes(chain_row.checkpoint_root).hex(),
            cosigned=False,
            note=chain_row.checkpoint_note,
            cosignatures=[],
        )
    # Prefer the cosigned checkpoint (the smaller size) for every event it covers.
    sizes = sorted(checkpoints)
    plans: dict[int, tuple[int, list[tuple[NodeId, ...]]]] = {}
    for event in timeline:
        size = next((s for s in sizes if event.index < s), None)
        if size is not None:
            plans[event.index] = (size, inclusion_proof_plan(event.index, size))
    nodes = await chain_rows.merkle_nodes(
        connection,
        chain_id=chain_row.id,
        node_ids=plan_node_ids(node for _, plan in plans.values() for node in plan),
    )
    proofs = []
    for event in timeline:
        planned = plans.get(event.index)
        proofs.append(
            EventProof(
                index=event.index,
                leaf_hash=event.leaf_hash,
                tree_size=None if planned is None else planned[0],
                hashes=None
                if planned is None
                else [h.hex() for h in assemble_proof(planned[1], nodes)],
            )
        )
    used = {proof.tree_size for proof in proofs}
    return Evidence(
        origin=signer.chain_origin(tenant=chain_row.tenant, chain=chain_row.slug),
        checkpoints=[checkpoints[size] for size in sizes if size in used],
        proofs=proofs,
    )
