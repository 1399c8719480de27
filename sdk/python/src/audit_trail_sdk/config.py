"""The client's settings: given as arguments, else read from ``AUDIT_TRAIL_*`` variables."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from audit_trail_sdk.errors import ConfigurationError
from audit_trail_sdk.limits import MAX_BATCH_EVENTS, MAX_BODY_BYTES

Overflow = Literal["block", "journal", "drop"]
OVERFLOW_POLICIES = ("block", "journal", "drop")
ENV_PREFIX = "AUDIT_TRAIL_"


@dataclass(frozen=True, kw_only=True)
class Config:
    url: str
    api_key: str
    chain: str
    # The first half of the CloudEvents source, ``<producer>/<instance id>``.
    producer: str
    overflow: Overflow = "block"
    max_queue_events: int = 10_000
    max_queue_bytes: int = 64 * 1024 * 1024
    block_timeout: float = 30.0
    batch_max_events: int = 500
    batch_max_bytes: int = 4 * 1024 * 1024
    flush_interval: float = 1.0
    request_timeout: float = 10.0
    max_retry_delay: float = 30.0
    exit_timeout: float = 5.0
    # Seconds of idleness after which a heartbeat is sent; 0 sends none.
    heartbeat_interval: int = 60
    journal_dir: Path | None = None
    journal_max_bytes: int = 256 * 1024 * 1024
    # 32 bytes: the journal's lines are then sealed with AES-256-GCM.
    journal_key: bytes | None = None
    # The log's Ed25519 public key, raw 32 bytes or hex, as GET /v1/log/keys names it.
    log_public_key: bytes | str | None = None
    # Take the key from the log itself (trust on first use): an explicit opt-in.
    fetch_log_key: bool = False

    def __post_init__(self) -> None:
        for name in ("url", "api_key", "chain", "producer"):
            if not getattr(self, name):
                variable = ENV_PREFIX + name.upper()
                raise ConfigurationError(f"{name} is required (argument or {variable})")
        if self.overflow not in OVERFLOW_POLICIES:
            raise ConfigurationError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}")
        if self.overflow == "journal" and self.journal_dir is None:
            raise ConfigurationError("overflow 'journal' needs journal_dir")
        if not 1 <= self.batch_max_events <= MAX_BATCH_EVENTS:
            raise ConfigurationError(f"batch_max_events must be 1 to {MAX_BATCH_EVENTS}")
        if not 1 <= self.batch_max_bytes <= MAX_BODY_BYTES:
            raise ConfigurationError(f"batch_max_bytes must be 1 to {MAX_BODY_BYTES}")
        if self.max_queue_events < 1 or self.max_queue_bytes < 1:
            raise ConfigurationError("the queue must hold at least one event")
        if self.heartbeat_interval < 0:
            raise ConfigurationError("heartbeat_interval must be 0 (none) or more seconds")
        if self.journal_key is not None and len(self.journal_key) != 32:
            raise ConfigurationError("journal_key must be 32 bytes (AES-256)")

    @classmethod
    def from_env(cls, **arguments: Any) -> Config:
        """Arguments given (not None) win; the rest come from ``AUDIT_TRAIL_<NAME>``."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            given = arguments.pop(field.name, None)
            if given is not None:
                values[field.name] = given
                continue
            text = os.environ.get(ENV_PREFIX + field.name.upper())
            if text is not None:
                values[field.name] = _parse(field.name, text)
        if arguments:
            raise TypeError(f"unknown settings: {', '.join(sorted(arguments))}")
        values.setdefault("producer", _program_name())
        for name in ("url", "api_key", "chain"):
            values.setdefault(name, "")
        if isinstance(values.get("journal_dir"), str):
            values["journal_dir"] = Path(values["journal_dir"])
        return cls(**values)


_NUMBERS: dict[str, type[int] | type[float]] = {
    "max_queue_events": int,
    "max_queue_bytes": int,
    "block_timeout": float,
    "batch_max_events": int,
    "batch_max_bytes": int,
    "flush_interval": float,
    "request_timeout": float,
    "max_retry_delay": float,
    "exit_timeout": float,
    "heartbeat_interval": int,
    "journal_max_bytes": int,
}


def _parse(name: str, text: str) -> Any:
    if name in _NUMBERS:
        try:
            return _NUMBERS[name](text)
        except ValueError:
            raise ConfigurationError(f"{ENV_PREFIX}{name.upper()} is not a number") from None
    if name == "journal_key":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ConfigurationError(f"{ENV_PREFIX}JOURNAL_KEY must be hex") from None
    if name == "fetch_log_key":
        return text.lower() in ("1", "true", "yes")
    return text


def _program_name() -> str:
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return name if name and name not in ("-c", "-m") else "python"
