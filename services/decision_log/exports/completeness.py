"""What an export says of its producers' completeness: the verifier's figures, never the log's.

The attestation a bundle embeds signs, in its predicate, how complete each producer of the
chain was over the entries the verifier replayed up to the exported checkpoint
(``ledger.completeness``, docs/completeness.md). bundle.json repeats from it whether any producer
had gaps, and which; the report says so in its verification list, and in its warnings when a
gap is open. Without an attestation at the checkpoint there are no figures, and the bundle says
that instead.
"""

from __future__ import annotations

from typing import Any


def producer_completeness(
    predicate: dict[str, Any] | None, *, verifier: str | None
) -> dict[str, Any]:
    """bundle.json's ``producers``, from the embedded attestation's predicate."""
    figures = None if predicate is None else predicate.get("completeness")
    if not isinstance(figures, dict) or not isinstance(figures.get("covers"), dict):
        return {
            "figures_by": "verifier",
            "verifier": verifier,
            "available": False,
            "reason": "no attestation of the verifier at this checkpoint carries completeness "
            "figures",
            "any_gaps": None,
        }
    sources = [s for s in figures.get("sources") or () if isinstance(s, dict)]
    summary = figures.get("summary")
    counted = summary.get("with_gaps") if isinstance(summary, dict) else None
    unlisted = figures.get("sources_unlisted")
    return {
        "figures_by": "verifier",
        "verifier": verifier,
        "available": True,
        "covers": figures["covers"],
        "judged_at": figures.get("judged_at"),
        "summary": summary,
        # The summary counts every source; the list names those needing attention, up to a
        # bound (verifier/completeness.py), and says how many it left out.
        "any_gaps": counted > 0
        if isinstance(counted, int)
        else any(s.get("missing") for s in sources),
        "sources_unlisted": unlisted if isinstance(unlisted, int) else 0,
        "sources_with_gaps": [
            {
                "source": s.get("source"),
                "missing": s.get("missing"),
                "missing_count": s.get("missing_count"),
            }
            for s in sources
            if s.get("missing")
        ],
        "sources_with_findings": [
            {"source": s.get("source"), "findings": s.get("findings")}
            for s in sources
            if s.get("finding_count")
        ],
        "silent_sources": [s.get("source") for s in sources if s.get("silent")],
    }


def completeness_line(producers: dict[str, Any]) -> str:
    """The verification line of report.html."""
    if not producers["available"]:
        return f"producers' completeness: not known ({producers['reason']})"
    covers = producers["covers"]
    head = (
        f"producers' completeness (the verifier's figures, signed in its attestation, over "
        f"entries {covers.get('start')} to {covers.get('end')}): "
    )
    if not producers["any_gaps"]:
        return head + "no producer had gaps"
    line = head + "; ".join(
        f"{gapped['source']} is missing {gapped['missing_count']} sequence numbers ("
        + ", ".join(_range(r) for r in gapped["missing"] or ())
        + ")"
        for gapped in producers["sources_with_gaps"]
    )
    unlisted = producers.get("sources_unlisted") or 0
    if unlisted:
        line += f"; {unlisted} more sources with gaps, findings or silence are not listed"
    return line


def _range(missing: dict[str, Any]) -> str:
    low, high = missing.get("from"), missing.get("to")
    return str(low) if low == high else f"{low}-{high}"
