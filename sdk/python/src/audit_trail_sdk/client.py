"""``AuditLog``: hand events over without waiting, have them delivered in the background.

One worker thread per client takes batches off a bounded queue (by count, bytes or age),
delivers them (``delivery.Sender``) and settles each event's future. The queue's lock also
orders sequence numbers, so the log sees a source's events numbered as they were queued.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_trail_sdk.config import Config
from audit_trail_sdk.decision_events import DecisionEvents
from audit_trail_sdk.delivery import DeliveryAbandoned, Sender
from audit_trail_sdk.errors import (
    ClientClosed,
    EventDropped,
    EventRefused,
    JournalFull,
    QueueFull,
)
from audit_trail_sdk.events import (
    HEARTBEAT_INTERVAL,
    PRODUCER_CLOSED,
    PRODUCER_HEARTBEAT,
    SEQUENCE_PREFIX_BYTES,
    QueuedEvent,
    encode_event,
    format_sequence,
    sequence_of,
    stamp_sequence,
)
from audit_trail_sdk.journal import Journal
from audit_trail_sdk.receipts import Receipt, receipt_verifier

log = logging.getLogger("audit_trail_sdk")

OnReceipt = Callable[[Receipt], None]
OnFailure = Callable[[str, EventRefused], None]
BATCH_FRAMING_BYTES = 2  # the batch's brackets; each further event adds a comma


@dataclass
class Stats:
    """What happened to this process's events so far."""

    queued: int = 0
    delivered: int = 0
    replayed: int = 0
    refused: int = 0
    dropped: int = 0
    journaled: int = 0
    lost: int = 0
    retries: int = 0


