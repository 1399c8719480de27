"""The decision_log's own Prometheus series (the HTTP ones are ``http_edge.metrics``).

Names follow https://prometheus.io/docs/practices/naming/: the ``audit_trail_`` prefix, base
units, ``_total`` on counters. No series is labelled by tenant or chain. Gauges of work in
progress are ``livesum`` (added over live workers) or ``livemax`` (the worst live worker).
The alert rules (deploy/kubernetes/monitoring.yaml) and the dashboard (deploy/grafana) use these
names; tests/deploy/test_monitoring.py holds them together.
"""

from __future__ import annotations

from http_edge.metrics import LATENCY_BUCKETS
from http_edge.problems import Problem
from prometheus_client import Counter, Gauge, Histogram

EVENTS_INGESTED = Counter(
    "audit_trail_events_ingested_total",
    "Events in append requests, by content mode (structured, batch, binary, otlp) and outcome: "
    "appended, replayed (an idempotent retry of an event held), refused (for structured, batch "
    "and binary: the requests refused, one however many events each held)",
    ["mode", "outcome"],
)
# The append path's series, bound once: binding a label set costs more than the increment.
_INGESTED = {
    (mode, outcome): EVENTS_INGESTED.labels(mode, outcome)
    for mode in ("structured", "batch", "binary")
    for outcome in ("appended", "replayed")
}


def count_refused_request(content_type: bytes | None) -> None:
    from decision_log.events.binary import content_mode, media_type_of  # a refusal's rare path

    mode: str
    try:
        mode = content_mode(media_type_of(content_type))
    except Problem:
        mode = "unsupported"
    EVENTS_INGESTED.labels(mode, "refused").inc()


def count_ingested(mode: str, *, appended: int, replayed: int) -> None:
    """Events of one append request that the log now holds: new, or replays of held ones."""
    if appended:
        _INGESTED[(mode, "appended")].inc(appended)
    if replayed:
        _INGESTED[(mode, "replayed")].inc(replayed)


APPENDS_REFUSED = Counter(
    "audit_trail_appends_refused_total",
    "Append requests answered 503, by reason (overloaded, queue_timeout, database)",
    ["reason"],
)
GROUP_COMMIT_EVENTS = Histogram(
    "audit_trail_group_commit_events",
    "Events written by one group commit",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
GROUP_COMMIT_SECONDS = Histogram(
    "audit_trail_group_commit_duration_seconds",
    "Time one group commit takes, from taking the chain's lock to its commit",
    buckets=LATENCY_BUCKETS,
)
GROUP_COMMITS_FAILED = Counter(
    "audit_trail_group_commits_failed_total",
    "Group commits the database refused, by fault (unavailable, busy, bad_data, other)",
    ["fault"],
)
ADMISSION_BYTES = Gauge(
    "audit_trail_admission_inflight_bytes",
    "Bytes of append bodies held by the workers (admission budget in use)",
    multiprocess_mode="livesum",
)
ADMISSION_EVENTS = Gauge(
    "audit_trail_admission_pending_events",
    "Events waiting for their group commit (admission budget in use)",
    multiprocess_mode="livesum",
)
CHECKPOINTS_SIGNED = Counter(
    "audit_trail_checkpoints_signed_total", "Checkpoints the log has signed"
)
CHECKPOINT_LAG = Gauge(
    "audit_trail_checkpoint_lag_seconds",
    "How long the longest-waiting chain's committed entries have gone without a checkpoint",
    multiprocess_mode="livemax",
)
COSIGNATURE_LAG = Gauge(
    "audit_trail_cosignature_lag_seconds",
    "How long the longest-waiting chain's newest checkpoints have gone without a witness's "
    "cosignature (0 when every chain's latest checkpoint is cosigned)",
    multiprocess_mode="livemax",
)
PROJECTOR_BEHIND = Gauge(
    "audit_trail_projector_behind_entries",
    "Committed entries the decision read model does not hold yet, over every chain",
    multiprocess_mode="livemax",
)
PROJECTOR_FAILING_CHAINS = Gauge(
    "audit_trail_projector_failing_chains",
    "Chains whose projection is failing (their read model stops at an entry)",
    multiprocess_mode="livemax",
)
PROJECTOR_ERRORS = Counter(
    "audit_trail_projector_errors_total", "Failed attempts to project a chain's entries"
)
EXPORTS = Counter(
    "audit_trail_exports_total", "Export jobs, by outcome (ready, failed)", ["outcome"]
)
