"""The verifier's /docs works with no internet: Swagger UI from the package's own files."""

from __future__ import annotations

import httpx

from tests.api_docs import assert_docs_are_served_offline


async def test_the_docs_load_only_the_services_own_files(
    verifier_client: httpx.AsyncClient,
) -> None:
    await assert_docs_are_served_offline(verifier_client, "audit-trail verifier")
