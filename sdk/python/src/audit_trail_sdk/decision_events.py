"""Typed helpers for the log's published event types, shared by the sync and async clients.

Each helper builds the ``data`` its type's JSON Schema describes (the log's
``event_schemas/<type>.json``) and hands it to ``emit``; members the schema does not name go in
``extra`` and are kept as sent. ``personal`` lists JSON Pointers into ``data`` of personal
values, which the log seals per ``data_subject`` before anything is stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from audit_trail_sdk.events import (
    DECISION_CONTESTED,
    DECISION_OVERRIDDEN,
    DECISION_RECORDED,
    DECISION_REVIEWED,
    GENAI_INVOCATION,
    MODEL_DEPLOYED,
    OUTCOME_OBSERVED,
    drop_none,
)

Delivery = TypeVar("Delivery")
Members = Mapping[str, Any]


class DecisionEvents(Generic[Delivery]):
    """What the clients share: ``emit`` returns the client's kind of delivery handle."""

    def emit(
        self,
        event_type: str,
        *,
        data: Any,
        subject: str | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
        time: str | None = None,
    ) -> Delivery:
        raise NotImplementedError

    def decision(
        self,
        *,
        decision_id: str,
        model: Members,
        output: Members | str,
        policy: Members | None = None,
        input: Members | None = None,
        explanation: Members | None = None,
        system: Members | None = None,
        purpose: str | None = None,
        solely_automated: bool | None = None,
        legal_or_similar_effect: bool | None = None,
        gen_ai: Members | None = None,
        extra: Members | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
        time: str | None = None,
    ) -> Delivery:
        """A decision as made (``dev.audit-trail.decision.recorded.v1``). ``model`` names it
        (``{"name", "version"}``); ``output`` is ``{"decision", "score"?, ...}`` or just the
        decision value."""
        data = drop_none(
            model=dict(model),
            output={"decision": output} if isinstance(output, str) else dict(output),
            policy=policy,
            input=input,
            explanation=explanation,
            system=system,
            purpose=purpose,
            solely_automated=solely_automated,
            legal_or_similar_effect=legal_or_similar_effect,
            gen_ai=gen_ai,
        )
        return self.emit(
            DECISION_RECORDED,
            data={**(extra or {}), **data},
            subject=decision_id,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
            time=time,
        )

    def review(
        self,
        *,
        decision_id: str,
        action: Literal["confirmed", "amended", "escalated", "requested-information"],
        reviewer_ref: str,
        role: str,
        new_decision: str | None = None,
        reason: str | None = None,
        at: str | None = None,
        extra: Members | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """A human reviewed the decision (``dev.audit-trail.decision.reviewed.v1``)."""
        data = drop_none(
            action=action,
            reviewer_ref=reviewer_ref,
            role=role,
            new_decision=new_decision,
            reason=reason,
            at=at,
        )
        return self.emit(
            DECISION_REVIEWED,
            data={**(extra or {}), **data},
            subject=decision_id,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
        )

    def override(
        self,
        *,
        decision_id: str,
        action: Literal["overridden", "reversed", "stopped"],
        reviewer_ref: str,
        role: str,
        reason: str,
        new_decision: str | None = None,
        at: str | None = None,
        extra: Members | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """A human overrode, reversed or stopped the decision
        (``dev.audit-trail.decision.overridden.v1``)."""
        data = drop_none(
            action=action,
            reviewer_ref=reviewer_ref,
            role=role,
            reason=reason,
            new_decision=new_decision,
            at=at,
        )
        return self.emit(
            DECISION_OVERRIDDEN,
            data={**(extra or {}), **data},
            subject=decision_id,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
        )

    def contest(
        self,
        *,
        decision_id: str,
        by: Literal["data-subject", "representative", "authority"] = "data-subject",
        grounds: str | None = None,
        channel: str | None = None,
        at: str | None = None,
        extra: Members | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """The affected person contested the decision
        (``dev.audit-trail.decision.contested.v1``)."""
        data = drop_none(by=by, grounds=grounds, channel=channel, at=at)
        return self.emit(
            DECISION_CONTESTED,
            data={**(extra or {}), **data},
            subject=decision_id,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
        )

    def outcome(
        self,
        *,
        decision_id: str,
        outcome: str,
        value: float | None = None,
        observed_at: str | None = None,
        source: str | None = None,
        extra: Members | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """What happened later (``dev.audit-trail.outcome.observed.v1``)."""
        data = drop_none(outcome=outcome, value=value, observed_at=observed_at, source=source)
        return self.emit(
            OUTCOME_OBSERVED,
            data={**(extra or {}), **data},
            subject=decision_id,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
        )

    def model_deployed(
        self,
        *,
        model: Members,
        deployment: str | None = None,
        deployed_by_ref: str | None = None,
        lineage: Members | None = None,
        extra: Members | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """A model version went into service (``dev.audit-trail.model.deployed.v1``)."""
        data = drop_none(
            model=dict(model),
            deployment=deployment,
            deployed_by_ref=deployed_by_ref,
            lineage=lineage,
        )
        return self.emit(MODEL_DEPLOYED, data={**(extra or {}), **data}, event_id=event_id)

    def genai_invocation(
        self,
        *,
        trace_id: str,
        span_id: str,
        name: str,
        start_time_unix_nano: int,
        end_time_unix_nano: int,
        attributes: Sequence[Members],
        resource: Members,
        parent_span_id: str | None = None,
        kind: int | None = None,
        status: Members | None = None,
        scope: Members | None = None,
        extra: Members | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
    ) -> Delivery:
        """One OpenTelemetry GenAI span in OTLP/JSON form
        (``dev.audit-trail.genai.invocation.v1``): its id is trace id + "-" + span id, as the
        log's OTLP route names it, so a span sent both ways is one event per source."""
        data = drop_none(
            traceId=trace_id,
            spanId=span_id,
            parentSpanId=parent_span_id,
            name=name,
            kind=kind,
            startTimeUnixNano=str(start_time_unix_nano),
            endTimeUnixNano=str(end_time_unix_nano),
            attributes=[dict(attribute) for attribute in attributes],
            status=status,
            resource=dict(resource),
            scope=scope,
        )
        return self.emit(
            GENAI_INVOCATION,
            data={**(extra or {}), **data},
            subject=trace_id,
            personal=personal,
            data_subject=data_subject,
            event_id=f"{trace_id}-{span_id}",
        )
