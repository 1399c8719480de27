"""The event types of a decision's life, their ``data`` models and published JSON Schemas.

Type names are reverse-DNS CloudEvents ``type`` values ending in a major version
(``dev.audit-trail.decision.recorded.v1``); a breaking change makes a ``.v2`` type, never a new
meaning for ``.v1``. The CloudEvents ``subject`` of every decision event is the decision id.
Members not named here are kept in the log as sent (the log is the log) and ignored by the read
model, so producers can add fields without a new version; named members must have the named
shape. Text members the decision read model keeps in its columns (names, versions, decision
and outcome values, the data-subject reference) are held to ``limits.MAX_INDEXED_TEXT_CHARS``
characters, which its indexes can hold. The committed schema files under
``event_schemas/`` are generated from these models
(``python -m decision_log.decisions.event_types``) and a test keeps them in step.

Validation runs on the append path before the chain lock (``check_event_data``): it costs one
dictionary lookup for an unknown type and, for a known one, one validation of the already parsed
``data`` against the very JSON Schema published for it, by the compiled ``jsonschema_rs``
validator (about seven times faster than pydantic here). Only data it refuses goes through the
pydantic model too, which names the field at fault as a producer wants it named (the innermost
member, where a JSON Schema validator reports "none of anyOf" on the optional member holding it).
The models are the source of the schemas and the oracle the tests hold the validator to.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import jsonschema_rs
import orjson
from ledger.completeness import CLOSED_EVENT_TYPE, HEARTBEAT_EVENT_TYPE
from ledger.membership import GENAI_INVOCATION as GENAI_INVOCATION
from ledger.membership import MODEL_DEPLOYED as MODEL_DEPLOYED
from ledger.membership import RECORDS_ACCESSED as RECORDS_ACCESSED
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from decision_log.limits import MAX_INDEXED_TEXT_CHARS
from decision_log.problems import InvalidInput

TYPE_PREFIX = "dev.audit-trail."
SCHEMA_ID_BASE = "https://audit-trail.dev/schemas/"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DECISION_RECORDED = "dev.audit-trail.decision.recorded.v1"
DECISION_REVIEWED = "dev.audit-trail.decision.reviewed.v1"
DECISION_OVERRIDDEN = "dev.audit-trail.decision.overridden.v1"
OUTCOME_OBSERVED = "dev.audit-trail.outcome.observed.v1"
DECISION_CONTESTED = "dev.audit-trail.decision.contested.v1"
ADMIN_ACTION_RECORDED = "dev.audit-trail.admin-action.recorded.v1"
PRODUCER_HEARTBEAT = HEARTBEAT_EVENT_TYPE
PRODUCER_CLOSED = CLOSED_EVENT_TYPE

RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
DIGEST = r"^[a-z0-9]+:[0-9a-fA-F]{32,128}$"


class _Open(BaseModel):
    """Named members are checked; other members are allowed and kept as sent."""

    model_config = ConfigDict(extra="allow", strict=True)


class System(_Open):
    name: str = Field(
        max_length=MAX_INDEXED_TEXT_CHARS, description="The AI system's name, e.g. credit-scoring"
    )
    deployment: str | None = Field(
        default=None,
        max_length=MAX_INDEXED_TEXT_CHARS,
        description="The deployment that decided, e.g. eu-prod-3",
    )
    environment: str | None = Field(default=None, description="e.g. production, shadow, test")


class ModelRef(_Open):
    name: str = Field(
        max_length=MAX_INDEXED_TEXT_CHARS, description="Model name as in the model registry"
    )
    version: str = Field(
        max_length=MAX_INDEXED_TEXT_CHARS, description="Model version as in the model registry"
    )
    registry_uri: str | None = Field(
        default=None, description="Where the model is registered, e.g. models:/credit-gbm/4"
    )
    digest: str | None = Field(
        default=None,
        pattern=DIGEST,
        description="Digest of the model artifact, algorithm:hex, e.g. sha256:9f2c...",
    )


class PolicyRef(_Open):
    id: str = Field(
        max_length=MAX_INDEXED_TEXT_CHARS,
        description="The decision policy (business rules) applied",
    )
    version: str = Field(max_length=MAX_INDEXED_TEXT_CHARS, description="The policy's version")
    thresholds: dict[str, float] | None = Field(
        default=None, description="Named thresholds as applied, e.g. {'approve': 0.5}"
    )


class DecisionInput(_Open):
    features: dict[str, Any] | None = Field(
        default=None, description="Input features as used (mark personal ones for encryption)"
    )
    digest: str | None = Field(
        default=None, pattern=DIGEST, description="Digest of the full input, algorithm:hex"
    )
    reference: str | None = Field(
        default=None, description="Where the full input is kept (URI), if not sent"
    )


class DecisionOutput(_Open):
    decision: str = Field(
        max_length=MAX_INDEXED_TEXT_CHARS,
        description="The decision value, e.g. approved, declined, referred",
    )
    score: float | None = Field(default=None, description="The model score the policy compared")
    probabilities: dict[str, float] | None = Field(
        default=None, description="Class probabilities, e.g. {'default': 0.37}"
    )


class Attribution(_Open):
    feature: str = Field(description="Input feature name")
    weight: float = Field(
        description="Signed contribution to the score (e.g. SHAP value); sign gives direction"
    )
    value: Any | None = Field(default=None, description="The feature's value as used, optional")


class ReasonCode(_Open):
    code: str = Field(description="Reason code, e.g. an adverse-action code")
    description: str | None = Field(default=None, description="What the code means")


class Counterfactual(_Open):
    changes: dict[str, Any] = Field(
        description="Smallest recorded input change that would have changed the decision"
    )
    decision: str | None = Field(default=None, description="The decision those changes give")
    description: str | None = Field(default=None, description="The counterfactual in words")


class AppliedExplanation(_Open):
    method: str | None = Field(
        default=None, description="How factors were computed, e.g. shap, lime, rules"
    )
    attributions: list[Attribution] = Field(
        default_factory=list, description="Feature attributions as computed at decision time"
    )
    reason_codes: list[ReasonCode] = Field(
        default_factory=list, description="Reason codes given at decision time"
    )
    counterfactual: Counterfactual | None = Field(
        default=None, description="A counterfactual, if one was computed at decision time"
    )
    summary: str | None = Field(
        default=None, description="A short explanation written at decision time"
    )


class GenAIUsage(_Open):
    input_tokens: int | None = Field(default=None, description="gen_ai.usage.input_tokens")
    output_tokens: int | None = Field(default=None, description="gen_ai.usage.output_tokens")


class GenAI(_Open):
    """OpenTelemetry GenAI semantic conventions, for LLM systems."""

    operation_name: str | None = Field(default=None, description="gen_ai.operation.name, e.g. chat")
    system: str | None = Field(default=None, description="gen_ai.system, e.g. openai")
    request_model: str | None = Field(default=None, description="gen_ai.request.model")
    response_model: str | None = Field(default=None, description="gen_ai.response.model")
    usage: GenAIUsage | None = Field(default=None, description="Token usage")
    conversation_id: str | None = Field(default=None, description="gen_ai.conversation.id")


class DecisionRecorded(_Open):
    """A decision as made, with everything needed to explain it later without recomputing."""

    system: System | None = Field(
        default=None, description="The deciding system (default: the chain)"
    )
    model: ModelRef = Field(description="The model that scored")
    policy: PolicyRef | None = Field(default=None, description="The policy that decided")
    input: DecisionInput | None = Field(default=None, description="What the model was given")
    output: DecisionOutput = Field(description="What was decided")
    explanation: AppliedExplanation | None = Field(
        default=None, description="The explanation as applied at decision time"
    )
    purpose: str | None = Field(default=None, description="Purpose of the processing")
    solely_automated: bool | None = Field(
        default=None, description="Made without meaningful human involvement (GDPR Art. 22(1))"
    )
    legal_or_similar_effect: bool | None = Field(
        default=None,
        description="Produces legal or similarly significant effects on the data subject",
    )
    data_subject_ref: str | None = Field(
        default=None,
        max_length=MAX_INDEXED_TEXT_CHARS,
        description="The data subject's pseudonymous reference (a keyed-HMAC pseudonym)",
    )
    gen_ai: GenAI | None = Field(default=None, description="LLM systems: OpenTelemetry GenAI")


class _HumanOversight(_Open):
    reviewer_ref: str = Field(description="Pseudonymous reference of the human reviewer")
    role: str = Field(description="The reviewer's role, e.g. credit-officer")
    new_decision: str | None = Field(
        default=None,
        max_length=MAX_INDEXED_TEXT_CHARS,
        description="The decision after this action, if it changed",
    )
    reason: str | None = Field(default=None, description="Why, in the reviewer's words")
    at: str | None = Field(default=None, pattern=RFC3339, description="When, RFC 3339")


class DecisionReviewed(_HumanOversight):
    """A human reviewed the decision (AI Act Art. 14; GDPR Art. 22(3))."""

    action: Literal["confirmed", "amended", "escalated", "requested-information"] = Field(
        description="What the reviewer did; amended gives new_decision"
    )


class DecisionOverridden(_HumanOversight):
    """A human overrode, reversed or stopped the decision (AI Act Art. 14(4)(d), (e))."""

    action: Literal["overridden", "reversed", "stopped"] = Field(
        description="What the human did to the automated decision"
    )
    reason: str = Field(description="Why, in the reviewer's words (required)")


class OutcomeObserved(_Open):
    """What happened later (e.g. the loan was repaid), for post-market monitoring."""

    outcome: str = Field(
        max_length=MAX_INDEXED_TEXT_CHARS,
        description="The observed outcome, e.g. repaid, defaulted",
    )
    value: float | None = Field(default=None, description="A numeric outcome, if any")
    observed_at: str | None = Field(default=None, pattern=RFC3339, description="When, RFC 3339")
    source: str | None = Field(default=None, description="Where the observation comes from")


class DecisionContested(_Open):
    """The affected person contested the decision (GDPR Art. 22(3); AI Act Art. 86)."""

    by: Literal["data-subject", "representative", "authority"] = Field(
        default="data-subject", description="Who contested"
    )
    grounds: str | None = Field(default=None, description="The grounds given")
    channel: str | None = Field(default=None, description="How it was received, e.g. web-form")
    at: str | None = Field(default=None, pattern=RFC3339, description="When, RFC 3339")


class Artifact(_Open):
    uri: str = Field(description="Where the artifact is (dataset, run, parent model)")
    digest: str | None = Field(default=None, pattern=DIGEST, description="algorithm:hex")


class Lineage(_Open):
    training_data: list[Artifact] = Field(
        default_factory=list, description="Datasets the model was trained on"
    )
    training_run: str | None = Field(default=None, description="The training run (URI)")
    parent_model: Artifact | None = Field(default=None, description="Base or previous model")
    evaluation: str | None = Field(default=None, description="Evaluation report (URI)")


class ModelDeployed(_Open):
    """A model version went into service; decisions name it, so they tie to its lineage."""

    model: ModelRef = Field(description="The model deployed (give registry_uri and digest)")
    deployment: str | None = Field(default=None, description="Where it was deployed")
    deployed_by_ref: str | None = Field(
        default=None, description="Pseudonymous reference of who approved the deployment"
    )
    lineage: Lineage | None = Field(default=None, description="Provenance (ISO 42001 A.7.5)")


class Accessor(_Open):
    key_id: str = Field(description="The API key id that read")
    tenant: str = Field(description="The key's tenant")
    roles: list[str] = Field(description="The key's roles")


class RecordsAccessed(_Open):
    """Written by the log itself into the tenant's ``access-log`` chain (ISO 27001 A.8.15)."""

    accessor: Accessor = Field(description="Who read")
    action: Literal["decisions.search", "decision.view", "export", "export.download"] = Field(
        description="What they did"
    )
    chain: str | None = Field(default=None, description="The chain read, if one")
    decision_id: str | None = Field(default=None, description="The decision read, if one")
    query: dict[str, Any] | None = Field(
        default=None, description="The search filters, or what an export selected"
    )


