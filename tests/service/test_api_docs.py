"""The decision_log's /docs works with no internet: Swagger UI from the package's own files."""

from __future__ import annotations

import httpx

from tests.api_docs import assert_docs_are_served_offline


async def test_the_docs_load_only_the_services_own_files(client: httpx.AsyncClient) -> None:
    await assert_docs_are_served_offline(client, "audit-trail decision_log")
