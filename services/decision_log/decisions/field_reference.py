"""The field reference of every event type (docs/events.md), generated from the data models.

    python -m decision_log.decisions.field_reference docs/events.md

A test keeps the committed page equal to this output, so the reference cannot drift.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel

from decision_log.decisions.event_types import EVENT_DATA_MODELS, schema_id

INTRO = """# Event types and their fields

<!-- Generated: python -m decision_log.decisions.field_reference docs/events.md -->

Every event is a CloudEvents 1.0 event. The `type` names one of the types below; `subject` is
the **decision id** for every `decision.*` and `outcome.*` type (the read model groups a
decision's events by it); `dataschema` may be set to the schema's `$id`. The schemas are
published at `GET /v1/schemas/{type}` (JSON Schema draft 2020-12) and committed under
`services/decision_log/decisions/event_schemas/`.

Events of these types are validated before they are appended: invalid `data` is refused with a
`400` problem whose `pointer` names the field (`/data/model/version`, or `/3/data/...` for the
fourth event of a batch). Members not listed are kept as sent and ignored by the read model, so
producers may add their own. Events of other types are appended as they are, and listed in a
decision's timeline with `known: false`. A breaking change to a type gets a new `.v2` name.

The text members the read model keeps (names, versions, decision and outcome values, the
data-subject reference) are held to the lengths given below, which its indexes can hold. A value
the read model still cannot hold (a NUL character, or a value longer than that from before the
limit) is kept in the log exactly as sent, and the decision's summary shows that field as null
and names it in `unprojectable`; the events in the decision's timeline show the value recorded.

Personal data: mark personal fields with the `personaldata` extension attribute and name the
data subject in `datasubject` (see [personal-data.md](personal-data.md)); the log keeps only the
subject's keyed-HMAC pseudonym, which the read model indexes as `data_subject_ref`.
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(arg) for arg in args if arg is not type(None)]
        return " or ".join(names)
    if origin is Literal:
        return " \\| ".join(f"`{arg}`" for arg in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"object of {_type_name(args[1])}"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return {str: "string", float: "number", int: "integer", bool: "boolean"}.get(
        annotation, str(annotation)
    )


def _nested(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested(arg)
        if found is not None:
            return found
    return None


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        required = "yes" if field.is_required() else ""
        kind = _type_name(field.annotation)
        for constraint in field.metadata:
            if isinstance(constraint, annotated_types.MaxLen):
                kind += f", at most {constraint.max_length} characters"
        rows.append(f"| `{path}` | {kind} | {required} | {field.description} |")
        inner = _nested(field.annotation)
        if inner is not None:
            marker = "[]." if typing.get_origin(field.annotation) is list else "."
            if typing.get_origin(field.annotation) in (typing.Union, types.UnionType):
                marker = (
                    "[]."
                    if any(typing.get_origin(a) is list for a in typing.get_args(field.annotation))
                    else "."
                )
            rows.extend(_rows(inner, path + marker))
    return rows


def render() -> str:
    parts = [INTRO]
    for event_type, model in EVENT_DATA_MODELS.items():
        parts.append(f"\n## `{event_type}`\n")
        parts.append(f"{(model.__doc__ or '').strip()}\n")
        parts.append(f"Schema: `{schema_id(event_type)}`\n")
        parts.append("| field of `data` | type | required | meaning |")
        parts.append("| --- | --- | --- | --- |")
        parts.extend(_rows(model, ""))
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        sys.stdout.write(text)