ADMIN_ACTIONS = (
    "tenant.create",
    "key.create",
    "key.change",
    "key.revoke",
    "chain.create",
    "chain.configure",
    "witness.register",
    "witness.revoke",
    "retention.set",
    "legal-hold.set",
    "legal-hold.lift",
    "subject.erase",
    "records.dispose",
    "producer.close",
    "export.override",
    "finding.acknowledge",
    "console.sign-in",
    "console.sign-out",
)


class AdminActor(_Open):
    via: Literal["api", "command line", "verifier"] = Field(
        description="How the action was taken: an API key, the command line on a host with "
        "the database's credentials, or the verifier's own record of its operator"
    )
    key_id: str | None = Field(default=None, description="The API key id that acted (api)")
    roles: list[str] | None = Field(default=None, description="The key's roles (api)")
    operator: str | None = Field(
        default=None,
        description="Who acted outside the API: the operating-system user and host that ran "
        "the command, or the operator a verifier recorded",
    )


class AdminActionRecorded(_Open):
    """Written by the log itself into the tenant's ``access-log`` chain for each change to
    who may do what, what is kept and who is trusted (ISO/IEC 27001 A.8.15)."""

    actor: AdminActor = Field(description="Who acted")
    action: Literal[ADMIN_ACTIONS] = Field(description="What they did")  # type: ignore[valid-type]
    target: dict[str, Any] = Field(
        description="What it was done to: a key id, a chain, a witness name, a finding"
    )
    reason: str | None = Field(default=None, description="The reason given, where one is asked")
    changes: dict[str, Any] | None = Field(
        default=None, description="What the action set (never a secret), e.g. roles and expiry"
    )


