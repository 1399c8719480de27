"""The verifier's one settings object, from ``AUDIT_TRAIL_VERIFIER_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_TRAIL_VERIFIER_", extra="ignore")

    database_url: str = Field(
        description="PostgreSQL 15+ URL of the verifier's own store (not the log's database)"
    )
    key_file: Path = Field(description="PEM file of the verifier's Ed25519 key")
    log_url: str = Field(description="Base URL of the decision_log, e.g. http://127.0.0.1:8000")
    log_api_key: str = Field(
        description="A witness key (sees every chain, may post cosignatures) or a tenant "
        "auditor key (that tenant's chains; cosignatures are kept, not posted)"
    )
    log_verifier_key: str = Field(
        description="The log's signed-note verifier key (name+keyid+base64): the only thing "
        "about the log the verifier trusts"
    )
    name: str = Field(
        default="verifier.localhost/witness",
        description="Key name of the verifier's cosignatures (C2SP tlog-cosignature)",
    )
    host: str = "127.0.0.1"
    port: int = 8001
    db_role: str | None = Field(
        default="audit_trail_verifier",
        description="Role the verifier acts as (SET ROLE); empty to use the login role as is",
    )
    readiness_outage_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long the store may fail to answer before /readyz turns 503",
    )
    poll_interval_seconds: float = Field(default=1.0, description="How often to poll the log")
    attestation_interval_seconds: float = Field(
        default=300.0, description="Attest each chain this often while it grows"
    )
    auth_cache_seconds: float = Field(
        default=30.0, description="How long a caller's key, as checked with the log, is trusted"
    )
    # The sweep (verifier.sweep, docs/verifier.md): every entry already verified is re-read
    # once per period, at most at the rate below across all chains. 10,000 entries/s over a
    # day re-reads 864,000,000 entries; the longest time from a tamper of a verified entry to
    # its finding is one period plus one pass of every chain at that rate.
    sweep_period_seconds: float = Field(
        default=86400.0, gt=0, description="Every chain is re-read in full once per period"
    )
    sweep_rate_entries_per_second: float = Field(
        default=10000.0, gt=0, description="Cap on entries re-read per second, over all chains"
    )
    sweep_window_entries: int = Field(
        default=65536,
        ge=1,
        le=65536,
        description="Entries compared per window (the chain's cosigning lock is held for one)",
    )
    # Completeness of each chain's producers (docs/completeness.md).
    completeness_gap_age_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A missing sequence range open longer than this is flagged (late events "
        "fill gaps until then)",
    )
    # On-demand work (POST .../verify) per caller: a burst, refilled per minute; beyond, 429.
    on_demand_burst: int = Field(default=10, ge=1, description="On-demand requests at once")
    on_demand_per_minute: float = Field(
        default=10.0, gt=0, description="On-demand requests per caller and minute, sustained"
    )
