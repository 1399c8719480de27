"""The decision read model as a pure fold over a chain's entries, in index order.

``project_entry`` takes the state of a decision (or None) and one entry and returns the new
state; ``fold_batch`` runs it over a batch of a chain's entries and adds their timeline and
model deployment rows. The projector feeds it entries from the database, the tests feed it
lists. Everything it reads comes from the entry itself (the event as recorded and the receive
time), so the read model is a function of the log alone and a rebuild yields exactly the same
rows.

Values no column can take. Entries are never removed, so an entry the read model cannot hold as
it is must not stop its chain: the fold projects what fits and says what did not.

- A text member of ``data`` with a NUL character (PostgreSQL text cannot hold U+0000), or longer
  than ``limits.MAX_INDEXED_TEXT_CHARS`` for a column an index covers (a btree index row holds
  about 2,700 bytes), becomes NULL in its column, and the column's name is listed in the row's
  ``unprojectable`` (a later event that sets the column to a value that fits takes it off).
- A ``time`` that cannot be read, or lies outside years ``limits.MIN_YEAR_UTC`` ..
  ``limits.MAX_YEAR_UTC`` once converted to UTC, is unprojectable as ``decided_at``, which then
  falls back to the receive time (as for an event without ``time``).
- An entry whose subject cannot be a decision id (longer than ``limits.MAX_SUBJECT_CHARS``, or
  holding a NUL) is left out of decisions and timelines, and so is a model.deployed entry whose
  model name or version no column can take; ``fold_batch`` returns their indexes, and the
  projector counts them in the chain's projection status (``unprojectable_entries``,
  ``last_unprojectable_idx``). The entry itself stays in the log, proven as any other.

The checks are a length comparison and a ``"\\x00" in value`` scan per text value, so the fold
costs about what it did without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from ledger import membership

from decision_log.decisions import genai, inference
from decision_log.decisions.event_types import (
    DECISION_CONTESTED,
    DECISION_EVENT_TYPES,
    DECISION_OVERRIDDEN,
    DECISION_RECORDED,
    DECISION_REVIEWED,
    GENAI_INVOCATION,
    MODEL_DEPLOYED,
    OUTCOME_OBSERVED,
)
from decision_log.events.cloudevents import DATA_SUBJECT
from decision_log.limits import (
    MAX_INDEXED_TEXT_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_YEAR_UTC,
    MIN_YEAR_UTC,
)

# Types whose decision is not their subject: model servers' inference events name it in other
# attributes (decisions/inference.py), and a GenAI span's decision follows from its ancestors
# (decisions/genai.py, folded apart since it needs the spans of the trace).
INFERENCE_TYPES = inference.INFERENCE_TYPES
PROJECTED_TYPES = DECISION_EVENT_TYPES | INFERENCE_TYPES


@dataclass(frozen=True, slots=True)
class ProjectedEntry:
    """What the fold needs of an entry: where it is, when it arrived, the event as recorded."""

    idx: int
    received_at: datetime
    event_type: str
    subject: str | None
    event: dict[str, Any] | None  # None for types the fold does not read


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One row of ``decisions``; field order is the table's column order."""

    chain_id: int
    decision_id: str
    tenant_id: int
    decided_at: datetime
    received_at: datetime
    decision_idx: int | None
    system_name: str | None
    deployment: str | None
    model_name: str | None
    model_version: str | None
    policy_id: str | None
    policy_version: str | None
    decision: str | None
    score: float | None
    data_subject_ref: str | None
    solely_automated: bool | None
    legal_or_similar_effect: bool | None
    reviewed: bool
    overridden: bool
    contested: bool
    current_decision: str | None
    outcome: str | None
    last_idx: int
    # GenAI decisions (decisions/genai.py): the agent, the model provider, the conversation.
    genai_agent: str | None
    genai_provider: str | None
    genai_conversation: str | None
    # The producer (CloudEvents source) of the event that recorded the decision.
    source: str | None
    # Columns whose value an event gave but no column could take (see the module docstring).
    unprojectable: tuple[str, ...]


DECISION_COLUMNS = tuple(column.name for column in fields(DecisionRow))
row_values = attrgetter(*DECISION_COLUMNS)
# A decision before its first entry: the fold's changes give it its identity and times.
_UNSEEN_FIELDS: dict[str, Any] = dict.fromkeys(DECISION_COLUMNS) | {
    "reviewed": False,
    "overridden": False,
    "contested": False,
    "unprojectable": (),
}
_UNSEEN = DecisionRow(**_UNSEEN_FIELDS)