TRACE_ID = r"^[0-9a-f]{32}$"
SPAN_ID = r"^[0-9a-f]{16}$"
UNIX_NANOS = r"^[0-9]{1,20}$"


class OtlpAttribute(_Open):
    key: str = Field(description="The attribute's name, e.g. gen_ai.request.model")
    value: dict[str, Any] = Field(
        description="Its OTLP/JSON AnyValue as sent: stringValue, boolValue, intValue (a "
        "64-bit integer, always as a decimal string), doubleValue (a number; NaN, infinities "
        "and integral values beyond 2^53 as strings, as the protobuf JSON mapping allows), "
        "arrayValue, kvlistValue, bytesValue (base64); message content sealed per data subject "
        "(see personaldata) unless the chain keeps it in clear"
    )


class OtlpStatus(_Open):
    code: int | None = Field(default=None, description="0 unset, 1 ok, 2 error")
    message: str | None = Field(default=None, description="The status message, if any")


class OtlpResource(_Open):
    attributes: list[OtlpAttribute] = Field(
        default_factory=list, description="Resource attributes as sent (service.name, ...)"
    )


class OtlpScope(_Open):
    name: str | None = Field(default=None, description="The instrumentation scope's name")
    version: str | None = Field(default=None, description="The instrumentation scope's version")


