"""The log never hands a caller's API key to the verifier: every call it makes on an auditor's
behalf carries a token the log signs for that verifier, that chain and that purpose. And the
verifier's on-demand work is bounded per caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from decision_log.app import create_app as create_log_app
from decision_log.settings import Settings as LogSettings
from decision_log.signing import LogSigner
from decision_log.verifier_client import VerifierClient
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import append, decision_event, headers, wait_for_checkpoint


class HeaderRecorder:
    """The verifier app, noting the Authorization header of every request it receives."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"authorization":
                    self.seen.append(value.decode())
        await self.app(scope, receive, send)


@pytest.fixture
async def recorded(
    settings: LogSettings, verifier_app: FastAPI
) -> AsyncIterator[tuple[httpx.AsyncClient, HeaderRecorder]]:
    recorder = HeaderRecorder(verifier_app)
    app = create_log_app(
        settings.model_copy(update={"verifier_url": "http://127.0.0.1:8001"}),
        verifier_transport=httpx.ASGITransport(app=recorder),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
            yield client, recorder


async def test_the_verifier_sees_no_tenant_key(
    recorded: tuple[httpx.AsyncClient, HeaderRecorder], database_url: str, signer: LogSigner
) -> None:
    client, recorder = recorded
    keys: TenantKeys = await make_tenant(database_url, signer)
    event = decision_event()
    assert (await append(client, keys.producer, keys.chain, event)).status_code == 201
    await wait_for_checkpoint(client, keys.auditor, keys.chain, size=1)
    from tests.decisions.helpers import projected

    await projected(database_url)
    view = await client.get(
        f"/v1/chains/{keys.chain}/decisions/{event['subject']}", headers=headers(keys.auditor)
    )
    assert view.status_code == 200, view.text
    assert view.json()["evidence"]["verifier"]["available"] is True
    exported = await client.post(
        f"/v1/chains/{keys.chain}/exports", json={"kind": "range"}, headers=headers(keys.auditor)
    )
    assert exported.status_code in (201, 202, 409), exported.text
    assert recorder.seen, "the log asked the verifier nothing"
    for authorization in recorder.seen:
        for key in (keys.admin, keys.producer, keys.auditor):
            assert key not in authorization
        assert authorization.startswith("Bearer at1.")


async def test_a_token_is_good_for_its_chain_and_scope_only(
    verifier_client: httpx.AsyncClient, database_url: str, signer: LogSigner
) -> None:
    keys = await make_tenant(database_url, signer)
    other = await make_tenant(database_url, signer)
    keys_answer = (await verifier_client.get("/v1/keys")).json()
    client = VerifierClient(
        http=httpx.AsyncClient(), base_url="http://127.0.0.1:8001", signer=signer
    )
    client._audience = keys_answer["name"]
    status_token = await client._token(tenant=keys.tenant, chain=keys.chain, scope="status")
    assert isinstance(status_token, str)
    bearer = {"Authorization": f"Bearer {status_token}"}
    assert (
        await verifier_client.get(f"/v1/chains/{keys.chain}", headers=bearer)
    ).status_code == 200
    refused = await verifier_client.post(f"/v1/chains/{keys.chain}/verify", headers=bearer)
    assert refused.status_code == 403  # a status token may not make the verifier work
    other_chain = await verifier_client.get(f"/v1/chains/{other.chain}", headers=bearer)
    assert other_chain.status_code == 200 or other_chain.status_code == 404
    # The token names one tenant's chain: another tenant's chain of the same name is not it.
    assert (await verifier_client.get("/v1/chains", headers=bearer)).json()["chains"][0][
        "tenant"
    ] == keys.tenant
    foreign = {"Authorization": "Bearer " + status_token.replace(".", ".x", 1)}
    assert (
        await verifier_client.get(f"/v1/chains/{keys.chain}", headers=foreign)
    ).status_code == 401


@pytest.mark.parametrize(
    "url", ["http://verifier.example.com", "http://10.0.0.5:8001", "ftp://127.0.0.1"]
)
def test_a_verifier_over_a_network_needs_https(url: str, signer: LogSigner) -> None:
    with pytest.raises(ValueError, match="https"):
        VerifierClient(http=httpx.AsyncClient(), base_url=url, signer=signer)


@pytest.mark.parametrize(
    "url", ["https://verifier.example.com", "http://127.0.0.1:8001", "http://localhost:8001"]
)
def test_https_or_loopback_is_fine(url: str, signer: LogSigner) -> None:
    VerifierClient(http=httpx.AsyncClient(), base_url=url, signer=signer)


async def test_on_demand_verification_is_rate_limited_per_caller(
    verifier_client: httpx.AsyncClient, database_url: str, signer: LogSigner
) -> None:
    keys = await make_tenant(database_url, signer)
    answers: list[Any] = []
    for _ in range(12):
        answers.append(
            await verifier_client.post(
                f"/v1/chains/{keys.chain}/verify", headers=headers(keys.auditor)
            )
        )
    statuses = [answer.status_code for answer in answers]
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:], statuses
    limited = next(answer for answer in answers if answer.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    # Asking again and again stored one attestation, not one per request.
    listed = await verifier_client.get(
        f"/v1/chains/{keys.chain}/attestations", headers=headers(keys.auditor)
    )
    assert len(listed.json()["attestations"]) == 1
