"""Operator actions on the database: tenants, keys, chains, and the demo set-up of ``up``.

These call the same service functions as the admin API, over a connection of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from decision_log.chains import service as chains
from decision_log.db import create_engine
from decision_log.keys import service as keys
from decision_log.keys.schemas import KeyCreate, KeyCreated
from decision_log.problems import NotFound
from decision_log.signing import LogSigner
from decision_log.tenants import repository as tenant_rows
from decision_log.tenants import service as tenants
from decision_log.witnesses import repository as witness_rows
from decision_log.witnesses import service as witnesses
from ledger.keys import SigningKey, read_private_key, write_private_key
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

DEMO_TENANT = "demo"
DEMO_CHAIN = "decisions"


def db_role() -> str | None:
    return os.environ.get("AUDIT_TRAIL_DB_ROLE", "audit_trail_writer") or None


async def in_transaction(database_url: str, action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    engine = create_engine(database_url, role=db_role(), pool_size=1)
    try:
        async with engine.begin() as connection:
            return await action(connection)
    finally:
        await engine.dispose()


def ensure_key(path: Path) -> SigningKey:
    """Load an Ed25519 key file, creating it (mode 0600) on first use."""
    if not path.exists():
        write_private_key(path, SigningKey.generate())
    return read_private_key(path)


def ensure_secret(path: Path) -> str:
    """A random token kept in ``path`` (mode 0600, created on first use)."""
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def ensure_witness(database_url: str, *, verifier_key: str, credentials_file: Path) -> str:
    """The witness API key of the local verifier: registered (and written) on first start.

    If the credentials file was lost, the registered witness gets a new key.
    """
    if credentials_file.exists():
        stored: str = json.loads(credentials_file.read_text())["api_key"]
        return stored

    async def action(connection: AsyncConnection) -> str:
        existing = await witness_rows.witness_by_name(
            connection, name=verifier_key.partition("+")[0]
        )
        if existing is None:
            _, api_key = await witnesses.register_witness(
                connection, verifier_key=verifier_key, label="audit-trail up"
            )
            return api_key
        return await witnesses.add_witness_key(
            connection, witness_id=int(existing.id), label="audit-trail up"
        )

    api_key = asyncio.run(in_transaction(database_url, action))
    write_credentials(credentials_file, {"verifier_key": verifier_key, "api_key": api_key})
    return api_key


async def tenant_id(connection: AsyncConnection, slug: str) -> int:
    found = await tenant_rows.tenant_id_by_slug(connection, slug=slug)
    if found is None:
        raise NotFound(f"no tenant {slug!r}")
    return found


async def create_demo(
    connection: AsyncConnection, *, signer: LogSigner, api_url: str
) -> dict[str, Any]:
    """The demo tenant, chain and one key per role, as written to credentials.json."""
    demo_id = await tenants.create_tenant(connection, slug=DEMO_TENANT)
    await chains.create_chain(
        connection,
        signer=signer,
        tenant_id=demo_id,
        tenant=DEMO_TENANT,
        slug=DEMO_CHAIN,
        description="Demo chain created by audit-trail up",
    )
    created: dict[str, KeyCreated] = {}
    for role in ("admin", "producer", "auditor"):
        created[role] = await keys.create_key(
            connection,
            tenant_id=demo_id,
            request=KeyCreate.model_validate({"roles": [role], "label": f"demo {role}"}),
        )
    return {
        "api_url": api_url,
        "tenant": DEMO_TENANT,
        "chain": DEMO_CHAIN,
        "keys": {role: key.api_key for role, key in created.items()},
    }


def write_credentials(path: Path, credentials: dict[str, Any]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials, handle, indent=2)
        handle.write("\n")
