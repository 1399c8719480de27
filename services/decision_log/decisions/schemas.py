"""API shapes of the auditor views: search pages, one decision, its explanation and evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DecisionSummary(BaseModel):
    chain: str
    decision_id: str = Field(description="The CloudEvents subject of the decision's events")
    decided_at: datetime = Field(description="The decision event's time (else its receive time)")
    received_at: datetime
    index: int | None = Field(description="Index of the decision.recorded entry")
    system: str | None
    deployment: str | None
    model_name: str | None
    model_version: str | None
    policy_id: str | None
    policy_version: str | None
    decision: str | None = Field(description="The decision as recorded")
    current_decision: str | None = Field(description="After reviews and overrides")
    score: float | None
    data_subject_ref: str | None
    reviewed: bool
    overridden: bool
    contested: bool
    outcome: str | None = Field(description="The latest observed outcome")
    agent: str | None = Field(default=None, description="GenAI: gen_ai.agent.name")
    provider: str | None = Field(
        default=None, description="GenAI: gen_ai.provider.name (or the older gen_ai.system)"
    )
    conversation: str | None = Field(default=None, description="GenAI: gen_ai.conversation.id")
    source: str | None = Field(
        default=None,
        description="The producer (CloudEvents source) that recorded the decision: "
        "the source of its recording event, "
        "a model server's first inference event, or a GenAI decision's agent span "
        "(otlp:<service.name> over OTLP)",
    )
    read_model_mismatch: list[str] = Field(
        default_factory=list,
        description="Fields the read model's row held otherwise than the event they come from "
        "(the row was altered, or projected by older code); the values shown are the "
        "event's. In a search page, a decision recorded by one event is checked against that "
        "event's fields; one that no event records alone (a model server's, a GenAI "
        "invocation) against its whole timeline; 'timeline' means the read model listed another "
        "decision's event in it, 'leaf' that a stored leaf no longer holds an event",
    )
    unprojectable: list[str] = Field(
        default_factory=list,
        description=(
            "Fields of this summary that an event gave a value for which the read model cannot "
            "hold (a NUL character, a text too long to index, a time out of range): they are "
            "null here (decided_at: the receive time); the events in the timeline hold the "
            "values as recorded"
        ),
    )


class ReadModelNote(BaseModel):
    """Given when the read model does not reach the end of the chain: what is shown is as of
    the entries before ``next_index``."""

    next_index: int = Field(description="The read model holds the chain's entries below this")
    chain_size: int = Field(description="Entries committed to the chain")
    error: str | None = Field(
        description="Why projection stopped at next_index, while it fails; null if only behind"
    )
    failing_since: datetime | None
    text: str = Field(description="The same in words")


class DecisionPage(BaseModel):
    decisions: list[DecisionSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at end")
    read_model: ReadModelNote | None = Field(
        default=None,
        description="For a search of one chain whose read model does not reach its end",
    )


class TimelineEvent(BaseModel):
    index: int
    type: str
    known: bool = Field(description="False for event types this log has no schema for")
    received_at: str
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf), hex")
    leaf: str = Field(description="The exact leaf bytes, base64")
    event: dict[str, Any] = Field(description="The CloudEvent as recorded")


class Factor(BaseModel):
    feature: str
    weight: float
    direction: str = Field(description="raised or lowered the score, as recorded")
    value: Any | None = None


class HumanAction(BaseModel):
    index: int
    type: str
    action: str | None
    reviewer_ref: str | None
    role: str | None
    new_decision: str | None
    reason: str | None
    at: str | None


class Contest(BaseModel):
    index: int
    by: str | None
    grounds: str | None
    channel: str | None
    at: str | None


class Deployment(BaseModel):
    index: int
    leaf_hash: str
    deployment: str | None
    lineage: dict[str, Any] | None


class InferenceStep(BaseModel):
    index: int
    type: str = Field(description="The event type: an inference request or response")
    node: str | None = Field(description="Seldon: the graph node (modelid); KServe: component")
    at: str | None = Field(description="When it happened (the event's time, as sent)")
    recorded_at: str | None = Field(
        default=None, description="KServe: when the logger made the event (recordedtime)"
    )
    data: Any | None = Field(description="The body as recorded (data, or data_base64)")


class InferenceExchange(BaseModel):
    """A model server's inference (KServe, Seldon Core v1) as its payload logger recorded it."""

    server: str = Field(description="kserve or seldon")
    response: str = Field(
        description="recorded; not recorded (KServe logs a response only for HTTP 200, and "
        "none came within the stated time after the request); awaited (not yet past that time)"
    )
    steps: list[InferenceStep] = Field(description="Requests and responses, in index order")


