"""Auditor views (auditor key, tenant-scoped) and the published event schemas (no auth)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from ledger.canonical import MAX_SAFE_INTEGER

from decision_log.auth import require_role
from decision_log.boundary import ChainFilter, ChainSlug, DecisionId, IndexedText, StoredTime
from decision_log.decisions import service
from decision_log.decisions.event_types import (
    EVENT_DATA_MODELS,
    render_schema,
    schema_id,
)
from decision_log.decisions.schemas import (
    DecisionPage,
    DecisionView,
    EventTypeInfo,
    EventTypeList,
)
from decision_log.limits import MAX_SOURCE_CHARS
from decision_log.problems import NotFound
from decision_log.state import Caller, State

router = APIRouter(tags=["decisions"])

# A score filter: finite, and within I-JSON's exact range, since the search is recorded in the
# access chain as an event, and the log writes no number it would refuse to read back.
Score = Annotated[
    float | None, Query(allow_inf_nan=False, ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)
]
public = APIRouter(tags=["schemas"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid filter (problem body names the parameter)"},
    403: {"description": "The key lacks the auditor role"},
    503: {"description": "The access record could not be written, so nothing is answered"},
}


@router.get(
    "/v1/decisions",
    response_model=DecisionPage,
    summary="Search decisions, newest first, with cursor pagination (the search is logged)",
    responses=_ERRORS,
)
async def search_decisions(
    state: State,
    principal: Caller,
    chain: ChainFilter = None,
    model_name: IndexedText = None,
    model_version: IndexedText = None,
    policy_version: IndexedText = None,
    decision: Annotated[IndexedText, Query(description="The decision as recorded")] = None,
    data_subject_ref: Annotated[IndexedText, Query(description="Pseudonymous reference")] = None,
    score_min: Score = None,
    score_max: Score = None,
    decided_from: Annotated[StoredTime | None, Query(description="RFC 3339, inclusive")] = None,
    decided_before: Annotated[StoredTime | None, Query(description="RFC 3339, exclusive")] = None,
    reviewed: bool | None = None,
    overridden: bool | None = None,
    contested: bool | None = None,
    agent: Annotated[IndexedText, Query(description="GenAI: the agent's name")] = None,
    provider: Annotated[IndexedText, Query(description="GenAI: the model provider")] = None,
    conversation: Annotated[IndexedText, Query(description="GenAI: the conversation id")] = None,
    tool: Annotated[IndexedText, Query(description="GenAI: a tool the agent called")] = None,
    source: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_SOURCE_CHARS,
            description="The producer (CloudEvents source) that recorded the decision: "
            "the source of its recording event, "
            "a model server's first inference event, or a GenAI decision's agent span "
            "(otlp:<service.name> over OTLP)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None,
        Query(min_length=1, max_length=1000, description="next_cursor of the previous page"),
    ] = None,
) -> DecisionPage:
    require_role(principal, "auditor")
    filters = service.SearchFilters(
        chain=chain,
        model_name=model_name,
        model_version=model_version,
        policy_version=policy_version,
        decision=decision,
        data_subject_ref=data_subject_ref,
        score_min=score_min,
        score_max=score_max,
        decided_from=decided_from,
        decided_before=decided_before,
        reviewed=reviewed,
        overridden=overridden,
        contested=contested,
        agent=agent,
        provider=provider,
        conversation=conversation,
        tool=tool,
        source=source,
        limit=limit,
        cursor=cursor,
    )
    return await service.search(state, principal, filters)


@router.get(
    "/v1/chains/{chain}/decisions/{decision_id:path}",
    response_model=DecisionView,
    summary="One decision: timeline, current state, explanation and evidence (the view is logged)",
    responses={**_ERRORS, 404: {"description": "No such decision for this key"}},
)
async def get_decision(
    chain: ChainSlug,
    decision_id: DecisionId,
    state: State,
    principal: Caller,
) -> Any:
    require_role(principal, "auditor")
    view = await service.view(state, principal, chain=chain, decision_id=decision_id)
    if state.verifier.configured:
        view.evidence.verifier = await service.latest_attestation(
            state, tenant=principal.tenant, chain=chain
        )
    return view


@public.get(
    "/v1/schemas",
    response_model=EventTypeList,
    summary="The event types this log knows, with their JSON Schemas (no auth)",
)
async def list_event_types() -> EventTypeList:
    return EventTypeList(
        types=[
            EventTypeInfo(
                type=event_type,
                schema_id=schema_id(event_type),
                path=f"/v1/schemas/{event_type}",
                description=(model.__doc__ or "").strip().splitlines()[0],
            )
            for event_type, model in EVENT_DATA_MODELS.items()
        ]
    )


@public.get(
    "/v1/schemas/{event_type}",
    summary="The JSON Schema (draft 2020-12) of one event type's data (no auth)",
    responses={200: {"content": {"application/schema+json": {}}}, 404: {}},
)
async def get_event_schema(event_type: str) -> Response:
    if event_type.endswith(".json"):
        event_type = event_type[: -len(".json")]
    if event_type not in EVENT_DATA_MODELS:
        raise NotFound(f"no schema for event type {event_type!r}")
    return Response(render_schema(event_type), media_type="application/schema+json")
