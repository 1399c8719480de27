"""Sending a batch to the log until each event is either appended or reported refused.

Retries follow the OTLP exporter's rules: only what may succeed later is retried (connection
errors, 408, 429, 502, 503, 504), with exponential backoff and jitter, honouring Retry-After;
a 500 is retried at most twice. A 4xx refuses the request as a whole: when its problem's
``pointer`` names a batch member (``/k`` or ``/k/...``) that event is reported and the rest
resent with the same ids; without one, the batch is split in halves until the bad events
stand alone. Nothing is dropped without a report.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from audit_trail_sdk.errors import EventRefused, ReceiptVerificationError
from audit_trail_sdk.events import QueuedEvent, batch_body
from audit_trail_sdk.receipts import Receipt, ReceiptVerifier

log = logging.getLogger("audit_trail_sdk")

BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
RETRIED_STATUSES = frozenset((408, 429, 502, 503, 504))
INTERNAL_ERROR_RETRIES = 2
# Refusals that say nothing about the events: the key, the chain or the client is wrong.
WHOLE_REQUEST_REFUSALS = frozenset((401, 403, 404, 405, 415))
MEMBER_POINTER = re.compile(r"^/(\d+)(?:/|$)")
FIRST_DELAY = 0.5


class DeliveryAbandoned(Exception):
    """The client gave up waiting (close or exit deadline); the batch is still undelivered."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


Delivered = Callable[[list[tuple[QueuedEvent, Receipt]]], None]
Refused = Callable[[QueuedEvent, EventRefused], None]


class Sender:
    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        chain: str,
        request_timeout: float,
        max_retry_delay: float,
        verifier: ReceiptVerifier | None,
        abandon: threading.Event,
    ) -> None:
        self._endpoint = f"{url.rstrip('/')}/v1/chains/{chain}/events"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": BATCH_MEDIA_TYPE,
            "User-Agent": "audit-trail-sdk/0.1",
        }
        self._http = httpx.Client(timeout=request_timeout)
        self._max_retry_delay = max_retry_delay
        self._verifier = verifier
        self._abandon = abandon
        self.retries = 0

    def close(self) -> None:
        self._http.close()

    def deliver(
        self, events: Sequence[QueuedEvent], *, delivered: Delivered, refused: Refused
    ) -> None:
        """Send ``events`` until each is delivered or refused; raise ``DeliveryAbandoned`` when
        the client stops waiting (what was not yet answered is then neither)."""
        pending = [list(events)]
        while pending:
            batch = pending.pop()
            answer = self._post(batch)
            if answer.status in (200, 201):
                self._accept(batch, answer, delivered=delivered, refused=refused)
                continue
            problem = answer.body
            if answer.status >= 500 or answer.status in WHOLE_REQUEST_REFUSALS:
                for event in batch:
                    refused(event, _refusal(event, answer))
                continue
            member = _member(problem.get("pointer"), len(batch))
            if member is not None:
                refused(batch[member], _refusal(batch[member], answer))
                rest = batch[:member] + batch[member + 1 :]
                if rest:
                    pending.append(rest)
            elif len(batch) == 1:
                refused(batch[0], _refusal(batch[0], answer))
            else:
                middle = len(batch) // 2
                pending.append(batch[middle:])
                pending.append(batch[:middle])

    def _accept(
        self, batch: list[QueuedEvent], answer: Answer, *, delivered: Delivered, refused: Refused
    ) -> None:
        receipts = answer.body.get("receipts")
        if not isinstance(receipts, list) or len(receipts) != len(batch):
            raise ValueError("the log answered a batch without one receipt per event")
        verified = False
        if self._verifier is not None:
            try:
                self._verifier.verify(answer.body.get("signature") or {}, receipts)
                verified = True
            except ReceiptVerificationError as error:
                # Appended, but unproven: the caller hears of it for each event.
                for event in batch:
                    refusal = EventRefused(
                        f"event {event.event_id}: {error}",
                        event_id=event.event_id,
                        status=answer.status,
                        problem={},
                    )
                    refusal.__cause__ = error
                    refused(event, refusal)
                return
        delivered(
            [
                (
                    event,
                    Receipt(
                        event_id=event.event_id,
                        tenant=receipt["tenant"],
                        chain=receipt["chain"],
                        index=receipt["index"],
                        leaf_hash=receipt["leaf_hash"],
                        received_at=receipt["received_at"],
                        replayed=receipt["replayed"],
                        verified=verified,
                    ),
                )
                for event, receipt in zip(batch, receipts, strict=True)
            ]
        )

    def _post(self, batch: list[QueuedEvent]) -> Answer:
        body = batch_body(batch)
        attempt = 0
        internal_errors = 0
        while True:
            if self._abandon.is_set():
                raise DeliveryAbandoned
            retry_after: float | None = None
            try:
                response = self._http.post(self._endpoint, content=body, headers=self._headers)
            except httpx.TransportError as error:
                log.warning("the log at %s is unreachable (%s); retrying", self._endpoint, error)
            else:
                status = response.status_code
                if status not in RETRIED_STATUSES and not (
                    status == 500 and internal_errors < INTERNAL_ERROR_RETRIES
                ):
                    return Answer(status, _json_object(response))
                internal_errors += status == 500
                retry_after = _retry_after(response.headers.get("Retry-After"))
                log.warning("the log answered %d; retrying", status)
            delay = min(self._max_retry_delay, FIRST_DELAY * 2**attempt)
            delay *= random.uniform(0.8, 1.2)
            if retry_after is not None:
                delay = min(max(retry_after, 0.0), max(self._max_retry_delay, 60.0))
            attempt += 1
            self.retries += 1
            if self._abandon.wait(delay):
                raise DeliveryAbandoned


def _member(pointer: object, size: int) -> int | None:
    """The batch member a problem's JSON Pointer names, if it names one."""
    if not isinstance(pointer, str):
        return None
    match = MEMBER_POINTER.match(pointer)
    if match is None or int(match.group(1)) >= size:
        return None
    return int(match.group(1))


def _refusal(event: QueuedEvent, answer: Answer) -> EventRefused:
    detail = answer.body.get("detail") or answer.body.get("title") or "no detail"
    return EventRefused(
        f"the log refused event {event.event_id} ({answer.status}): {detail}",
        event_id=event.event_id,
        status=answer.status,
        problem=answer.body,
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 §10.2.3); an HTTP date is left to the backoff."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
