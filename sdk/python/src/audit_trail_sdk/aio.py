"""``AsyncAuditLog``: the same client for asyncio code; nothing it does blocks the loop.

Events are encoded and queued on the caller's task (a lock held for microseconds); only a
``block`` policy's wait for room, ``flush`` and ``close`` run in a thread. Delivery is the
sync client's worker thread, so both kinds of client send alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from audit_trail_sdk.client import AuditLog, OnFailure, OnReceipt, Stats
from audit_trail_sdk.decision_events import DecisionEvents
from audit_trail_sdk.errors import QueueFull
from audit_trail_sdk.events import encode_event
from audit_trail_sdk.receipts import Receipt

Handed = Awaitable["asyncio.Future[Receipt]"]


class AsyncAuditLog(DecisionEvents[Handed]):
    """``await log.decision(...)`` queues the event and returns a future of its receipt."""

    def __init__(
        self,
        *,
        on_receipt: OnReceipt | None = None,
        on_failure: OnFailure | None = None,
        **settings: Any,
    ) -> None:
        self.sync = AuditLog(on_receipt=on_receipt, on_failure=on_failure, **settings)

    @property
    def stats(self) -> Stats:
        return self.sync.stats

    @property
    def source(self) -> str:
        return self.sync.source

    def emit(
        self,
        event_type: str,
        *,
        data: Any,
        subject: str | None = None,
        personal: Sequence[str] = (),
        data_subject: str | None = None,
        event_id: str | None = None,
        time: str | None = None,
    ) -> Handed:
        sync = self.sync
        event_id, body = encode_event(
            event_type,
            source=sync.source,
            data=data,
            subject=subject,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
            time=time,
            extensions=sync._extensions,
        )
        return self._enqueue(event_id, body)

    async def _enqueue(self, event_id: str, body: bytes) -> asyncio.Future[Receipt]:
        try:
            delivery = self.sync._enqueue(event_id, body, wait=0)
        except QueueFull:
            delivery = await asyncio.to_thread(
                self.sync._enqueue, event_id, body, wait=self.sync.config.block_timeout
            )
        return asyncio.wrap_future(delivery)

    # The waits run in a thread, which asyncio.timeout cannot cancel: the deadline is the
    # sync client's, passed on.
    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return await asyncio.to_thread(self.sync.flush, timeout)

    async def close(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return await asyncio.to_thread(self.sync.close, timeout)

    async def __aenter__(self) -> AsyncAuditLog:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