class GenAICall(BaseModel):
    index: int
    span_id: str
    operation: str | None = Field(description="gen_ai.operation.name, e.g. chat, execute_tool")
    name: str = Field(description="The span name")
    started_at: datetime
    model: str | None = Field(description="gen_ai.request.model")
    response_model: str | None = Field(description="gen_ai.response.model: what answered")
    provider: str | None
    tool: str | None = Field(description="gen_ai.tool.name")
    arguments: Any | None = Field(description="gen_ai.tool.call.arguments as recorded")
    result: Any | None = Field(description="gen_ai.tool.call.result as recorded")
    input_tokens: int | None
    output_tokens: int | None


class GenAIExplanation(BaseModel):
    """An agent invocation (or a GenAI trace without one) as its spans recorded it."""

    agent: str | None
    provider: str | None
    conversation: str | None
    model: str | None = Field(description="The model requested of the last model call")
    model_version: str | None = Field(description="The model that call's response named")
    tools: list[str] = Field(description="Tools called, in order, each once")
    input_tokens: int = Field(description="Summed over the model calls")
    output_tokens: int = Field(description="Summed over the model calls")
    calls: list[GenAICall] = Field(description="Model and tool calls, by start time")


class Explanation(BaseModel):
    """Built only from what was recorded; nothing is recomputed from today's model or policy."""

    recorded_at: datetime
    index: int = Field(description="The decision.recorded entry the explanation comes from")
    system: str
    deployment: str | None
    model: dict[str, Any]
    model_deployment: Deployment | None
    policy: dict[str, Any] | None
    decision: str | None
    score: float | None
    method: str | None
    factors: list[Factor] = Field(description="By absolute weight, largest first")
    reason_codes: list[dict[str, Any]]
    counterfactual: dict[str, Any] | None
    summary: str | None = Field(description="The producer's summary, as recorded")
    purpose: str | None
    solely_automated: bool | None
    legal_or_similar_effect: bool | None
    human_oversight: list[HumanAction]
    contests: list[Contest]
    outcome: str | None
    current_decision: str | None
    inference: InferenceExchange | None = Field(
        default=None, description="For a model server's inference: what it logged"
    )
    genai: GenAIExplanation | None = Field(
        default=None, description="For a GenAI decision: its model and tool calls"
    )
    text: str = Field(description="The same in one plain-language paragraph")


class Cosignature(BaseModel):
    witness: str
    cosigned_at: int = Field(description="Unix seconds, as signed")
    signature_line: str


class CheckpointEvidence(BaseModel):
    size: int
    root_hash: str
    cosigned: bool = Field(description="False: no witness has cosigned a checkpoint covering this")
    note: str = Field(description="The C2SP signed note with every cosignature line")
    cosignatures: list[Cosignature]


class EventProof(BaseModel):
    index: int
    leaf_hash: str
    tree_size: int | None = Field(description="The checkpoint proved against; null if none yet")
    hashes: list[str] | None = Field(description="RFC 6962 inclusion proof, hex")


class VerifierAttestation(BaseModel):
    """An attestation as the verifier issued it: its signed in-toto Statement (DSSE)."""

    id: int
    size: int = Field(description="Entries the verifier had checked")
    root_hash: str
    result: str = Field(description="passed, or failed with a finding")
    issued_at: datetime
    envelope: dict[str, Any] = Field(
        description="DSSE envelope of an in-toto Statement v1, signed by the verifier's key "
        "(GET /v1/keys on the verifier); it says what was checked and what was found"
    )


class VerifierEvidence(BaseModel):
    available: bool = Field(description="False when the verifier could not be asked")
    reason: str | None = Field(description="Why there is no attestation, if there is none")
    attestation: VerifierAttestation | None = Field(
        description="The verifier's latest signed attestation for the chain, as signed"
    )


class Evidence(BaseModel):
    origin: str = Field(description="The chain's checkpoint origin")
    checkpoints: list[CheckpointEvidence] = Field(
        description="The checkpoints the proofs lead to; `cosigned` only where a witness's "
        "cosignature verified when this was served"
    )
    proofs: list[EventProof] = Field(
        description="One per timeline event, each checked against its checkpoint's root before "
        "it was served"
    )
    verifier: VerifierEvidence | None = Field(
        default=None, description="The verifier's word on the chain; null when none is configured"
    )


class DecisionView(BaseModel):
    chain: str
    decision_id: str
    state: DecisionSummary = Field(
        description="Folded from the timeline's checked events, not read from the read model"
    )
    timeline: list[TimelineEvent]
    explanation: Explanation | None = Field(description="Null until the decision is recorded")
    evidence: Evidence
    read_model: ReadModelNote | None = Field(
        default=None,
        description=(
            "Given when the chain's read model does not reach its end (projection behind or "
            "failing): the state, timeline and explanation stop before next_index"
        ),
    )


class EventTypeInfo(BaseModel):
    type: str
    schema_id: str = Field(description="The JSON Schema's $id; use it as dataschema")
    path: str = Field(description="Where this service serves the schema")
    description: str


class EventTypeList(BaseModel):
    types: list[EventTypeInfo]
