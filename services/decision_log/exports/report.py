"""What a person reads first in a bundle: the HTML summary and the README on how to verify it."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ledger.bundle import DECISIONS_EXPORT_LIMIT, describe_selection

from decision_log.decisions.event_types import (
    DECISION_CONTESTED,
    DECISION_OVERRIDDEN,
    DECISION_RECORDED,
    DECISION_REVIEWED,
    OUTCOME_OBSERVED,
    RECORDS_ACCESSED,
)
from decision_log.decisions.projection import member

NOT_STATED = "(not stated)"


def _stated(*values: object) -> str:
    """The values a producer gave, in words; a value it left out is said to be so."""
    return " ".join(NOT_STATED if value is None else str(value) for value in values)


@dataclass
class BundleSummary:
    """Counts over the exported events, gathered while they are written."""

    entries: int = 0
    first_received: str | None = None
    last_received: str | None = None
    event_types: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    systems: Counter[str] = field(default_factory=Counter)
    subjects: set[str] = field(default_factory=set)

    def add(self, leaf: dict[str, Any]) -> None:
        self.entries += 1
        received = leaf.get("received_at")
        if self.first_received is None:
            self.first_received = received
        self.last_received = received
        event = leaf.get("event") or {}
        kind = str(event.get("type"))
        self.event_types[kind] += 1
        if kind == DECISION_RECORDED:
            data = event.get("data")
            self.decisions[_stated(member(data, "output", "decision"))] += 1
            self.models[
                _stated(member(data, "model", "name"), member(data, "model", "version"))
            ] += 1
            self.systems[_stated(member(data, "system", "name"))] += 1
        subject = event.get("subject")
        if isinstance(subject, str) and kind != RECORDS_ACCESSED:
            self.subjects.add(subject)


def _table(title: str, counts: Counter[str]) -> str:
    if not counts:
        return f"<h2>{html.escape(title)}</h2><p>No events of this kind.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{count}</td></tr>"
        for name, count in counts.most_common()
    )
    return f"<h2>{html.escape(title)}</h2><table><tr><th></th><th>count</th></tr>{rows}</table>"


OVERRIDE_NOTICE = (
    "NOT CERTIFIED: exported under an administrator's override although checks failed. The log "
    "does not vouch for what is in this bundle; the failures are listed below."
)


def warnings(info: dict[str, Any]) -> list[str]:
    """What a reader must see before anything else, one paragraph each: the override the bundle
    was built under (with every check that failed), the acknowledged findings it spans."""
    paragraphs = []
    override = info.get("override")
    if override:
        failures = override.get("failures") or []
        lines = [
            override["notice"],
            f"Reason given: {override['reason']}",
            f"Requested by API key {override['requested_by']} (the override is on the tenant's "
            "access log).",
        ]
        if override.get("failures_total"):
            lines.append(f"Checks that failed at export time ({override['failures_total']}):")
            lines.extend(f"- {_failure_line(failure)}" for failure in failures)
            if override["failures_total"] > len(failures):
                lines.append(f"- ... and {override['failures_total'] - len(failures)} more")
        paragraphs.append(lines)
    for finding in info.get("acknowledged_findings") or []:
        paragraphs.append(
            [
                f"This export's history spans finding {finding.get('id')} of the independent "
                f"verifier: {finding.get('kind')} at index {finding.get('first_bad_index')}. "
                f"An operator ({finding.get('operator')}) acknowledged it at "
                f"{finding.get('acknowledged_at')}: {finding.get('reason')}. An acknowledgement "
                "does not re-certify the history before it."
            ]
        )
    producers = info.get("producers") or {}
    if producers.get("any_gaps"):
        paragraphs.append(
            [
                "Producers had gaps: events numbered by their producers never reached the log "
                "(the independent verifier's figures, signed in its attestation):",
                *(
                    f"- {gapped.get('source')}: {gapped.get('missing_count')} missing"
                    for gapped in producers.get("sources_with_gaps") or ()
                ),
            ]
        )
    return ["\n".join(lines) for lines in paragraphs]


def warnings_text(info: dict[str, Any]) -> str:
    """The warnings as the head of README.txt (empty when there are none)."""
    found = warnings(info)
    if not found:
        return ""
    rule = "!" * 78
    return f"{rule}\n" + "\n\n".join(found) + f"\n{rule}\n\n"


def _failure_line(failure: dict[str, Any]) -> str:
    where = "" if failure.get("index") is None else f"entry {failure['index']}, "
    check = failure.get("check") or failure.get("column") or failure.get("type")
    return f"{where}{check}: {failure.get('detail')}"


def render_report(
    *, info: dict[str, Any], summary: BundleSummary, verification: list[str]
) -> bytes:
    checkpoint = info["checkpoint"]
    facts = [
        ("Chain", f"{info['tenant']}/{info['chain']}"),
        ("Checkpoint origin", info["origin"]),
        ("Selection", describe_selection(info["selection"], chain=info["chain"])),
        ("Entries", str(summary.entries)),
        ("Decisions touched", str(len(summary.subjects))),
        ("Period (received)", f"{summary.first_received or '-'} to {summary.last_received or '-'}"),
        ("Checkpoint", f"size {checkpoint['size']}, root {checkpoint['root_hash']}"),
        (
            "Cosigned",
            "yes (a witness's cosignature verified at export time)"
            if checkpoint["cosigned"]
            else "no (latest checkpoint: no witness cosignature verifies over one that covers "
            "the selection)",
        ),
        ("Exported at", info["created_at"]),
    ]
    reviews = Counter(
        {
            "reviews": summary.event_types[DECISION_REVIEWED],
            "overrides": summary.event_types[DECISION_OVERRIDDEN],
            "contests": summary.event_types[DECISION_CONTESTED],
            "outcomes observed": summary.event_types[OUTCOME_OBSERVED],
        }
    )
    banner = "".join(
        '<div class="warning">'
        + "".join(f"<p>{html.escape(line)}</p>" for line in paragraph.split("\n"))
        + "</div>"
        for paragraph in warnings(info)
    )
    body = "".join(
        (
            banner,
            "<h1>Audit trail export</h1><table>",
            "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts
            ),
            "</table><h2>Verification at export time</h2><ul>",
            "".join(f"<li>{html.escape(line)}</li>" for line in verification),
            "</ul>",
            f"<p>Note: {html.escape(DECISIONS_EXPORT_LIMIT)}.</p>"
            if info["selection"].get("kind") == "decisions"
            else "",
            "<p>This page is a summary and is not itself evidence: run "
            "<code>audit-trail verify-bundle</code> (see README.txt).</p>",
            _table("Decisions by outcome", summary.decisions),
            _table("Decisions by model and version", summary.models),
            _table("Decisions by AI system", summary.systems),
            _table("Human oversight and follow-up", +reviews),
            _table("Events by type", summary.event_types),
        )
    )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        ".warning{border:3px solid #b00;background:#fee;padding:.2em 1em;margin-bottom:1em}"
        ".warning p{margin:.4em 0}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:left}"
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>Audit trail export {html.escape(info['chain'])}</title>"
        f"<style>{style}</style><body>{body}</body></html>\n"
    ).encode()


README = """\
Audit trail export bundle
=========================