def _rebuilt(row: DecisionRow, changes: dict[str, Any]) -> DecisionRow:
    """``dataclasses.replace`` without its per-field bookkeeping, about twice as fast."""
    values = row_values(row)
    pairs = zip(DECISION_COLUMNS, values, strict=True)
    return DecisionRow(*[changes.get(name, value) for name, value in pairs])


def parse_time(value: object) -> datetime | None:
    """A CloudEvents ``time`` (RFC 3339) as a datetime; None if absent, unreadable, or outside
    the years the log stores once converted to UTC (e.g. 9999-12-31T23:59:59-14:00)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    if MIN_YEAR_UTC < moment.year < MAX_YEAR_UTC:
        return moment  # an offset moves it by less than a day: no conversion can overflow
    try:
        year_utc = moment.astimezone(UTC).year
    except (OverflowError, ValueError):
        return None
    return moment if MIN_YEAR_UTC <= year_utc <= MAX_YEAR_UTC else None


def usable_decision_id(subject: str) -> bool:
    """Whether a subject can be a decision id: the key of decisions and timeline rows."""
    return len(subject) <= MAX_SUBJECT_CHARS and "\x00" not in subject


def member(data: object, *path: str) -> Any:
    """The value at ``path`` of nested objects, or None where a step is missing or not one."""
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _indexed_text(value: object, column: str, unprojectable: list[str]) -> str | None:
    """A text for a column an index covers; None, noted, if the column cannot take it."""
    if not isinstance(value, str):
        return None
    if len(value) > MAX_INDEXED_TEXT_CHARS or "\x00" in value:
        unprojectable.append(column)
        return None
    return value


def _plain_text(value: object, column: str, unprojectable: list[str]) -> str | None:
    """A text for a column no index covers: any length fits, a NUL does not."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        unprojectable.append(column)
        return None
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _decided_at(entry: ProjectedEntry, unprojectable: list[str]) -> datetime:
    """The event's time, else (absent, or noted as unprojectable) its receive time."""
    value = member(entry.event, "time")
    if value is None:
        return entry.received_at
    moment = parse_time(value)
    if moment is None:
        unprojectable.append("decided_at")
        return entry.received_at
    return moment


def decision_id_of(entry: ProjectedEntry) -> str | None:
    """The decision an entry names, usable or not, by the rule of ledger/membership.py; None
    for types about no one decision and for GenAI spans (decisions/genai.py)."""
    return membership.event_decision_id(entry.event_type, entry.subject, entry.event)


def timeline_subject(entry: ProjectedEntry) -> str | None:
    """The decision id an entry belongs to, if it belongs to one (unknown types included)
    and it can be a decision id."""
    decision_id = decision_id_of(entry)
    if decision_id is None:
        return None
    return decision_id if usable_decision_id(decision_id) else None


def project_entry(
    row: DecisionRow | None, entry: ProjectedEntry, *, chain_id: int, tenant_id: int
) -> DecisionRow | None:
    """The decision after ``entry``; unchanged (possibly None) for entries that do not touch it.

    Each entry makes one new row, built once: rebuilding a frozen row is most of the fold's cost.
    """
    if entry.event_type in INFERENCE_TYPES:
        return _project_inference(row, entry, chain_id=chain_id, tenant_id=tenant_id)
    subject = entry.subject
    if (
        entry.event_type not in DECISION_EVENT_TYPES
        or subject is None
        or not usable_decision_id(subject)
    ):
        return row
    data = member(entry.event, "data")
    changes: dict[str, Any] = {"last_idx": entry.idx}
    unprojectable: list[str] = []
    decided_at: datetime | None = None
    if row is None:
        row = _UNSEEN
        decided_at = _decided_at(entry, unprojectable)
        changes.update(
            chain_id=chain_id,
            decision_id=subject,
            tenant_id=tenant_id,
            decided_at=decided_at,
            received_at=entry.received_at,
        )
    if entry.event_type == DECISION_RECORDED:
        if row.decision_idx is not None:
            # A decision is recorded once; a second record is only in the timeline.
            return _rebuilt(row, changes)
        decision = _indexed_text(member(data, "output", "decision"), "decision", unprojectable)
        changes.update(
            decided_at=decided_at or _decided_at(entry, unprojectable),
            received_at=entry.received_at,
            decision_idx=entry.idx,
            source=_text(member(entry.event, "source")),
            system_name=_plain_text(member(data, "system", "name"), "system_name", unprojectable),
            deployment=_plain_text(
                member(data, "system", "deployment"), "deployment", unprojectable
            ),
            model_name=_indexed_text(member(data, "model", "name"), "model_name", unprojectable),
            model_version=_indexed_text(
                member(data, "model", "version"), "model_version", unprojectable
            ),
            policy_id=_plain_text(member(data, "policy", "id"), "policy_id", unprojectable),
            policy_version=_indexed_text(
                member(data, "policy", "version"), "policy_version", unprojectable
            ),
            decision=decision,
            score=_number(member(data, "output", "score")),
            # The log's pseudonym of the data subject, else the one the producer gave in data.
            data_subject_ref=_indexed_text(
                _text(member(entry.event, DATA_SUBJECT)) or member(data, "data_subject_ref"),
                "data_subject_ref",
                unprojectable,
            ),
            solely_automated=_flag(member(data, "solely_automated")),
            legal_or_similar_effect=_flag(member(data, "legal_or_similar_effect")),
        )
        # A review or override seen before the record (out of order producers) wins, also one
        # whose new decision could not be projected.
        if not row.current_decision and "current_decision" not in row.unprojectable:
            changes["current_decision"] = decision
            if "decision" in unprojectable:
                unprojectable.append("current_decision")
    elif entry.event_type in (DECISION_REVIEWED, DECISION_OVERRIDDEN):
        new_decision = _plain_text(member(data, "new_decision"), "current_decision", unprojectable)
        if new_decision or "current_decision" in unprojectable:
            changes["current_decision"] = new_decision
        changes["reviewed" if entry.event_type == DECISION_REVIEWED else "overridden"] = True
    elif entry.event_type == OUTCOME_OBSERVED:
        outcome = _plain_text(member(data, "outcome"), "outcome", unprojectable)
        if outcome or "outcome" in unprojectable:
            changes["outcome"] = outcome
    elif entry.event_type == DECISION_CONTESTED:
        changes["contested"] = True
    if unprojectable or row.unprojectable:
        # Columns this entry set are judged by it alone; the others keep their earlier note.
        kept = tuple(column for column in row.unprojectable if column not in changes)
        changes["unprojectable"] = kept + tuple(dict.fromkeys(unprojectable))
    return _rebuilt(row, changes)


