"""Every series the alert rules and the dashboard query is one the services export: names are
collected from the services' own metrics modules, and read out of each PromQL expression."""

from __future__ import annotations

import json
import re
from typing import Any

import decision_log.ingest.metrics
import decision_log.metrics
import http_edge.metrics
import pytest
import verifier.metrics
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.conftest import DEPLOY, named

METRICS_MODULES = (
    decision_log.metrics,
    decision_log.ingest.metrics,
    http_edge.metrics,
    verifier.metrics,
)
# Series Prometheus itself writes for every target it scrapes.
SCRAPE_SERIES = {"up"}
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
# PromQL words that are not series: operators, modifiers and what follows `by`, `on`, ...
KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan", "atan2", "start", "end"}


def exported_series() -> set[str]:
    """Every series name the services' metrics modules define, with the suffixes
    prometheus-client adds to counters and histograms."""
    names: set[str] = set()
    for module in METRICS_MODULES:
        for value in vars(module).values():
            if not isinstance(value, MetricWrapperBase):
                continue
            for family in value.describe():
                suffixes = SERIES_SUFFIXES.get(family.type)
                assert suffixes is not None, f"{family.name}: {family.type} is not expected here"
                names.update(family.name + suffix for suffix in suffixes)
    return names


def series_in(expression: str) -> set[str]:
    """The series names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # label values, strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery windows
    # Label lists of aggregations and vector matching.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for found in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = found.groups()
        if call or word in KEYWORDS:
            continue
        names.add(word)
    return names


def rule_expressions(manifests: list[dict[str, Any]]) -> list[str]:
    rules = named(manifests, "PrometheusRule", "audit-trail")["spec"]["groups"]
    return [rule["expr"] for group in rules for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "audit-trail.json").read_text())
    expressions = []
    pending = list(dashboard["panels"])
    while pending:
        panel = pending.pop()
        pending.extend(panel.get("panels", []))
        expressions.extend(target["expr"] for target in panel.get("targets", []))
    return expressions


def test_series_are_read_out_of_promql() -> None:
    expression = (
        'sum by (job) (rate(audit_trail_http_requests_total{status="503",route=~"/v1/.*"}[5m]))'
        " / on (job) group_left sum by (job) (rate(x_seconds_bucket[$__rate_interval] offset 1h))"
        " and time() - max(audit_trail_verifier_last_pass_timestamp_seconds) > 1e3 or up == 0"
    )
    assert series_in(expression) == {
        "audit_trail_http_requests_total",
        "x_seconds_bucket",
        "audit_trail_verifier_last_pass_timestamp_seconds",
        "up",
    }


def test_the_exported_series_are_collected() -> None:
    series = exported_series()
    for name in (
        "audit_trail_http_request_duration_seconds_bucket",
        "audit_trail_events_refused_total",
        "audit_trail_verifier_chains_halted",
        "audit_trail_cosignature_lag_seconds",
    ):
        assert name in series
    assert "audit_trail_cosignature_lag_seconds_total" not in series


@pytest.mark.parametrize("source", ["alert rules", "dashboard"])
def test_every_series_queried_is_exported(manifests: list[dict[str, Any]], source: str) -> None:
    expressions = (
        rule_expressions(manifests) if source == "alert rules" else dashboard_expressions()
    )
    assert len(expressions) >= 15
    exported = exported_series() | SCRAPE_SERIES
    for expression in expressions:
        queried = series_in(expression)
        assert queried, expression
        assert queried <= exported, f"not exported: {sorted(queried - exported)} in {expression}"


def test_the_alerts_cover_what_an_operator_must_hear_of(manifests: list[dict[str, Any]]) -> None:
    queried = set().union(*(series_in(e) for e in rule_expressions(manifests)))
    for essential in (
        "audit_trail_cosignature_lag_seconds",  # a chain not cosigned
        "audit_trail_verifier_chains_halted",  # a finding open
        "audit_trail_projector_behind_entries",  # the projector lagging
        "audit_trail_projector_failing_chains",  # the projector stuck
        "audit_trail_events_refused_total",  # refused events rising
        "audit_trail_http_requests_total",  # 503s, readiness
        "audit_trail_verifier_completeness_gaps_open",  # events lost on the way in
        "audit_trail_verifier_completeness_sources_silent",  # a producer stopped sending
    ):
        assert essential in queried