This file is a signed, self-contained export of records from an audit-trail log
({origin}). Everything in it can be checked offline with the log's public key and,
for the independent verifier's cosignature and attestation, the verifier's public
key. Obtain those keys from their owners, not from this bundle: the copies under
keys/ are for convenience and prove nothing by themselves.

With the audit-trail CLI (installed with the project; it needs no database and no network):

    audit-trail verify-bundle THIS.zip --log-key 'LOG VERIFIER KEY' \\
        --verifier-key 'VERIFIER COSIGNATURE KEY'

It exits 0 only when every check holds under both keys; 1 when a check fails,
naming the first file, entry and check that fails; 2 without --verifier-key
(consistent with the log key only, not witnessed); 3 when the bundle spans a
finding of the verifier that an operator acknowledged, unless it is accepted with
--accept-acknowledged ID.

By hand, after unzipping:

1. Digests: `sha256sum -c SHA256SUMS` checks every file listed.
2. Manifest: manifest.dsse.json is a DSSE envelope (payload type
   application/vnd.in-toto+json) signed by the log's Ed25519 key; its payload is an
   in-toto Statement v1 whose subjects are the same files and SHA-256 digests as
   SHA256SUMS. Any DSSE verifier (for example securesystemslib) checks it with the
   log's public key (keys/log.pub.pem).
3. Checkpoint: checkpoint.txt is a C2SP signed note (tlog-checkpoint): origin,
   tree size and base64 RFC 6962 root, signed by the log (key name {log_name}) and
   cosigned by the verifier (C2SP tlog-cosignature). Any signed-note verifier
   checks it with the keys' verifier-key strings (keys/*.vkey).
4. Entries: entries.jsonl holds one leaf per line, exactly as committed (RFC 8785
   canonical JSON). A leaf's hash is SHA-256(0x00 || leaf bytes); each leaf's
   "prev" is the hash of the leaf before it in the chain.
5. Inclusion: inclusion-proofs.tlog-proof holds one C2SP tlog-proof@v1 document
   per entry, in the same order as entries.jsonl; each starts with the line
   "c2sp.org/tlog-proof@v1" and proves that entry's leaf hash is in the tree of
   checkpoint.txt (RFC 9162 section 2.1.3.2). Split the file at those lines to get
   standalone .tlog-proof files.
6. Consistency: consistency/<size>.tlog-consistency proves that checkpoint.txt
   extends the log's earlier checkpoint at that size (RFC 9162 section 2.1.4.2); the
   earlier checkpoint is included, signed by the log, for comparison with a copy
   you already hold.
7. Attestation: attestation.dsse.json is the verifier's in-toto attestation (DSSE,
   signed by the verifier's key) that it replayed the chain up to the checkpoint's
   size from the raw entries and found it intact.
8. Schemas: schemas/ holds the JSON Schemas of the event types, report.html a
   summary for people.

Personal data that was sealed at append time appears only as ciphertext; where it
has since been erased (GDPR Art. 17) its key no longer exists, and the records
still verify because the proofs cover the sealed bytes.
"""