def _project_inference(
    row: DecisionRow | None, entry: ProjectedEntry, *, chain_id: int, tenant_id: int
) -> DecisionRow | None:
    """An inference event of a model server (decisions/inference.py) into its decision: the
    request gives the time, the response the model and output, either the system."""
    decision_id = decision_id_of(entry)
    event = entry.event
    if decision_id is None or event is None or not usable_decision_id(decision_id):
        return row
    changes: dict[str, Any] = {"last_idx": entry.idx}
    unprojectable: list[str] = []
    is_request = entry.event_type in inference.REQUEST_TYPES
    if row is None:
        row = _UNSEEN
        changes.update(chain_id=chain_id, decision_id=decision_id, tenant_id=tenant_id)
    if is_request or row.decided_at is None:
        # The request's time is the decision's; a response seen first stands in for it.
        changes.update(decided_at=_decided_at(entry, unprojectable), received_at=entry.received_at)
    if row.source is None:
        changes["source"] = _text(event.get("source"))
    if row.system_name is None:
        changes["system_name"] = _plain_text(
            inference.system_name(event), "system_name", unprojectable
        )
        changes["deployment"] = _plain_text(
            inference.deployment(event), "deployment", unprojectable
        )
    if entry.event_type in inference.RESPONSE_TYPES:
        name, version = inference.response_model(event)
        output = inference.single_output(event)
        decision = None if output is None else _output_text(output)
        changes.update(
            model_name=_indexed_text(name, "model_name", unprojectable),
            model_version=_indexed_text(version, "model_version", unprojectable),
            decision=_indexed_text(decision, "decision", unprojectable),
            score=_number(output),
        )
        if not row.current_decision and "current_decision" not in row.unprojectable:
            changes["current_decision"] = changes["decision"]
    if unprojectable or row.unprojectable:
        kept = tuple(column for column in row.unprojectable if column not in changes)
        changes["unprojectable"] = kept + tuple(dict.fromkeys(unprojectable))
    return _rebuilt(row, changes)


def _output_text(output: str | int | float | bool) -> str:
    """A scalar output as the decision's text: JSON's spelling for booleans."""
    return ("true" if output else "false") if isinstance(output, bool) else str(output)


def deployed_model(entry: ProjectedEntry) -> tuple[str, str] | None:
    """(model name, version) of a model.deployed entry, as given (whether or not they fit)."""
    if entry.event_type != MODEL_DEPLOYED:
        return None
    data = member(entry.event, "data")
    name, version = _text(member(data, "model", "name")), _text(member(data, "model", "version"))
    if name is None or version is None:
        return None
    return name, version


def _fits_index(value: str) -> bool:
    return len(value) <= MAX_INDEXED_TEXT_CHARS and "\x00" not in value


