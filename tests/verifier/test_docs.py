"""The figures docs/verifier.md states are those of the verifier's default settings."""

from __future__ import annotations

from verifier.history import MAX_WINDOW
from verifier.settings import Settings

from tests.conftest import PROJECT_ROOT


def test_the_detection_latency_is_stated_for_the_default_settings() -> None:
    text = (PROJECT_ROOT / "docs" / "verifier.md").read_text()
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    period_hours = defaults["sweep_period_seconds"] / 3600
    rate = defaults["sweep_rate_entries_per_second"]
    assert f"(period {period_hours:g} h, cap {rate:,.0f} entries/s" in text
    assert f"**{period_hours:g} h + N / {rate:,.0f} s**" in text
    assert f"**at most {2 * period_hours:g} h**" in text
    assert f"N ≤ {rate * defaults['sweep_period_seconds']:,.0f}" in text
    assert f"default {rate:,.0f} entries/s: {rate * 86400:,.0f}\n  entries a day" in text
    assert defaults["sweep_window_entries"] == MAX_WINDOW
    assert f"windows of {MAX_WINDOW:,} entries" in text
