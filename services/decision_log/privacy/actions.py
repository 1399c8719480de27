"""Erasure, retention and legal holds: each changes what the log may keep, and each is itself
an event appended to the chains it concerns, so the record of it is tamper-evident too."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from ledger.errors import VerificationError
from ledger.leaf import Leaf

from decision_log import admin_actions
from decision_log.admin_actions import api_actor
from decision_log.chains import service as chains
from decision_log.decisions.admin_records import flush_after_change
from decision_log.events.service import append_made_event
from decision_log.keys.service import Principal
from decision_log.privacy import repository
from decision_log.privacy.schemas import (
    DisposalIn,
    DisposalOut,
    ErasureIn,
    ErasureOut,
    Hold,
    RevealedEvent,
)
from decision_log.privacy.service import (
    PERSONAL_DATA_ROLE,
    LegalHold,
    RetentionFloor,
    log_event,
    plan_erasure,
    retained_until,
)
from decision_log.problems import Forbidden, IntegrityFailure, NotFound
from decision_log.state import AppState

ERASED = "dev.audit-trail.subject.erased.v1"
HOLD_SET = "dev.audit-trail.legal-hold.set.v1"
HOLD_LIFTED = "dev.audit-trail.legal-hold.lifted.v1"
RETENTION_SET = "dev.audit-trail.retention.set.v1"
DISPOSED = "dev.audit-trail.records.disposed.v1"


async def record(
    state: AppState,
    principal: Principal,
    chain: str,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    event = log_event(event_type=event_type, subject=subject, data=data, now=now)
    return await append_made_event(state, principal, chain, event)


async def erase_subject(state: AppState, principal: Principal, request: ErasureIn) -> ErasureOut:
    now = state.clock()
    subject_ref = request.pseudonym or state.personal_data.pseudonym(
        tenant=principal.tenant, subject=request.subject or ""
    )
    async with state.engine.begin() as connection:
        affected = await plan_erasure(
            connection,
            tenant_id=principal.tenant_id,
            subject_ref=subject_ref,
            now=now,
            override_reason=request.override_reason,
        )
        # A subject's key is one for the whole tenant: a key limited to chains erases only a
        # subject whose records all lie within them.
        beyond = [row.slug for row in affected if not principal.may_use_chain(row.slug)]
        if beyond:
            raise Forbidden(
                "the data subject has records in chains beyond this key's; an admin key "
                "limited to no chain, or one covering them, must erase it"
            )
        destroyed = await repository.destroy_keys(
            connection, tenant_id=principal.tenant_id, pseudonym=subject_ref, now=now
        )
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=api_actor(principal),
            action="subject.erase",
            target={"pseudonym": subject_ref, "chains": [row.slug for row in affected]},
            reason=request.reason,
            changes={"keys_destroyed": len(destroyed), "override_reason": request.override_reason},
            at=now,
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    # The keys are gone (committed) before the erasure events are appended to the chains: a
    # failure in between leaves the erasure done and its events missing (the access chain has
    # its record), and retrying the request appends them.
    data = {
        "pseudonym": subject_ref,
        "reason": request.reason,
        "override_reason": request.override_reason,
        "erased_by": principal.key_id,
        "keys_destroyed": destroyed,
    }
    receipts = [
        await record(state, principal, row.slug, ERASED, subject_ref, data, now) for row in affected
    ]
    return ErasureOut(
        pseudonym=subject_ref,
        keys_destroyed=len(destroyed),
        chains=[row.slug for row in affected],
        erasure_events=receipts,
    )


async def dispose(
    state: AppState, principal: Principal, chain: str, request: DisposalIn
) -> DisposalOut:
    """Make the personal content of expired records unreadable: destroy the keys of the
    chain's data subjects whose last record anywhere predates ``before``. Entries stay."""
    now = state.clock()
    before = request.before
    async with state.engine.begin() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        retention = await repository.chain_retention(connection, chain_id=row.id)
        floor = now - timedelta(days=retention.retention_days)
        if not request.override_reason:
            if retention.holds:
                raise LegalHold(
                    f"chain {chain} is under a legal hold; lift it, or override with a reason",
                    chains=[chain],
                )
            if before > floor:
                raise RetentionFloor(
                    f"records after {floor.isoformat()} are inside the retention period of "
                    f"{retention.retention_days} days; dispose before that, or override",
                    until=retained_until(before, retention.retention_days).isoformat(),
                    chains=[chain],
                )
        subjects = await repository.subjects_last_seen_before(
            connection, tenant_id=principal.tenant_id, chain_id=row.id, before=before
        )
        for subject_ref in subjects:
            await repository.destroy_keys(
                connection, tenant_id=principal.tenant_id, pseudonym=subject_ref, now=now
            )
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=api_actor(principal),
            action="records.dispose",
            target={"chain": chain},
            reason=request.reason,
            changes={
                "before": before.isoformat(),
                "subjects": len(subjects),
                "override_reason": request.override_reason,
            },
            at=now,
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    receipt = await record(
        state,
        principal,
        chain,
        DISPOSED,
        chain,
        {
            "before": before.isoformat(),
            "subjects": subjects,
            "reason": request.reason,
            "override_reason": request.override_reason,
            "by": principal.key_id,
        },
        now,
    )
    return DisposalOut(chain=chain, before=before, subjects=len(subjects), disposal_event=receipt)


