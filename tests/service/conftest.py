"""Fixtures for the decision_log: settings, the app over ASGI, tenants with keys and a chain."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from audit_trail import admin
from decision_log.admin_actions import command_line_actor
from decision_log.app import create_app
from decision_log.chains import service as chains
from decision_log.keys import service as keys
from decision_log.keys.schemas import KeyCreate
from decision_log.settings import Settings
from decision_log.signing import LogSigner
from decision_log.tenants import service as tenants
from fastapi import FastAPI
from ledger.keys import read_private_key
from sqlalchemy.ext.asyncio import AsyncConnection

LOG_ORIGIN = "audit-trail.test/log"


@pytest.fixture(scope="session")
def settings(database_url: str, log_key_file: Path, privacy_files: dict[str, Path]) -> Settings:
    return Settings(
        database_url=database_url,
        log_key_file=log_key_file,
        kek_file=privacy_files["kek_file"],
        pseudonym_key_file=privacy_files["pseudonym_key_file"],
        log_origin=LOG_ORIGIN,
        checkpoint_interval_seconds=0.05,
    )


@pytest.fixture(scope="session")
def signer(log_key_file: Path) -> LogSigner:
    return LogSigner.create(key=read_private_key(log_key_file), origin=LOG_ORIGIN)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://decision-log") as http:
        yield http


@dataclass
class TenantKeys:
    tenant: str
    chain: str
    admin: str
    producer: str
    auditor: str

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def make_tenant(database_url: str, signer: LogSigner, *, chain: str = "credit") -> TenantKeys:
    slug = "t-" + secrets.token_hex(4)

    async def action(connection: AsyncConnection) -> TenantKeys:
        tenant_id = await tenants.create_tenant(connection, slug=slug)
        await chains.create_chain(
            connection,
            signer=signer,
            tenant_id=tenant_id,
            tenant=slug,
            slug=chain,
            recorded_as=command_line_actor(),
        )
        made = {}
        for role in ("admin", "producer", "auditor"):
            created = await keys.create_key(
                connection,
                tenant_id=tenant_id,
                request=KeyCreate(roles=[role]),  # type: ignore[list-item]
            )
            made[role] = created.api_key
        return TenantKeys(tenant=slug, chain=chain, **made)

    return await admin.in_transaction(database_url, action)


@pytest.fixture
async def tenant(database_url: str, signer: LogSigner) -> TenantKeys:
    return await make_tenant(database_url, signer)


@pytest.fixture(scope="session")
def live_url(settings: Settings) -> Iterator[str]:
    """The base URL of a decision_log served by a real uvicorn on a loopback port."""
    from tests.service.live import serve_in_thread

    yield from serve_in_thread(settings)