def decisions_touched(entries: Iterable[ProjectedEntry]) -> set[str]:
    """The decision ids whose rows a batch of entries changes (to be read before the fold)."""
    touched = set()
    for entry in entries:
        if entry.event_type in PROJECTED_TYPES:
            decision_id = decision_id_of(entry)
            if decision_id is not None and usable_decision_id(decision_id):
                touched.add(decision_id)
    return touched


@dataclass(slots=True)
class ProjectedBatch:
    """What a batch of a chain's entries changes in the read model."""

    decisions: dict[str, DecisionRow | None]
    timeline: list[tuple[int, str, int, str]] = field(default_factory=list)
    deployments: list[tuple[int, str, str, int]] = field(default_factory=list)
    # Entries left out of the read model, since no column can take their key (module docstring).
    unprojectable: list[int] = field(default_factory=list)


def fold_batch(
    entries: Sequence[ProjectedEntry],
    decisions: dict[str, DecisionRow | None],
    *,
    chain_id: int,
    tenant_id: int,
) -> ProjectedBatch:
    """Fold a batch of a chain's entries, in index order, into the decisions it touches.

    ``decisions`` maps every id of ``decisions_touched(entries)`` to its row so far (None for
    one not seen yet); the rows after the batch are in the result's ``decisions``.
    """
    batch = ProjectedBatch(decisions=decisions)
    for entry in entries:
        if entry.event_type == GENAI_INVOCATION:
            continue  # folded with its trace (decisions/genai.py)
        subject = decision_id_of(entry)
        if subject is not None:
            if not usable_decision_id(subject):
                batch.unprojectable.append(entry.idx)
                continue
            batch.timeline.append((chain_id, subject, entry.idx, entry.event_type))
            if subject in decisions:
                decisions[subject] = project_entry(
                    decisions[subject], entry, chain_id=chain_id, tenant_id=tenant_id
                )
            continue
        model = deployed_model(entry)
        if model is None:
            continue
        if _fits_index(model[0]) and _fits_index(model[1]):
            batch.deployments.append((chain_id, model[0], model[1], entry.idx))
        else:
            batch.unprojectable.append(entry.idx)
    return batch


def project_genai(
    row: DecisionRow | None,
    spans: Sequence[genai.SpanNode],
    *,
    decision_id: str,
    chain_id: int,
    tenant_id: int,
) -> DecisionRow:
    """A GenAI decision's row from its spans (``genai.summary``); what other events set
    (reviews, overrides, outcomes, contests) is kept from ``row``."""
    found = genai.summary(spans)
    unprojectable: list[str] = []
    changes: dict[str, Any] = {
        "chain_id": chain_id,
        "decision_id": decision_id,
        "tenant_id": tenant_id,
        "decided_at": found.decided_at,
        "received_at": found.received_at,
        "decision_idx": None,
        "source": found.source,
        "system_name": _plain_text(found.system_name, "system_name", unprojectable),
        "deployment": _plain_text(found.deployment, "deployment", unprojectable),
        "model_name": _indexed_text(found.model_name, "model_name", unprojectable),
        "model_version": _indexed_text(found.model_version, "model_version", unprojectable),
        "genai_agent": _indexed_text(found.agent, "genai_agent", unprojectable),
        "genai_provider": _indexed_text(found.provider, "genai_provider", unprojectable),
        "genai_conversation": _indexed_text(
            found.conversation, "genai_conversation", unprojectable
        ),
        "last_idx": max(found.last_idx, row.last_idx if row is not None else -1),
    }
    base = row or _UNSEEN
    kept = tuple(column for column in base.unprojectable if column not in changes)
    changes["unprojectable"] = kept + tuple(dict.fromkeys(unprojectable))
    return _rebuilt(base, changes)


def fold_decision(
    entries: Sequence[ProjectedEntry], *, decision_id: str, chain_id: int, tenant_id: int
) -> DecisionRow | None:
    """One decision's row folded from its timeline alone, as the projector folds it over the
    whole chain: the events in index order, and a GenAI decision's spans as ``genai`` groups
    them (it is the same row, since a decision's spans decide its membership among themselves)."""
    row: DecisionRow | None = None
    nodes = []
    for entry in entries:
        if entry.event_type == GENAI_INVOCATION:
            node = (
                None
                if entry.event is None
                else genai.span_node(entry.idx, entry.received_at, entry.event)
            )
            if node is not None:
                nodes.append(node)
            continue
        row = project_entry(row, entry, chain_id=chain_id, tenant_id=tenant_id)
    if nodes:
        spans = genai.members(genai.fold_spans({}, nodes).nodes.values(), decision_id)
        if spans:
            row = project_genai(
                row, spans, decision_id=decision_id, chain_id=chain_id, tenant_id=tenant_id
            )
    return row
