"""The decision_log's one settings object, read from ``AUDIT_TRAIL_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_TRAIL_", extra="ignore")

    database_url: str = Field(
        validation_alias=AliasChoices("AUDIT_TRAIL_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL 15+ URL, e.g. postgresql://user@host/db",
    )
    log_key_file: Path = Field(description="PEM file of the log's Ed25519 signing key")
    kek_file: Path = Field(
        description="JSON file of the key-encryption keys that wrap personal-data keys"
    )
    pseudonym_key_file: Path = Field(
        description="File of the key of data-subject pseudonyms and idempotency digests"
    )
    log_origin: str = Field(
        default="audit-trail.localhost/log",
        description="Prefix of every checkpoint origin and the log's signed-note key name",
    )
    db_role: str | None = Field(
        default="audit_trail_writer",
        description="Role the service acts as (SET ROLE); empty to use the login role as is",
    )
    verifier_url: str | None = Field(
        default=None,
        description="A verifier to ask for each chain's status, shown with a decision's evidence",
    )
    verifier_plain_http: bool = Field(
        default=False,
        description="Allow a plain-http verifier URL that is not a loopback address. The log's "
        "tokens (signed, bound to one chain and one purpose, good for 60 s) then travel in "
        "clear: only inside a network no one else can read, such as a cluster network under "
        "NetworkPolicies or a service mesh with mutual TLS",
    )
    run_projector: bool = Field(
        default=True,
        description="Keep the decision read model up to date from this process; turn it off "
        "where `audit-trail projections follow` runs as a process of its own",
    )
    projection_verify_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often the decision_log rebuilds the read model from the entries in "
        "scratch tables and reports every difference from the live one as a "
        "projection-mismatch (`audit-trail projections verify`); 0 turns it off, e.g. where "
        "a CronJob runs that command instead",
    )
    pool_size: int = 10
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, description="The largest append body (one event or a batch)"
    )
    max_request_body_bytes: int = Field(
        default=1024 * 1024,
        description="The largest body of any other request, refused before it is read",
    )
    max_otlp_bytes: int = Field(
        default=32 * 1024 * 1024,
        description="The largest OTLP traces body once decompressed (on the wire, at most "
        "max_body_bytes)",
    )
    max_event_bytes: int = 256 * 1024
    max_batch_events: int = 5000
    max_json_depth: int = 32
    group_max_events: int = 5000
    max_pending_events: int = Field(
        default=50_000,
        description="Events one worker holds waiting for their commit; beyond it, 503",
    )
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Bytes of append bodies one worker holds at once (reserved from "
        "Content-Length before the body is read); beyond it, 503. Each tenant may hold a "
        "fair share of this and of max_pending_events while others append",
    )
    retry_after_seconds: int = 1
    queue_timeout_seconds: float = Field(
        default=2.0, description="An append still queued after this long is refused (503)"
    )
    lock_timeout_seconds: float = Field(
        default=5.0,
        description="The longest any statement of the service waits for a row lock; a "
        "request whose lock is held longer is answered 503",
    )
    checkpoint_interval_seconds: float = 0.5
    readiness_outage_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long the database may fail to answer before /readyz turns 503; "
        "within it, the replica stays ready and answers 503 itself to requests that need it",
    )
    console_idle_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="A console session unused this long is over; the auditor signs in again",
    )
    console_session_seconds: float = Field(
        default=8 * 3600.0,
        gt=0,
        description="No console session lasts longer than this, however busy",
    )
