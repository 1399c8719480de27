"""The decisions search form: the API's filters (``decisions.endpoints.search_decisions``) with
the same bounds, read from a browser's query string, where an unfilled field arrives empty."""

from __future__ import annotations

from typing import Annotated, Any

from ledger.canonical import MAX_SAFE_INTEGER
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import QueryParams

from decision_log.boundary import SLUG_PATTERN, StoredTime
from decision_log.console.pages import checked, printable
from decision_log.decisions.service import MAX_PAGE, SearchFilters
from decision_log.limits import MAX_INDEXED_TEXT_CHARS, MAX_SOURCE_CHARS
from decision_log.problems import InvalidInput

Text = Annotated[str | None, Field(min_length=1, max_length=MAX_INDEXED_TEXT_CHARS)]
Score = Annotated[
    float | None, Field(allow_inf_nan=False, ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)
]
PAGE_SIZE = 50


class SearchForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: Annotated[str | None, Field(pattern=SLUG_PATTERN, max_length=64)] = None
    model_name: Text = None
    model_version: Text = None
    policy_version: Text = None
    decision: Text = None
    data_subject_ref: Text = None
    score_min: Score = None
    score_max: Score = None
    decided_from: StoredTime | None = None
    decided_before: StoredTime | None = None
    reviewed: bool | None = None
    overridden: bool | None = None
    contested: bool | None = None
    agent: Text = None
    provider: Text = None
    conversation: Text = None
    tool: Text = None
    source: Annotated[str | None, Field(min_length=1, max_length=MAX_SOURCE_CHARS)] = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = PAGE_SIZE
    cursor: Annotated[str | None, Field(min_length=1, max_length=1000)] = None

    @model_validator(mode="before")
    @classmethod
    def _unfilled_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value != ""}
        return data

    def filters(self, **changes: Any) -> SearchFilters:
        return SearchFilters(**(self.model_dump() | changes))

    def query(self, **changes: Any) -> dict[str, str]:
        """The form as a query string's fields (for the next page's and the CSV's links)."""
        values = self.model_dump(exclude_none=True) | changes
        if values.get("limit") == PAGE_SIZE:
            del values["limit"]
        return {
            name: (
                value.isoformat()
                if hasattr(value, "isoformat")
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            for name, value in values.items()
            if value is not None
        }


def read_search_form(params: QueryParams) -> SearchForm:
    """The form's fields, each at most once and printable, checked as the API checks them."""
    fields: dict[str, str] = {}
    for name, value in params.multi_items():
        if name in fields:
            raise InvalidInput(f"{name} is given more than once", parameter=name)
        fields[name] = printable(value, name=name, max_length=2000)
    return checked(SearchForm, fields)