class GenAIInvocation(_Open):
    """One OpenTelemetry span with GenAI attributes (a chat, an agent invocation, a tool call),
    as received on the OTLP traces route: the span in OTLP/JSON form with its resource and
    instrumentation scope. ``id`` is trace id + "-" + span id (a re-export is a replay),
    ``source`` is "otlp:" + the resource's service.name, ``subject`` the trace id, ``time`` the
    span's start. The read model makes each agent invocation a decision (docs/sending.md)."""

    traceId: str = Field(pattern=TRACE_ID, description="The trace id, 32 lower-case hex digits")
    spanId: str = Field(pattern=SPAN_ID, description="The span id, 16 lower-case hex digits")
    parentSpanId: str | None = Field(
        default=None, pattern=SPAN_ID, description="The parent span's id; absent at a root"
    )
    name: str = Field(description="The span name, e.g. 'chat gpt-4o' or 'execute_tool search'")
    kind: int | None = Field(default=None, description="The span kind, as the OTLP enum number")
    startTimeUnixNano: str = Field(
        pattern=UNIX_NANOS, description="Start, nanoseconds since the Unix epoch (decimal text)"
    )
    endTimeUnixNano: str = Field(
        pattern=UNIX_NANOS, description="End, nanoseconds since the Unix epoch (decimal text)"
    )
    attributes: list[OtlpAttribute] = Field(
        description="Every span attribute verbatim (gen_ai.operation.name, gen_ai.request.model, "
        "gen_ai.usage.input_tokens, gen_ai.tool.name, ...)"
    )
    status: OtlpStatus | None = Field(default=None, description="The span status")
    events: list[dict[str, Any]] | None = Field(
        default=None, description="Span events as sent (timeUnixNano, name, attributes)"
    )
    links: list[dict[str, Any]] | None = Field(default=None, description="Span links as sent")
    resource: OtlpResource = Field(description="The resource that emitted the span")
    scope: OtlpScope | None = Field(default=None, description="The instrumentation scope")


SEQUENCE = r"^[0-9]{1,20}$"


