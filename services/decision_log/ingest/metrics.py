"""Counters of what producers sent that did not become entries, in the process's Prometheus
registry (``prometheus_client.REGISTRY``), for the service's metrics endpoint to expose.

Sources come from producers (KServe's is a pod name, which changes with every pod), so the
label set is bounded: past ``MAX_SOURCES`` distinct (tenant, chain, source) the rest are
counted as ``source="(other)"``. No label ever holds a URL or a query string.
"""

from __future__ import annotations

from prometheus_client import Counter

MAX_SOURCES = 1000
OTHER_SOURCE = "(other)"

EVENTS_REFUSED = Counter(
    "audit_trail_events_refused",
    "Events refused on the way in, by chain, source and reason (e.g. too-large)",
    ("tenant", "chain", "source", "reason"),
)
OTLP_SPANS = Counter(
    "audit_trail_otlp_spans",
    "Spans received on the OTLP traces route: appended (GenAI), rejected (an invalid GenAI "
    "span, reported in partial_success), skipped (no gen_ai.* attribute)",
    ("tenant", "chain", "outcome"),
)

_sources: set[tuple[str, str, str]] = set()


def _bounded(tenant: str, chain: str, source: str) -> str:
    key = (tenant, chain, source)
    if key in _sources:
        return source
    if len(_sources) >= MAX_SOURCES:
        return OTHER_SOURCE
    _sources.add(key)
    return source


def count_refused(*, tenant: str, chain: str, source: str, reason: str) -> None:
    EVENTS_REFUSED.labels(tenant, chain, _bounded(tenant, chain, source), reason).inc()


def count_spans(*, tenant: str, chain: str, appended: int, rejected: int, skipped: int) -> None:
    for outcome, count in (("appended", appended), ("rejected", rejected), ("skipped", skipped)):
        if count:
            OTLP_SPANS.labels(tenant, chain, outcome).inc(count)