async def set_hold(state: AppState, principal: Principal, chain: str, reason: str) -> Hold:
    async with state.engine.begin() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        hold_id = await repository.insert_hold(
            connection, chain_id=row.id, reason=reason, set_by=principal.key_id
        )
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=api_actor(principal),
            action="legal-hold.set",
            target={"chain": chain, "hold": hold_id},
            reason=reason,
            at=state.clock(),
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    await record(
        state,
        principal,
        chain,
        HOLD_SET,
        f"hold-{hold_id}",
        {"hold": hold_id, "reason": reason, "by": principal.key_id},
        state.clock(),
    )
    return await hold(state, principal, chain, hold_id)


async def lift_hold(
    state: AppState, principal: Principal, chain: str, hold_id: int, reason: str
) -> Hold:
    async with state.engine.begin() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        if not await repository.lift_hold(
            connection, chain_id=row.id, hold_id=hold_id, lifted_by=principal.key_id, reason=reason
        ):
            raise NotFound(f"no active legal hold {hold_id} on chain {chain!r}")
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=api_actor(principal),
            action="legal-hold.lift",
            target={"chain": chain, "hold": hold_id},
            reason=reason,
            at=state.clock(),
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    await record(
        state,
        principal,
        chain,
        HOLD_LIFTED,
        f"hold-{hold_id}",
        {"hold": hold_id, "reason": reason, "by": principal.key_id},
        state.clock(),
    )
    return await hold(state, principal, chain, hold_id)


async def list_holds(state: AppState, principal: Principal, chain: str) -> list[Hold]:
    async with state.engine.connect() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        return [Hold(**r._mapping) for r in await repository.holds(connection, chain_id=row.id)]


async def hold(state: AppState, principal: Principal, chain: str, hold_id: int) -> Hold:
    for item in await list_holds(state, principal, chain):
        if item.id == hold_id:
            return item
    raise NotFound(f"no legal hold {hold_id}")


async def set_retention(state: AppState, principal: Principal, chain: str, days: int) -> int:
    async with state.engine.begin() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        await repository.set_retention(connection, chain_id=row.id, days=days)
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=api_actor(principal),
            action="retention.set",
            target={"chain": chain},
            changes={"days": days},
            at=state.clock(),
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    await record(
        state,
        principal,
        chain,
        RETENTION_SET,
        chain,
        {"days": days, "by": principal.key_id},
        state.clock(),
    )
    return days


async def reveal_entry(
    state: AppState, principal: Principal, chain: str, index: int
) -> RevealedEvent:
    async with state.engine.connect() as connection:
        row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
        entry = await chains.read_entry(connection, row=row, index=index)
        assert entry.leaf is not None  # read_entry refuses a missing entry
        try:
            leaf = Leaf.parse(base64.b64decode(entry.leaf))
        except VerificationError as error:
            raise IntegrityFailure(
                f"entry {index}'s leaf is not in the leaf format: {error}",
                check="leaf-hash",
                index=index,
            ) from None
        may = PERSONAL_DATA_ROLE in principal.roles
        revealed = await state.personal_data.reveal(
            connection,
            tenant_id=principal.tenant_id,
            tenant=principal.tenant,
            chain=chain,
            event=leaf.event,
            may_read_personal_data=may,
        )
    # A reader with the right sees everything but what erasure made unreadable.
    why = None if not revealed.withheld else ("erased" if may else "no right")
    return RevealedEvent(
        index=index, event=revealed.event, withheld=list(revealed.withheld), why_withheld=why
    )
