"""What the SDK raises or reports; every error is an ``AuditTrailError``."""

from __future__ import annotations

from typing import Any


class AuditTrailError(Exception):
    """Base of every error of this package."""


class ConfigurationError(AuditTrailError, ValueError):
    """A setting is missing or out of range."""


class EventTooLarge(AuditTrailError, ValueError):
    """The event is over the log's per-event limit; it was not queued."""


class QueueFull(AuditTrailError):
    """The queue stayed full for the whole block timeout; the event was not queued."""


class JournalFull(AuditTrailError):
    """The journal directory holds its maximum size; the event was not queued."""


class ClientClosed(AuditTrailError):
    """The client was closed; it takes no more events."""


class EventDropped(AuditTrailError):
    """The queue was full and the overflow policy is ``drop``: the event was not sent."""


class EventRefused(AuditTrailError):
    """The log refused the event, or it could not be delivered; ``problem`` is the log's
    RFC 9457 problem body when it answered one."""

    def __init__(
        self, detail: str, *, event_id: str, status: int | None, problem: dict[str, Any]
    ) -> None:
        super().__init__(detail)
        self.event_id = event_id
        self.status = status
        self.problem = problem


class ReceiptVerificationError(AuditTrailError):
    """The log's answer carries receipts its key did not sign."""