class AuditLog(DecisionEvents["Future[Receipt]"]):
    """A producer of one chain. Settings are keyword arguments of ``Config`` (``url``,
    ``api_key``, ``chain``, ``overflow``, ``journal_dir``, ...), else ``AUDIT_TRAIL_<NAME>``.

    Every ``emit`` (and typed helper) returns a future of the event's ``Receipt``, which fails
    with ``EventRefused`` when the log refuses it; ``on_receipt`` and ``on_failure`` hear of
    every event, including those replayed from the journal of a previous run."""

    def __init__(
        self,
        *,
        on_receipt: OnReceipt | None = None,
        on_failure: OnFailure | None = None,
        **settings: Any,
    ) -> None:
        self.config = Config.from_env(**settings)
        self._on_receipt = on_receipt
        self._on_failure = on_failure
        self._verifier = receipt_verifier(self.config)
        config = self.config
        self._journal = (
            Journal(config.journal_dir, max_bytes=config.journal_max_bytes, key=config.journal_key)
            if config.journal_dir is not None
            else None
        )
        self._extensions: dict[str, str] = (
            {HEARTBEAT_INTERVAL: str(config.heartbeat_interval)}
            if config.heartbeat_interval
            else {}
        )
        self._closed = False
        self._begin_process()
        self._replay: list[Path] = self._journal.left_behind() if self._journal else []
        _CLIENTS.add(self)
        atexit.register(self._at_exit)
        with self._lock:
            self._start_worker()

    def _begin_process(self) -> None:
        """What belongs to one process: a new instance (source, sequence) and a new worker."""
        self.instance_id = secrets.token_hex(16)
        self.source = f"{self.config.producer}/{self.instance_id}"
        self.stats = Stats()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[QueuedEvent] = deque()
        self._queued_bytes = 0
        self._first_queued_at = 0.0
        self._last_sent_at = time.monotonic()
        self._sequence = 0
        self._accepted = 0
        self._settled = 0
        self._flush_target = 0
        self._closing = False
        self._inflight: list[QueuedEvent] = []
        self._segment_in_flight = False
        self._spilled: dict[str, Future[Receipt]] = {}
        self._worker: threading.Thread | None = None
        self._abandon = threading.Event()
        self._sender = Sender(
            url=self.config.url,
            api_key=self.config.api_key,
            chain=self.config.chain,
            request_timeout=self.config.request_timeout,
            max_retry_delay=self.config.max_retry_delay,
            verifier=self._verifier,
            abandon=self._abandon,
        )

    # Handing events over.

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
    ) -> Future[Receipt]:
        """Queue one event of any type; raise ``EventTooLarge`` at once for one over the log's
        limit, and ``QueueFull`` when the ``block`` policy waited in vain."""
        event_id, body = encode_event(
            event_type,
            source=self.source,
            data=data,
            subject=subject,
            personal=personal,
            data_subject=data_subject,
            event_id=event_id,
            time=time,
            extensions=self._extensions,
        )
        return self._enqueue(event_id, body, wait=self.config.block_timeout)

    def _enqueue(self, event_id: str, body: bytes, *, wait: float) -> Future[Receipt]:
        delivery: Future[Receipt] = Future()
        size = len(body) + SEQUENCE_PREFIX_BYTES
        with self._lock:
            if self._closing or self._closed:
                raise ClientClosed("this client is closed")
            # While earlier events wait in the journal, later ones follow them there, so the
            # log receives a source's events in sequence order.
            if self.config.overflow == "journal" and self._spilled:
                self._spill(event_id, body, delivery)
                return delivery
            if self._full(size):
                if self.config.overflow == "drop":
                    self._sequence += 1  # a dropped event is a gap the log can see
                    self.stats.dropped += 1
                    log.warning("queue full: dropped event %s", event_id)
                    delivery.set_exception(EventDropped(f"event {event_id} was dropped"))
                    return delivery
                if self.config.overflow == "journal":
                    self._spill(event_id, body, delivery)
                    return delivery
                deadline = time.monotonic() + wait
                while self._full(size):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closing:
                        raise QueueFull(
                            f"the queue stayed full for {wait:g} s; event {event_id} not queued"
                        )
                    self._changed.wait(remaining)
            self._queue_locked(event_id, body, delivery)
        return delivery

    def _full(self, size: int) -> bool:
        return bool(self._queue) and (
            len(self._queue) >= self.config.max_queue_events
            or self._queued_bytes + size > self.config.max_queue_bytes
        )

    def _queue_locked(self, event_id: str, body: bytes, delivery: Future[Receipt] | None) -> None:
        self._sequence += 1
        event = QueuedEvent(event_id, stamp_sequence(body, self._sequence), delivery)
        self._queue.append(event)
        self._queued_bytes += len(event.body) + 1
        self._accepted += 1
        self.stats.queued += 1
        self._last_sent_at = time.monotonic()
        if len(self._queue) == 1:
            self._first_queued_at = self._last_sent_at
            self._changed.notify_all()
        elif (
            len(self._queue) == self.config.batch_max_events
            or self._queued_bytes >= self.config.batch_max_bytes
        ):
            self._changed.notify_all()
        self._start_worker()

    def _spill(self, event_id: str, body: bytes, delivery: Future[Receipt]) -> None:
        assert self._journal is not None
        self._sequence += 1
        try:
            self._journal.append(
                [stamp_sequence(body, self._sequence)], first_sequence=self._sequence
            )
        except JournalFull:
            self._sequence -= 1  # nobody else numbered an event meanwhile: we hold the lock
            raise
        self._spilled[event_id] = delivery
        self._accepted += 1
        self.stats.journaled += 1
        self._last_sent_at = time.monotonic()
        self._changed.notify_all()

    # Waiting for delivery.

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far, and every event a previous run left in the
        journal, is delivered or refused; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._accepted
            self._flush_target = max(self._flush_target, target)
            self._changed.notify_all()
            while self._settled < target or self._replay or self._segment_in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Send the closing event, deliver what is queued and stop. What is not delivered
        within ``timeout`` goes to the journal, or is logged as lost; returns whether all
        was delivered."""
        with self._lock:
            if self._closed or self._closing:
                return True
            if self._sequence:
                number = self._sequence + 1
                event_id, body = encode_event(
                    PRODUCER_CLOSED,
                    source=self.source,
                    data={"last_sequence": format_sequence(number)},
                    extensions=self._extensions,
                )
                self._queue_locked(event_id, body, None)
            self._closing = True
            self._changed.notify_all()
        delivered = self.flush(timeout)
        if not delivered:
            self._abandon.set()
            self._salvage()
        with self._lock:
            self._closed = True
            self._changed.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=1.0)
        self._sender.close()
        atexit.unregister(self._at_exit)
        return delivered

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close(self.config.exit_timeout)

    def _salvage(self) -> None:
        """Keep what the deadline left undelivered in the journal, or name it as lost."""
        with self._lock:
            # A segment being sent is still on disk: only what came from memory is kept.
            inflight = [] if self._segment_in_flight else self._inflight
            left = inflight + list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        if not left:
            return
        if self._journal is not None:
            try:
                self._journal.seal_current()
                for run in _consecutive_runs(left):
                    self._journal.write_segment(
                        [event.body for event in run], first_sequence=sequence_of(run[0].body)
                    )
                self.stats.journaled += len(left)
                log.warning("%d undelivered events kept in %s", len(left), self._journal.directory)
                return
            except (JournalFull, OSError) as error:
                log.error("the journal could not keep undelivered events: %s", error)
        self.stats.lost += len(left)
        log.error(
            "lost %d undelivered events: %s", len(left), " ".join(event.event_id for event in left)
        )
        for event in left:
            _fail(
                event.delivery,
                EventRefused(
                    f"event {event.event_id} was not delivered before the client closed",
                    event_id=event.event_id,
                    status=None,
                    problem={},
                ),
            )

    # The worker.

    def _start_worker(self) -> None:
        if self._worker is None and not self._closed:
            self._worker = threading.Thread(
                target=self._deliver_forever, name="audit-trail-sdk", daemon=True
            )
            self._worker.start()

    def _deliver_forever(self) -> None:
        while True:
            with self._lock:
                work = self._next_work()
                if work is None:
                    return
                batch, segment = work
                self._inflight = batch
                self._segment_in_flight = segment is not None
            try:
                self._sender.deliver(batch, delivered=self._delivered, refused=self._refused)
            except DeliveryAbandoned:
                return
            except Exception as error:  # a bug must not kill delivery silently: report it
                log.exception("delivering a batch failed")
                for event in batch:
                    self._refused(
                        event,
                        EventRefused(
                            f"event {event.event_id} could not be delivered: {error!r}",
                            event_id=event.event_id,
                            status=None,
                            problem={},
                        ),
                    )
            if segment is not None and self._journal is not None:
                self._journal.remove(segment)
            with self._lock:
                self._inflight = []
                self._segment_in_flight = False
                self.stats.retries = self._sender.retries
                self._changed.notify_all()

    def _next_work(self) -> tuple[list[QueuedEvent], Path | None] | None:
        """The next batch to send, waiting for one; None when the worker is to stop."""
        while True:
            if self._abandon.is_set() or self._closed:
                return None
            now = time.monotonic()
            if self._queue and self._batch_due(now):
                self._changed.notify_all()  # room in the queue for blocked producers
                return self._take_batch(), None
            segment = self._next_segment()
            if segment is not None:
                try:
                    return self._read_segment(segment), segment
                except Exception as error:  # left on disk for an operator, never deleted
                    log.error("journal segment %s cannot be read: %r", segment, error)
                    continue
            if self._closing and not self._queue:
                return None
            interval = self.config.heartbeat_interval
            if interval and self._sequence and now - self._last_sent_at >= interval:
                event_id, body = encode_event(
                    PRODUCER_HEARTBEAT, source=self.source, data={}, extensions=self._extensions
                )
                self._queue_locked(event_id, body, None)
                # Sent now, not after flush_interval: the log expects it on time.
                return self._take_batch(), None
            deadlines = []
            if self._queue:
                deadlines.append(self._first_queued_at + self.config.flush_interval)
            if interval and self._sequence:
                deadlines.append(self._last_sent_at + interval)
            self._changed.wait(max(0.0, min(deadlines) - now) if deadlines else None)

    def _batch_due(self, now: float) -> bool:
        return (
            len(self._queue) >= self.config.batch_max_events
            or self._queued_bytes >= self.config.batch_max_bytes
            or self._settled < self._flush_target
            or self._closing
            or now - self._first_queued_at >= self.config.flush_interval
        )

    def _take_batch(self) -> list[QueuedEvent]:
        batch: list[QueuedEvent] = []
        size = BATCH_FRAMING_BYTES
        while self._queue and len(batch) < self.config.batch_max_events:
            event = self._queue[0]
            if batch and size + len(event.body) + 1 > self.config.batch_max_bytes:
                break
            self._queue.popleft()
            self._queued_bytes -= len(event.body) + 1
            size += len(event.body) + 1
            batch.append(event)
        self._first_queued_at = time.monotonic()
        return batch

    def _next_segment(self) -> Path | None:
        if self._replay:
            return self._replay.pop(0)
        if self._journal is None or not self._spilled:
            return None
        self._journal.seal_current()
        sealed = self._journal.take_sealed()
        if not sealed:
            return None
        self._replay.extend(sealed[1:])
        return sealed[0]

    def _read_segment(self, segment: Path) -> list[QueuedEvent]:
        assert self._journal is not None
        events = []
        for body in self._journal.read(segment):
            event_id = _event_id(body)
            delivery = self._spilled.pop(event_id, None)
            events.append(QueuedEvent(event_id, body, delivery, accounted=delivery is not None))
        return events

    def _delivered(self, receipts: list[tuple[QueuedEvent, Receipt]]) -> None:
        """Settle a request's events: futures and callbacks first, so that a flush returning
        means they have all been told; then the counts, under one lock for the batch."""
        for event, receipt in receipts:
            if event.delivery is not None and not event.delivery.done():
                event.delivery.set_result(receipt)
            if self._on_receipt is not None:
                _call_back(self._on_receipt, receipt)
        with self._lock:
            self.stats.delivered += len(receipts)
            for event, receipt in receipts:
                self.stats.replayed += receipt.replayed
                self._settled += event.accounted

    def _refused(self, event: QueuedEvent, refusal: EventRefused) -> None:
        log.error("%s", refusal)
        _fail(event.delivery, refusal)
        if self._on_failure is not None:
            _call_back(self._on_failure, event.event_id, refusal)
        with self._lock:
            self.stats.refused += 1
            self._settled += event.accounted

    # Fork safety.

    def _after_fork_in_child(self) -> None:
        """The child is a new producer: a new source and sequence, no parent's queue (the
        parent sends it), a worker of its own started when it first emits."""
        self._begin_process()
        self._replay = []
        if self._journal is not None:
            self._journal.forget_after_fork()


_CLIENTS: weakref.WeakSet[AuditLog] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)


def _consecutive_runs(events: list[QueuedEvent]) -> list[list[QueuedEvent]]:
    """Events split where their sequence numbers stop following each other."""
    runs: list[list[QueuedEvent]] = []
    for event in events:
        if runs and sequence_of(runs[-1][-1].body) + 1 == sequence_of(event.body):
            runs[-1].append(event)
        else:
            runs.append([event])
    return runs


def _event_id(body: bytes) -> str:
    event_id: str = json.loads(body)["id"]
    return event_id


def _fail(delivery: Future[Receipt] | None, error: Exception) -> None:
    if delivery is not None and not delivery.done():
        delivery.set_exception(error)


def _call_back(callback: Callable[..., None], *arguments: Any) -> None:
    try:
        callback(*arguments)
    except Exception:
        log.exception("a callback of audit_trail_sdk raised")
