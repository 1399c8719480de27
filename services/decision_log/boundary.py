"""The shapes of what requests may carry, stated once so that FastAPI checks them before any
use and the OpenAPI document says them: slugs and ids by pattern, indexes and sizes within
PostgreSQL's bigint, text within what its indexes hold, times within years 1 to 9999 in UTC.

The request guard (``http_edge.guard``) has already refused NULs and bytes that are not UTF-8;
what is left here is length, range and form. The limits themselves live in ``limits``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

from decision_log.limits import MAX_BIGINT, MAX_INDEXED_TEXT_CHARS, MAX_SUBJECT_CHARS, MAX_YEAR_UTC

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
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


# An RFC 3339 time with a zone, within the years the log stores.
StoredTime = Annotated[datetime, AfterValidator(_within_stored_years)]

ChainSlug = Annotated[
    str, Path(pattern=SLUG_PATTERN, min_length=1, max_length=64, description=SLUG_HELP)
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
BigIntField = Annotated[int, Field(ge=0, le=MAX_BIGINT)]