class ProducerHeartbeat(_Open):
    """Sent by a producer that declares ``heartbeatinterval`` when it has been idle that many
    seconds. It carries its own ``sequence``: a lost heartbeat is a gap like any lost event
    (docs/completeness.md)."""


class ProducerClosed(_Open):
    """The last event of a producer's ``source``: after it the source is complete up to
    ``last_sequence`` and is never taken to be silent (docs/completeness.md)."""

    last_sequence: str = Field(
        pattern=SEQUENCE,
        description="This event's own sequence, the last of the source (20 zero-padded "
        "decimal digits, e.g. 00000000000000000042)",
    )


EVENT_DATA_MODELS: dict[str, type[BaseModel]] = {
    DECISION_RECORDED: DecisionRecorded,
    DECISION_REVIEWED: DecisionReviewed,
    DECISION_OVERRIDDEN: DecisionOverridden,
    OUTCOME_OBSERVED: OutcomeObserved,
    DECISION_CONTESTED: DecisionContested,
    MODEL_DEPLOYED: ModelDeployed,
    RECORDS_ACCESSED: RecordsAccessed,
    ADMIN_ACTION_RECORDED: AdminActionRecorded,
    GENAI_INVOCATION: GenAIInvocation,
    PRODUCER_HEARTBEAT: ProducerHeartbeat,
    PRODUCER_CLOSED: ProducerClosed,
}
# Event types whose subject is a decision id and that the read model projects.
DECISION_EVENT_TYPES = frozenset(
    (
        DECISION_RECORDED,
        DECISION_REVIEWED,
        DECISION_OVERRIDDEN,
        OUTCOME_OBSERVED,
        DECISION_CONTESTED,
    )
)


def check_event_data(event: dict[str, Any], *, pointer: str) -> None:
    """Reject a known event type whose ``data`` does not match its schema; others pass as is.

    ``event`` is the already parsed CloudEvent; ``pointer`` is where it sits in the request body
    ("" for one event, "/3" for the fourth of a batch), so the problem names the exact field.
    """
    event_type = event.get("type")
    if not isinstance(event_type, str):
        return
    validator = _VALIDATORS.get(event_type)
    if validator is None:
        return
    if event_type in DECISION_EVENT_TYPES and not event.get("subject"):
        raise InvalidInput(
            f"a {event_type} event needs the decision id in subject", pointer=f"{pointer}/subject"
        )
    if "data" not in event:
        raise InvalidInput(
            f"a {event_type} event needs JSON data (see {schema_id(event_type)})",
            pointer=f"{pointer}/data",
        )
    data = event["data"]
    if validator.is_valid(data):
        return
    try:
        _ADAPTERS[event_type].validate_python(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        parts, message = [str(part) for part in first["loc"]], first["msg"]
    else:  # the model accepts what its own schema refuses: not seen, but say what is known
        refusal = next(iter(validator.iter_errors(data)))
        parts, message = [str(part) for part in refusal.instance_path], refusal.message
    location = "".join("/" + _escape(part) for part in parts)
    raise InvalidInput(
        f"data{location.replace('/', '.')}: {message} (schema {schema_id(event_type)})",
        pointer=f"{pointer}/data{location}",
    )


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def schema_id(event_type: str) -> str:
    return f"{SCHEMA_ID_BASE}{event_type}.json"


def schema_document(event_type: str) -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of one event type's ``data``."""
    model = EVENT_DATA_MODELS[event_type]
    document = model.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id(event_type),
        "x-cloudevents-type": event_type,
        **document,
    }


def schema_file_name(event_type: str) -> str:
    return f"{event_type}.json"


def render_schema(event_type: str) -> bytes:
    return (
        orjson.dumps(schema_document(event_type), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        + b"\n"
    )


SCHEMA_DIR = Path(__file__).resolve().parent / "event_schemas"

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(model) for name, model in EVENT_DATA_MODELS.items()
}
_VALIDATORS: dict[str, jsonschema_rs.Validator] = {
    event_type: jsonschema_rs.validator_for(schema_document(event_type))
    for event_type in EVENT_DATA_MODELS
}


def write_schemas(folder: Path = SCHEMA_DIR) -> None:
    folder.mkdir(exist_ok=True)
    for event_type in EVENT_DATA_MODELS:
        (folder / schema_file_name(event_type)).write_bytes(render_schema(event_type))


if __name__ == "__main__":
    write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR)
