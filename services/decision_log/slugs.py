"""Tenant and chain names: lowercase slugs, as in ``acme/credit-scoring``."""

from __future__ import annotations

import re

from decision_log.problems import InvalidInput

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def check_slug(value: str, *, field: str) -> str:
    if not SLUG.fullmatch(value):
        raise InvalidInput(
            f"{field} must be a lowercase slug (a-z, 0-9, '-', 1 to 64 characters)",
            pointer=f"/{field}",
        )
    return value
