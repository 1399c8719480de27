"""Access records: every search and view of the decision log is itself an entry (R15).

Records go to the tenant's ``access-log`` chain, created on first use, through the same group
committer as producers' events, so they are hash-chained, Merkle-proved, checkpointed and
cosigned like any other entry, and cannot be altered afterwards. Producers may not append to
that chain (``refuse_producer_append``): only the log writes it.
"""

from __future__ import annotations

import uuid
from typing import Any

from ledger.leaf import format_received_at

from decision_log.chains import service as chains
from decision_log.decisions.event_types import RECORDS_ACCESSED
from decision_log.decisions.projector import ACCESS_CHAIN
from decision_log.events.appender import ChainRef
from decision_log.events.cloudevents import check_event
from decision_log.keys.service import Principal
from decision_log.problems import Conflict, Forbidden, NotFound
from decision_log.state import AppState

ACCESS_SOURCE = "urn:audit-trail:decision-log"


def refuse_producer_append(chain: str) -> None:
    """Called by the append endpoint: the access chain is written by the log alone."""
    if chain == ACCESS_CHAIN:
        raise Forbidden(f"chain {ACCESS_CHAIN!r} is written only by the log itself")


async def access_chain(state: AppState, principal: Principal) -> ChainRef:
    return await tenant_access_chain(state, tenant_id=principal.tenant_id, tenant=principal.tenant)


async def tenant_access_chain(state: AppState, *, tenant_id: int, tenant: str) -> ChainRef:
    """The tenant's access chain, created on first use (by the log: no action to record)."""
    try:
        return await state.directory.resolve(tenant_id=tenant_id, tenant=tenant, chain=ACCESS_CHAIN)
    except NotFound:
        pass
    try:
        async with state.engine.begin() as connection:
            await chains.create_chain(
                connection,
                signer=state.signer,
                tenant_id=tenant_id,
                tenant=tenant,
                slug=ACCESS_CHAIN,
                description="Who read what, when: written by the log (ISO/IEC 27001 A.8.15)",
                recorded_as=None,
            )
    except Conflict:
        pass  # another request or worker created it first
    return await state.directory.resolve(tenant_id=tenant_id, tenant=tenant, chain=ACCESS_CHAIN)


async def record_access(
    state: AppState,
    principal: Principal,
    *,
    action: str,
    chain: str | None = None,
    decision_id: str | None = None,
    query: dict[str, Any] | None = None,
) -> None:
    """Append one access record and return once it is committed."""
    data: dict[str, Any] = {
        "accessor": {
            "key_id": principal.key_id,
            "tenant": principal.tenant,
            "roles": sorted(principal.roles),
        },
        "action": action,
    }
    if chain is not None:
        data["chain"] = chain
    if decision_id is not None:
        data["decision_id"] = decision_id
    if query is not None:
        data["query"] = query
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": ACCESS_SOURCE,
        "type": RECORDS_ACCESSED,
        "time": format_received_at(state.clock()),
        "datacontenttype": "application/json",
        "data": data,
    }
    ref = await access_chain(state, principal)
    prepared = await state.personal_data.prepare(
        ref,
        principal.tenant_id,
        [("", check_event(event, pointer=""))],
        max_event_bytes=state.settings.max_event_bytes,
    )
    await state.committer.append(ref, prepared, batch=False)
