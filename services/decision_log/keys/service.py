"""API keys: random, shown once, stored only as a SHA-256 hash, looked up by a public key id.

A key reads ``atk_<key_id>_<secret>``. The secret has 256 bits of entropy, so a plain SHA-256
(no slow password hash) is enough to make a stolen table useless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.keys import repository
from decision_log.keys.schemas import KeyCreate, KeyCreated, KeyInfo
from decision_log.problems import Conflict, Forbidden, InvalidInput, NotFound
from decision_log.slugs import check_slug

KEY_PREFIX = "atk_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant's key, its roles and the chains it is limited to (None: all)."""

    key_id: str
    tenant_id: int
    tenant: str
    roles: frozenset[str]
    chains: frozenset[str] | None
    expires_at: datetime | None

    def may_use_chain(self, chain: str) -> bool:
        return self.chains is None or chain in self.chains


@dataclass(frozen=True, slots=True)
class Witness:
    """A registered verifier: reads every chain's entries and checkpoints, posts cosignatures."""

    key_id: str
    witness_id: int
    name: str
    verifier_key: str
    expires_at: datetime | None


Caller = Principal | Witness


def split_api_key(api_key: str) -> tuple[str, str] | None:
    if not api_key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = api_key[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


def secret_hash(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def new_api_key() -> tuple[str, str]:
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def principal_from_row(row: Any) -> Caller:
    if row.witness_id is not None:
        return Witness(
            key_id=row.key_id,
            witness_id=int(row.witness_id),
            name=row.witness,
            verifier_key=row.witness_verifier_key,
            expires_at=row.expires_at,
        )
    return Principal(
        key_id=row.key_id,
        tenant_id=int(row.tenant_id),
        tenant=row.tenant,
        roles=frozenset(row.roles),
        chains=None if row.chains is None else frozenset(row.chains),
        expires_at=row.expires_at,
    )


def secret_matches(row: Any, api_key: str) -> bool:
    return hmac.compare_digest(bytes(row.secret_hash), secret_hash(api_key))


def key_info(row: Any) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        tenant=row.tenant,
        roles=list(row.roles),
        chains=None if row.chains is None else list(row.chains),
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def in_scope(caller: Principal | None, *, chains: list[str] | None) -> bool:
    """Whether a key limited to ``chains`` (None: every chain) is within what ``caller`` may
    manage: anything, for an admin key limited to no chain (or the operator, None); otherwise
    keys limited to some of the caller's own chains, never a key limited to none."""
    if caller is None or caller.chains is None:
        return True
    return chains is not None and set(chains) <= caller.chains


def _check_grant(caller: Principal | None, request: KeyCreate) -> None:
    """A key never grants more than it has: a chain-limited caller creates keys limited to a
    non-empty subset of its own chains, with roles it holds itself."""
    if caller is None or caller.chains is None:
        return
    if request.chains is None or not set(request.chains) <= caller.chains:
        raise Forbidden(
            "a key limited to chains may create keys only for a subset of its own chains: "
            f"{', '.join(sorted(caller.chains))}"
        )
    extra = set(request.roles) - caller.roles
    if extra:
        raise Forbidden(f"this key cannot grant roles it does not hold: {', '.join(sorted(extra))}")


async def create_key(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    request: KeyCreate,
    now: datetime | None = None,
    caller: Principal | None = None,
) -> KeyCreated:
    """Create a key; ``now``, when given, refuses an expiry that has already passed.
    ``caller``: the admin key asking (None for the operator's CLI)."""
    _check_grant(caller, request)
    if now is not None and request.expires_at is not None and request.expires_at <= now:
        raise InvalidInput("expires_at must be in the future", pointer="/expires_at")
    if request.chains is not None:
        for chain in request.chains:
            check_slug(chain, field="chains")
    key_id, api_key = new_api_key()
    await repository.insert_key(
        connection,
        key_id=key_id,
        tenant_id=tenant_id,
        secret_hash=secret_hash(api_key),
        roles=sorted(set(request.roles)),
        chains=None if request.chains is None else sorted(set(request.chains)),
        label=request.label,
        expires_at=request.expires_at,
    )
    row = await repository.key_by_id(connection, key_id=key_id)
    return KeyCreated(**key_info(row).model_dump(), api_key=api_key)


async def list_keys(
    connection: AsyncConnection, *, tenant_id: int, caller: Principal | None = None
) -> list[KeyInfo]:
    """The tenant's keys within the caller's scope (``in_scope``)."""
    return [
        key_info(row)
        for row in await repository.keys_of_tenant(connection, tenant_id=tenant_id)
        if in_scope(caller, chains=row.chains)
    ]


async def _managed_key(
    connection: AsyncConnection, *, tenant_id: int, key_id: str, caller: Principal | None
) -> None:
    """The key exists in the tenant and within the caller's scope; else 404, as for a key that
    does not exist (a chain-limited admin does not learn of keys beyond its chains)."""
    row = await repository.key_by_id(connection, key_id=key_id)
    if row is None or row.tenant_id != tenant_id or not in_scope(caller, chains=row.chains):
        raise NotFound(f"no key {key_id!r}")


async def revoke_key(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    key_id: str,
    now: datetime,
    caller: Principal | None = None,
) -> KeyInfo:
    """Revoke a key. ``caller``: the admin key asking (None for the operator's CLI)."""
    await _managed_key(connection, tenant_id=tenant_id, key_id=key_id, caller=caller)
    await _keep_an_unlimited_admin(
        connection, tenant_id=tenant_id, key_id=key_id, now=now, caller=caller
    )
    if not await repository.update_key(
        connection, tenant_id=tenant_id, key_id=key_id, revoked_at=now
    ):
        raise NotFound(f"no key {key_id!r}")
    return key_info(await repository.key_by_id(connection, key_id=key_id))


async def set_key_expiry(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    key_id: str,
    expires_at: datetime,
    now: datetime,
    caller: Principal | None = None,
) -> KeyInfo:
    """Set when a key stops working (a past time stops it at once)."""
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone", pointer="/expires_at")
    await _managed_key(connection, tenant_id=tenant_id, key_id=key_id, caller=caller)
    await _keep_an_unlimited_admin(
        connection, tenant_id=tenant_id, key_id=key_id, now=now, caller=caller
    )
    if not await repository.update_key(
        connection, tenant_id=tenant_id, key_id=key_id, expires_at=expires_at
    ):
        raise NotFound(f"no key {key_id!r}")
    return key_info(await repository.key_by_id(connection, key_id=key_id))


async def _keep_an_unlimited_admin(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    key_id: str,
    now: datetime,
    caller: Principal | None,
) -> None:
    """A tenant keeps a working admin key limited to no chain: its last one may be revoked or
    given an end only by itself (or by the operator, on the command line), never by another
    key, which could otherwise lock the tenant's administrators out."""
    admins = await repository.lock_unlimited_admin_keys(connection, tenant_id=tenant_id, now=now)
    if admins == [key_id] and caller is not None and caller.key_id != key_id:
        raise Conflict(
            f"key {key_id!r} is the tenant's last admin key limited to no chain; create "
            "another before revoking or expiring it"
        )
