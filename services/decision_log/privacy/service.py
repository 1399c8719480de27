"""Personal data: sealing on the way in, revealing on the way out, erasure, retention, holds.

A producer marks personal data with two CloudEvents extension attributes:

- ``personaldata``: comma-separated JSON Pointers (RFC 6901) into ``data``, e.g.
  ``/input/features,/applicant``. Each value is sealed under the data subject's key before the
  leaf is built (``ledger.sealing``).
- ``datasubject``: the data subject's identifier. It travels to the log but is never stored:
  the event keeps its keyed-HMAC pseudonym instead.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.errors import LedgerError
from ledger.leaf import format_received_at
from ledger.sealing import (
    SealingContext,
    SealingError,
    is_sealed,
    new_data_key,
    open_fields,
    parse_pointer,
    pseudonym,
    seal_fields,
    unwrap_key,
    wrap_key,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from decision_log.events.appender import ChainRef
from decision_log.events.cloudevents import (
    DATA_SUBJECT,
    PERSONAL_DATA,
    PreparedEvent,
    canonical_event,
    prepare_event,
)
from decision_log.privacy import repository
from decision_log.privacy.keyring import Keyring, new_kek_id, write_kek_file
from decision_log.problems import Conflict, InvalidEvent

PERSONAL_DATA_ROLE = "personal-data"
LOG_SOURCE = "urn:audit-trail:log"
RETENTION_FLOOR_DAYS = 183


def personal_pointers(event: dict[str, Any]) -> list[str]:
    marked = event.get(PERSONAL_DATA)
    if not isinstance(marked, str):
        return []
    return [pointer.strip() for pointer in marked.split(",") if pointer.strip()]


class PersonalData:
    """Seals the personal fields of incoming events; opens them for readers with the right."""

    def __init__(self, *, engine: AsyncEngine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

    @property
    def digest_key(self) -> bytes:
        return self._keyring.pseudonym_key

    def pseudonym(self, *, tenant: str, subject: str) -> str:
        return pseudonym(self._keyring.pseudonym_key, tenant=tenant, subject=subject)

    async def prepare(
        self,
        chain: ChainRef,
        tenant_id: int,
        events: list[tuple[str, dict[str, Any]]],
        *,
        max_event_bytes: int,
        oversize_to_digest: bool = False,
    ) -> list[PreparedEvent]:
        """Canonicalise the events, sealing the marked ones first (one query for their keys).
        ``oversize_to_digest``: the chain keeps an over-limit event's data as its digest
        (``cloudevents.prepare_event``)."""
        personal = [
            (pointer, event)
            for pointer, event in events
            if PERSONAL_DATA in event or DATA_SUBJECT in event
        ]
        keys = await self._data_keys(tenant_id, chain.tenant, personal) if personal else {}
        prepared: list[PreparedEvent] = []
        for pointer, event in events:
            if PERSONAL_DATA not in event and DATA_SUBJECT not in event:
                prepared.append(
                    prepare_event(
                        event,
                        pointer=pointer,
                        max_event_bytes=max_event_bytes,
                        digest_key=self.digest_key,
                        oversize_to_digest=oversize_to_digest,
                    )
                )
                continue
            subject_ref = self.pseudonym(tenant=chain.tenant, subject=event[DATA_SUBJECT])
            sealed = dict(event, **{DATA_SUBJECT: subject_ref})
            pointers = personal_pointers(event)
            if pointers:
                kid, data_key = keys[subject_ref]
                context = SealingContext(
                    tenant=chain.tenant,
                    chain=chain.chain,
                    source=event["source"],
                    event_id=event["id"],
                    event_type=event["type"],
                )
                try:
                    sealed["data"] = seal_fields(
                        event["data"], pointers, key=data_key, kid=kid, context=context
                    )
                except SealingError as error:
                    raise InvalidEvent(str(error), pointer=f"{pointer}/{PERSONAL_DATA}") from None
            prepared.append(
                prepare_event(
                    sealed,
                    pointer=pointer,
                    max_event_bytes=max_event_bytes,
                    digest_key=self.digest_key,
                    plaintext_json=canonical_event(event, pointer=pointer),
                    data_subject=subject_ref,
                )
            )
        return prepared

    async def _data_keys(
        self, tenant_id: int, tenant: str, events: list[tuple[str, dict[str, Any]]]
    ) -> dict[str, tuple[str, bytes]]:
        needed: set[str] = set()
        for pointer, event in events:
            subject = event.get(DATA_SUBJECT)
            if not isinstance(subject, str) or not subject:
                raise InvalidEvent(
                    "events with personal data name their data subject in 'datasubject'",
                    pointer=f"{pointer}/{DATA_SUBJECT}",
                )
            pointers = personal_pointers(event)
            for item in pointers:
                try:
                    parse_pointer(item)
                except SealingError as error:
                    raise InvalidEvent(str(error), pointer=f"{pointer}/{PERSONAL_DATA}") from None
            if pointers and "data" not in event:
                raise InvalidEvent(
                    "personaldata points into data, but the event has none",
                    pointer=f"{pointer}/{PERSONAL_DATA}",
                )
            if pointers:
                needed.add(self.pseudonym(tenant=tenant, subject=subject))
        if not needed:
            return {}
        async with self._engine.begin() as connection:
            found = await repository.live_keys(
                connection, tenant_id=tenant_id, pseudonyms=sorted(needed)
            )
            missing = sorted(needed - set(found))
            if missing:
                kek = self._keyring.active_kek
                kek_id = self._keyring.active_kek_id
                await repository.insert_keys(
                    connection,
                    tenant_id=tenant_id,
                    rows=[
                        (
                            ref,
                            secrets.token_hex(12),
                            wrap_key(kek, new_data_key()),
                            kek_id,
                        )
                        for ref in missing
                    ],
                )
                found = await repository.live_keys(
                    connection, tenant_id=tenant_id, pseudonyms=sorted(needed)
                )
        return {
            ref: (kid, unwrap_key(self._keyring.kek(kek_id), wrapped))
            for ref, (kid, wrapped, kek_id) in found.items()
        }

    async def reveal(
        self,
        connection: AsyncConnection,
        *,
        tenant_id: int,
        tenant: str,
        chain: str,
        event: dict[str, Any],
        may_read_personal_data: bool,
    ) -> Revealed:
        """The event with its sealed fields opened where the reader may and the key survives."""
        pointers = personal_pointers(event)
        if not pointers or "data" not in event:
            return Revealed(event=event, withheld=())
        context = SealingContext(
            tenant=tenant,
            chain=chain,
            source=event["source"],
            event_id=event["id"],
            event_type=event["type"],
        )
        if not may_read_personal_data:
            return Revealed(event=event, withheld=tuple(pointers))
        kids = sorted(_sealed_kids(event["data"]))
        stored = await repository.keys_by_kid(connection, tenant_id=tenant_id, kids=kids)
        keys = {
            kid: unwrap_key(self._keyring.kek(kek_id), wrapped)
            for kid, (wrapped, kek_id) in stored.items()
            if wrapped is not None and kek_id is not None
        }
        try:
            opened = open_fields(event["data"], pointers, keys=keys, context=context)
        except LedgerError as error:
            raise Conflict(f"a sealed field does not open: {error}") from None
        return Revealed(event=dict(event, data=opened.data), withheld=opened.withheld)


@dataclass(frozen=True)
class Revealed:
    event: dict[str, Any]
    withheld: tuple[str, ...]  # pointers still sealed (no right, or key destroyed)


def _sealed_kids(value: Any) -> set[str]:
    if isinstance(value, dict):
        if is_sealed(value):
            return {value["kid"]}
        return set().union(*(_sealed_kids(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_sealed_kids(v) for v in value)) if value else set()
    return set()


def log_event(
    *, event_type: str, subject: str, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """An event the log itself records (erasure, holds): in its chain like any other."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": LOG_SOURCE,
        "type": event_type,
        "subject": subject,
        "time": format_received_at(now),
        "datacontenttype": "application/json",
        "data": data,
    }


