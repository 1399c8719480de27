"""A decision's evidence carries the verifier's view of the chain when a verifier is configured,
and says so plainly when it does not answer."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from decision_log.app import create_app
from decision_log.settings import Settings

from tests.decisions.helpers import projected, recorded
from tests.service.conftest import TenantKeys
from tests.service.helpers import append, headers


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there once the probe is closed


@pytest.fixture
async def client_with_absent_verifier(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"verifier_url": f"http://127.0.0.1:{closed_port()}"})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
            yield client


async def test_evidence_reports_a_verifier_that_does_not_answer(
    client: httpx.AsyncClient,
    client_with_absent_verifier: httpx.AsyncClient,
    tenant: TenantKeys,
    database_url: str,
) -> None:
    await append(client, tenant.producer, tenant.chain, recorded("loan-9"))
    await projected(database_url)
    path = f"/v1/chains/{tenant.chain}/decisions/loan-9"
    without = (await client.get(path, headers=headers(tenant.auditor))).json()
    assert without["evidence"]["verifier"] is None
    with_absent = await client_with_absent_verifier.get(path, headers=headers(tenant.auditor))
    assert with_absent.status_code == 200
    verifier = with_absent.json()["evidence"]["verifier"]
    assert verifier["available"] is False and verifier["attestation"] is None
    assert "no answer" in verifier["reason"]
