"""Send decisions made by AI systems to an audit-trail decision log, losing none."""

from audit_trail_sdk.aio import AsyncAuditLog
from audit_trail_sdk.client import AuditLog, Stats
from audit_trail_sdk.config import Config
from audit_trail_sdk.errors import (
    AuditTrailError,
    ClientClosed,
    ConfigurationError,
    EventDropped,
    EventRefused,
    EventTooLarge,
    JournalFull,
    QueueFull,
    ReceiptVerificationError,
)
from audit_trail_sdk.events import (
    DECISION_CONTESTED,
    DECISION_OVERRIDDEN,
    DECISION_RECORDED,
    DECISION_REVIEWED,
    GENAI_INVOCATION,
    MODEL_DEPLOYED,
    OUTCOME_OBSERVED,
    PRODUCER_CLOSED,
    PRODUCER_HEARTBEAT,
)
from audit_trail_sdk.receipts import Receipt

__all__ = [
    "DECISION_CONTESTED",
    "DECISION_OVERRIDDEN",
    "DECISION_RECORDED",
    "DECISION_REVIEWED",
    "GENAI_INVOCATION",
    "MODEL_DEPLOYED",
    "OUTCOME_OBSERVED",
    "PRODUCER_CLOSED",
    "PRODUCER_HEARTBEAT",
    "AsyncAuditLog",
    "AuditLog",
    "AuditTrailError",
    "ClientClosed",
    "Config",
    "ConfigurationError",
    "EventDropped",
    "EventRefused",
    "EventTooLarge",
    "JournalFull",
    "QueueFull",
    "Receipt",
    "ReceiptVerificationError",
    "Stats",
]