async def plan_erasure(
    connection: AsyncConnection,
    *,
    tenant_id: int,
    subject_ref: str,
    now: datetime,
    override_reason: str | None,
) -> list[Any]:
    """The chains holding the subject's records, once their retention floors and legal holds
    allow the erasure (or an override reason is given)."""
    chains = await repository.subject_chains(connection, tenant_id=tenant_id, pseudonym=subject_ref)
    if override_reason:
        return chains
    held = [row.slug for row in chains if row.holds]
    if held:
        raise LegalHold(
            f"chains {', '.join(held)} are under a legal hold; lift it, or override with a reason",
            chains=held,
        )
    kept_until = [(row.slug, retained_until(row.newest, row.retention_days)) for row in chains]
    young = [(slug, until) for slug, until in kept_until if until > now]
    if young:
        until = max(moment for _, moment in young)
        raise RetentionFloor(
            f"the subject's records must be kept until {until.isoformat()} (retention of "
            f"{', '.join(slug for slug, _ in young)}); override with a reason to erase now",
            until=until.isoformat(),
            chains=[slug for slug, _ in young],
        )
    return chains


def retained_until(moment: datetime, days: int) -> datetime:
    """``moment`` plus a retention period; the end of time for one beyond the calendar (a
    retention set before its upper bound existed)."""
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


class LegalHold(Conflict):
    slug, title = "legal-hold", "Refused: a legal hold applies"


class RetentionFloor(Conflict):
    slug, title = "retention-floor", "Refused: inside the retention period"


async def rotate_kek(
    engine: AsyncEngine, keyring: Keyring, *, now: Callable[[], datetime]
) -> dict[str, Any]:
    """Rotate the KEK: new active KEK, rewrap every surviving data key, retire the old KEKs.

    Order matters for crash safety: the new KEK is written to the file (beside the old ones)
    before any key is rewrapped, and the old ones are removed only after every rewrap committed.
    """
    keks = dict(keyring.keks)
    new_id = new_kek_id(now())
    keks[new_id] = secrets.token_bytes(32)
    write_kek_file(keyring.kek_file, new_id, keks)
    keyring.refresh()
    async with engine.begin() as connection:
        rows = await repository.live_wrapped_keys(connection)
        rewrapped = [
            (row.id, wrap_key(keks[new_id], unwrap_key(keks[row.kek_id], bytes(row.wrapped_key))))
            for row in rows
        ]
        if rewrapped:
            await repository.rewrap(connection, rows=rewrapped, kek_id=new_id)
    retired = sorted(kek_id for kek_id in keks if kek_id != new_id)
    write_kek_file(keyring.kek_file, new_id, {new_id: keks[new_id]})
    keyring.refresh()
    return {"active": new_id, "rewrapped": len(rewrapped), "retired": retired}
