"""The verifier's own Prometheus series (the HTTP ones are ``http_edge.metrics``).

No series names a tenant or a chain. The alert rules (deploy/kubernetes/monitoring.yaml) and the
dashboard (deploy/grafana) use these names; tests/deploy/test_monitoring.py holds them together.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

COSIGNATURES = Counter(
    "audit_trail_verifier_cosignatures_total", "Checkpoints the verifier checked and cosigned"
)
ATTESTATIONS = Counter(
    "audit_trail_verifier_attestations_total",
    "Attestations issued, by result (passed, failed)",
    ["result"],
)
FINDINGS = Counter("audit_trail_verifier_findings_total", "Findings raised, by kind", ["kind"])
CHAINS_HALTED = Gauge(
    "audit_trail_verifier_chains_halted",
    "Chains the verifier has stopped cosigning because of a finding not yet acknowledged",
    multiprocess_mode="livemax",
)
SWEEP_ENTRIES = Counter(
    "audit_trail_verifier_sweep_entries_total",
    "Entries re-read by the sweep (scheduled and on-demand passes)",
)
LAST_PASS = Gauge(
    "audit_trail_verifier_last_pass_timestamp_seconds",
    "When the verifier last finished a pass over every chain it follows (Unix time)",
    multiprocess_mode="livemax",
)
COMPLETENESS_SOURCES_SILENT = Gauge(
    "audit_trail_verifier_completeness_sources_silent",
    "Producers that declared a heartbeat interval and have sent nothing for more than two of "
    "them, over every chain followed, as of the last pass (docs/completeness.md): a producer "
    "that stopped without closing, or whose events no longer arrive",
    multiprocess_mode="livemax",
)
COMPLETENESS_GAPS_OPEN = Gauge(
    "audit_trail_verifier_completeness_gaps_open",
    "Missing sequence ranges of producers, over every chain and source followed, as of the "
    "last pass (docs/completeness.md): alert when it stays above zero",
    multiprocess_mode="livemax",
)
