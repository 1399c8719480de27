"""Administrative actions are recorded like reads (ISO/IEC 27001 A.8.15).

Each change to who may do what (keys), what exists (tenants, chains), who is trusted
(witnesses) and what is kept (retention, holds, erasure) calls ``note`` in the transaction that
makes the change, so the change never commits without its record. The record waits in
``admin_actions_pending`` until ``decisions.admin_records`` appends it to the tenant's
``access-log`` chain as a ``dev.audit-trail.admin-action.recorded.v1`` event; an API request
waits for that before it answers, the command line leaves it to the running service.

Records never hold a secret: a key's id, roles, chains and expiry, never the key.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:  # keys.service records its actions through this module
    from decision_log.keys.service import Principal


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key, or someone on the command line of a host with database access."""

    via: str
    key_id: str | None = None
    roles: tuple[str, ...] | None = None
    operator: str | None = None

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"via": self.via}
        if self.key_id is not None:
            data["key_id"] = self.key_id
        if self.roles is not None:
            data["roles"] = list(self.roles)
        if self.operator is not None:
            data["operator"] = self.operator
        return data


def api_actor(principal: Principal) -> Actor:
    return Actor(via="api", key_id=principal.key_id, roles=tuple(sorted(principal.roles)))


def command_line_actor() -> Actor:
    """The operating-system user and host that ran the command: the database's credentials
    say only that someone who holds them acted, so this is what there is to name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry
        user = "unknown user"
    return Actor(via="command line", operator=f"{user}@{socket.gethostname()}")


def actor_of(caller: Principal | None) -> Actor:
    """The API key that asked, or the command line (services called with no caller)."""
    return command_line_actor() if caller is None else api_actor(caller)


async def note(
    connection: AsyncConnection,
    *,
    tenant_id: int | None,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    at: datetime,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> None:
    """Record an action in the current transaction; ``tenant_id`` None records it for every
    tenant (a witness trusted or no longer trusted concerns each tenant's evidence)."""
    data: dict[str, Any] = {"actor": actor.as_data(), "action": action, "target": target}
    if reason is not None:
        data["reason"] = reason
    if changes is not None:
        data["changes"] = changes
    tenants = (
        [tenant_id]
        if tenant_id is not None
        else list((await connection.execute(text("SELECT id FROM tenants ORDER BY id"))).scalars())
    )
    if not tenants:
        return
    await connection.execute(
        text(
            "INSERT INTO admin_actions_pending (id, tenant_id, recorded_at, data) "
            "VALUES (:id, :tenant_id, :at, CAST(:data AS jsonb))"
        ),
        [
            {"id": uuid.uuid4(), "tenant_id": tenant, "at": at, "data": orjson.dumps(data).decode()}
            for tenant in tenants
        ],
    )
