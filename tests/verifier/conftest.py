"""A real decision_log (ASGI) and a real verifier (its own database, its own role), for tamper
tests: the verifier reads the log only over HTTP, with a registered witness key."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from audit_trail import admin
from decision_log.app import create_app as create_log_app
from decision_log.settings import Settings as LogSettings
from decision_log.signing import LogSigner
from decision_log.witnesses import service as witnesses
from fastapi import FastAPI
from ledger.keys import SigningKey, read_private_key, write_private_key
from ledger.note import CosignatureSigner, NoteSigner, NoteVerifier
from sqlalchemy.ext.asyncio import AsyncConnection
from verifier import migrations
from verifier.app import create_app
from verifier.log_client import ChainName
from verifier.service import ChainVerifier
from verifier.settings import Settings
from verifier.state import AppState

from tests.service.conftest import (  # noqa: F401  (fixtures)
    TenantKeys,
    app,
    client,
    make_tenant,
    settings,
    signer,
)
from tests.service.helpers import append, decision_event, wait_for_checkpoint

VERIFIER_NAME = "verifier.test/witness"


@pytest.fixture(scope="session")
def verifier_database_url(database_url: str) -> Iterator[str]:
    """A database of the verifier's own on the same server (as `audit-trail up` makes it)."""
    name = f"audit_trail_verifier_{secrets.token_hex(3)}"

    async def admin_statement(statement: str) -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin_statement(f'CREATE DATABASE "{name}"'))
    url = urlunsplit(urlsplit(database_url)._replace(path="/" + name))
    migrations.upgrade(url)
    yield url
    asyncio.run(admin_statement(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def verifier_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verifier-keys") / "verifier-ed25519.pem"
    write_private_key(path, SigningKey.generate())
    return path


@pytest.fixture(scope="session")
def cosigner(verifier_key_file: Path) -> CosignatureSigner:
    return CosignatureSigner(name=VERIFIER_NAME, key=read_private_key(verifier_key_file))


@pytest.fixture(scope="session")
async def witness_api_key(database_url: str, cosigner: CosignatureSigner) -> str:
    async def action(connection: AsyncConnection) -> str:
        _, api_key = await witnesses.register_witness(
            connection, verifier_key=cosigner.verifier_key
        )
        return api_key

    return await admin.in_transaction(database_url, action)


@pytest.fixture(scope="session")
def verifier_settings(
    verifier_database_url: str,
    verifier_key_file: Path,
    witness_api_key: str,
    signer: LogSigner,  # noqa: F811
) -> Settings:
    return Settings(
        database_url=verifier_database_url,
        key_file=verifier_key_file,
        log_url="http://decision-log",
        log_api_key=witness_api_key,
        log_verifier_key=signer.note_signer.verifier_key,
        name=VERIFIER_NAME,
        auth_cache_seconds=0.0,
    )


@pytest.fixture(scope="session")
async def verifier_app(
    verifier_settings: Settings,
    app: FastAPI,  # noqa: F811
) -> AsyncIterator[FastAPI]:
    application = create_app(
        verifier_settings, log_transport=httpx.ASGITransport(app=app), run_worker=False
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def verifier_state(verifier_app: FastAPI) -> AppState:
    state: AppState = verifier_app.state.verifier
    return state


@pytest.fixture
def verifier(verifier_state: AppState) -> ChainVerifier:
    return verifier_state.verifier


@pytest.fixture
async def verifier_client(verifier_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=verifier_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://verifier") as http:
        yield http


@dataclass
class Followed:
    """A tenant's chain with entries the verifier has checked and cosigned."""

    keys: TenantKeys
    name: ChainName
    size: int


async def append_and_checkpoint(
    http: httpx.AsyncClient, keys: TenantKeys, events: list[dict[str, Any]]
) -> int:
    """Append a batch (201) and wait for a checkpoint that covers it; the chain's new size."""
    response = await append(http, keys.producer, keys.chain, events, batch=True)
    assert response.status_code == 201, response.text
    size = int(response.json()["receipts"][-1]["index"]) + 1
    await wait_for_checkpoint(http, keys.auditor, keys.chain, size=size)
    return size


async def grow(http: httpx.AsyncClient, keys: TenantKeys, count: int) -> int:
    return await append_and_checkpoint(http, keys, [decision_event() for _ in range(count)])


@pytest.fixture
async def followed(
    client: httpx.AsyncClient,  # noqa: F811
    database_url: str,
    signer: LogSigner,  # noqa: F811
    verifier: ChainVerifier,
) -> Followed:
    """20 entries verified and cosigned, then 20 more that the verifier has not seen yet."""
    keys = await make_tenant(database_url, signer)
    name = ChainName(keys.tenant, keys.chain)
    size = await grow(client, keys, 20)
    state = await verifier.verify(name)
    assert state.verified_size == 20 and state.halted_by is None
    size = await grow(client, keys, 20)
    return Followed(keys=keys, name=name, size=size)


@pytest.fixture(scope="session")
async def exporting_app(
    settings: LogSettings,  # noqa: F811
    verifier_app: FastAPI,
) -> AsyncIterator[FastAPI]:
    """A decision_log that asks the verifier (over ASGI) to verify and attest when it exports."""
    application = create_log_app(
        settings.model_copy(update={"verifier_url": "http://127.0.0.1:8001"}),
        verifier_transport=httpx.ASGITransport(app=verifier_app),
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def exporter(exporting_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=exporting_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://decision-log") as http:
        yield http


@pytest.fixture
def log_vkey(settings: LogSettings) -> NoteVerifier:  # noqa: F811
    key = read_private_key(settings.log_key_file)
    return NoteSigner(name=settings.log_origin, key=key).verifier


COSIGNED = 40


@dataclass
class Cosigned:
    """A chain of 40 entries, cosigned by the verifier at sizes 20 and 40."""

    keys: TenantKeys
    name: ChainName
    database_url: str
    signer: LogSigner
    client: httpx.AsyncClient


@pytest.fixture
async def cosigned(
    client: httpx.AsyncClient,  # noqa: F811
    database_url: str,
    signer: LogSigner,  # noqa: F811
    verifier: ChainVerifier,
) -> Cosigned:
    keys = await make_tenant(database_url, signer)
    name = ChainName(keys.tenant, keys.chain)
    for size in (20, COSIGNED):
        await grow(client, keys, 20)
        state = await verifier.verify(name)
        assert state.verified_size == size and state.halted_by is None
    return Cosigned(keys=keys, name=name, database_url=database_url, signer=signer, client=client)
