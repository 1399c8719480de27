"""Operator actions on the database: tenants, keys, chains, and the demo set-up of ``up``.

These call the same service functions as the admin API, over a connection of their own.
"""

from __future__ import annotations

import json
import os
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


def ensure_log_key(path: Path) -> SigningKey:
    """Load the log's signing key, creating it (mode 0600) on first start."""
    if not path.exists():
        write_private_key(path, SigningKey.generate())
    return read_private_key(path)


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
