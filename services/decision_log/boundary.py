"""The shapes of what requests may carry, stated once so that FastAPI checks them before any
use and the OpenAPI document says them: slugs and ids by pattern, indexes and sizes within
PostgreSQL's bigint, text within what its indexes hold, times within years 1 to 9999 in UTC.

The request guard (``http_edge.guard``) has already refused NULs and bytes that are not UTF-8;
what is left here is length, range and form. The limits themselves live in ``limits``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from decision_log.limits import MAX_BIGINT, MAX_INDEXED_TEXT_CHARS, MAX_SUBJECT_CHARS, MAX_YEAR_UTC

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
# RFC 3339 date-time within the years the log stores: not year 0000, and not a first or last
# day of the calendar with an offset that would leave it once in UTC. A slightly stricter rule
# than "years 1 to 9999 in UTC", which a pattern states exactly, so that the published schemas
# say precisely what is accepted.
TIME_PATTERN = (
    r"^(?!0000-)(?!0001-01-01[Tt][0-9:.]+\+(?!00:00$))(?!9999-12-31[Tt][0-9:.]+-(?!00:00$))"
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
_TIME = re.compile(TIME_PATTERN)
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
EXPORT_ID_PATTERN = r"^exp_[A-Za-z0-9_-]{16}$"
SLUG_HELP = "A lowercase slug: a-z, 0-9 and '-', 1 to 64 characters"


def _within_stored_years(moment: datetime) -> datetime:
    """Aware, and within years 1 to 9999 once in UTC (what PostgreSQL and Python both hold)."""
    if moment.tzinfo is None:
        raise ValueError("needs a time zone (RFC 3339), e.g. Z or +01:00")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"must fall within the years 1 to {MAX_YEAR_UTC} in UTC") from None
    if utc.year > MAX_YEAR_UTC:
        raise ValueError(f"must fall within the years 1 to {MAX_YEAR_UTC} in UTC")
    return moment


def _rfc3339_text(value: Any) -> Any:
    """A time arrives as RFC 3339 text matching ``TIME_PATTERN``: a bare number is not taken
    for a Unix time, nor a date alone for midnight."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with a zone, within the years 0001 to 9999")
    return value


# An RFC 3339 time with a zone, within the years the log stores.
StoredTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_within_stored_years),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIME_PATTERN}),
]


def _json_number(value: Any) -> Any:
    """An integer member takes a JSON number (600 or 600.0, as JSON Schema's "integer" does),
    never text or a boolean."""
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


# A JSON integer; bounds come from Field(ge=..., le=...) where it is used.
JsonInt = Annotated[int, BeforeValidator(_json_number)]


def _without_null(schema: dict[str, Any]) -> None:
    """Optional members are documented as what they are when given: never null."""
    for member in schema.get("properties", {}).values():
        choices = member.get("anyOf")
        if choices and {"type": "null"} in choices:
            kept = [choice for choice in choices if choice != {"type": "null"}]
            del member["anyOf"]
            if len(kept) == 1:
                member.update(kept[0])
            else:
                member["anyOf"] = kept
        if member.get("default", ...) is None:
            del member["default"]


def body_schema(**rules: Any) -> ConfigDict:
    """A request body's config whose JSON Schema also states ``rules`` (``oneOf`` and the like):
    the cross-member rules a model's fields cannot say."""

    def extra(schema: dict[str, Any]) -> None:
        _without_null(schema)
        schema.update(rules)

    return ConfigDict(extra="forbid", json_schema_extra=extra)


class RequestBody(BaseModel):
    """A request body: unknown members are refused, and so is an explicit null (an optional
    member is left out, not sent as null), so the published schema is exactly what is taken."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_without_null)

    @model_validator(mode="before")
    @classmethod
    def _no_null_members(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                if value is None:
                    raise ValueError(f"{name} must not be null; leave it out instead")
        return data


ChainSlug = Annotated[
    str,
    Path(
        pattern=SLUG_PATTERN,
        min_length=1,
        max_length=64,
        description=SLUG_HELP,
        examples=["decisions"],
    ),
]
TenantSlug = Annotated[
    str, Path(pattern=SLUG_PATTERN, min_length=1, max_length=64, description=SLUG_HELP)
]
ChainFilter = Annotated[
    str | None,
    Query(pattern=SLUG_PATTERN, min_length=1, max_length=64, description="One chain (AI system)"),
]
KeyId = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The key's public id")]
ExportId = Annotated[str, Path(pattern=EXPORT_ID_PATTERN, description="The export's id")]
DecisionId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_SUBJECT_CHARS, description="The decision id (subject)"),
]
EntryIndex = Annotated[int, Path(ge=0, le=MAX_BIGINT - 1, description="An entry's index")]
HoldId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]

# Query text that is compared with an indexed column of the read model.
IndexedText = Annotated[str | None, Query(min_length=1, max_length=MAX_INDEXED_TEXT_CHARS)]

# Body members.
SlugField = Annotated[str, Field(pattern=SLUG_PATTERN, min_length=1, max_length=64)]
BigIntField = Annotated[JsonInt, Field(ge=0, le=MAX_BIGINT)]
