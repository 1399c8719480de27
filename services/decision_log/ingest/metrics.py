"""Counters of what producers sent that did not become entries, and of OTLP spans.

By default they are labelled by reason or outcome only: a series named by tenant, chain or
source would tell whoever reads a shared dashboard which tenants exist. An operator who wants
them per chain sets ``AUDIT_TRAIL_METRICS_PER_CHAIN=true``; the chain is then its opaque
numeric id (the chain's ``id`` column, which a tenant never sees) and the source its CloudEvents
``source``, bounded: past ``MAX_SOURCES`` distinct (chain, source) the rest count as
``source="(other)"`` (KServe's source is a pod name, new with every pod).
"""

from __future__ import annotations

import os

from prometheus_client import Counter

from decision_log.metrics import EVENTS_INGESTED

PER_CHAIN = os.environ.get("AUDIT_TRAIL_METRICS_PER_CHAIN", "").lower() in ("1", "true", "yes")
MAX_SOURCES = 1000
OTHER_SOURCE = "(other)"

EVENTS_REFUSED = Counter(
    "audit_trail_events_refused_total",
    "Events refused on the way in, by reason (e.g. too-large)"
    + (", chain id and source" if PER_CHAIN else ""),
    ("reason", "chain_id", "source") if PER_CHAIN else ("reason",),
)
OTLP_SPANS = Counter(
    "audit_trail_otlp_spans_total",
    "Spans received on the OTLP traces route: appended (GenAI), rejected (an invalid GenAI "
    "span, reported in partial_success), skipped (no gen_ai.* attribute)",
    ("outcome", "chain_id") if PER_CHAIN else ("outcome",),
)

_sources: set[tuple[int, str]] = set()


def _bounded(chain_id: int, source: str) -> str:
    key = (chain_id, source)
    if key in _sources:
        return source
    if len(_sources) >= MAX_SOURCES:
        return OTHER_SOURCE
    _sources.add(key)
    return source


def count_refused(*, chain_id: int, source: str, reason: str) -> None:
    if PER_CHAIN:
        EVENTS_REFUSED.labels(reason, str(chain_id), _bounded(chain_id, source)).inc()
    else:
        EVENTS_REFUSED.labels(reason).inc()


def count_spans(*, chain_id: int, appended: int, rejected: int, skipped: int) -> None:
    for outcome, count in (("appended", appended), ("rejected", rejected), ("skipped", skipped)):
        if count:
            labels = (outcome, str(chain_id)) if PER_CHAIN else (outcome,)
            OTLP_SPANS.labels(*labels).inc(count)
    if appended:
        EVENTS_INGESTED.labels("otlp", "appended").inc(appended)
    if rejected:
        EVENTS_INGESTED.labels("otlp", "refused").inc(rejected)
