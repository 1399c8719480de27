"""What the independent verifier says of a chain, asked before an export certifies any of it.

A bundle claims what the verifier vouches for, so the export asks it first, through
``state.verifier``: its public keys, to verify the chain now (it then cosigns the newest
checkpoint it has checked and attests it), the chain's status (its findings) and its
attestations. The export is refused

- with ``integrity-failure``, check ``verifier-finding``, while the verifier has a finding on
  the chain that no operator has acknowledged: it cosigns nothing of the chain meanwhile;
- with ``verifier-unavailable`` when no verifier is configured, or it does not answer or refuses.

Under an administrator's override the refusal is written down instead, and the export goes on
with whatever the verifier did say. A finding that an operator has acknowledged refuses
nothing, but every export whose checkpoint spans it names it (``acknowledged_findings``).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

from http_edge.problems import IntegrityFailure
from ledger.bundle import BundleError, acknowledged_findings, check_attestation
from ledger.errors import VerificationError
from ledger.note import Checkpoint, NoteVerifier

from decision_log.evidence import CheckedCheckpoint
from decision_log.problems import Problem, VerifierRequired
from decision_log.verifier_client import VerifierClient, VerifierUnavailable


@dataclass
class VerifierVerdict:
    """The verifier's answers (None where it gave none) and, if the export must stop, why."""

    keys: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    attestations: list[dict[str, Any]] = field(default_factory=list)
    refusal: Problem | None = None

    @property
    def cosignature_key(self) -> NoteVerifier | None:
        vkey = None if self.keys is None else self.keys.get("cosignature_verifier_key")
        try:
            return None if not isinstance(vkey, str) else NoteVerifier.from_verifier_key(vkey)
        except VerificationError:
            return None

    def attestation_for(
        self, checkpoint: CheckedCheckpoint, *, origin: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The newest attestation that the chain passed the verifier's checks up to exactly
        this checkpoint, checked as ``verify-bundle`` checks it, with its predicate; (None,
        None) if there is none."""
        key = self.cosignature_key
        if key is None:
            return None, None
        attested = Checkpoint(origin=origin, size=checkpoint.size, root_hash=checkpoint.root_hash)
        for attestation in self.attestations:
            envelope = attestation.get("envelope")
            if attestation.get("size") != checkpoint.size or not isinstance(envelope, dict):
                continue
            try:
                predicate = check_attestation(envelope, checkpoint=attested, verifier_key=key)
            except BundleError:
                continue
            return envelope, predicate
        return None, None

    def latest_attestation(self) -> dict[str, Any] | None:
        """The verifier's newest attestation as it is, whatever it says (for an overridden
        export, which carries the verifier's verdict even when it is a failure)."""
        for attestation in self.attestations:
            envelope = attestation.get("envelope")
            if isinstance(envelope, dict):
                return envelope
        return None

    def acknowledged_findings(
        self, *, size: int, predicate: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """The acknowledged findings a checkpoint of ``size`` spans: those the embedded
        attestation names, and those the chain's status lists below that size."""
        found: dict[Any, dict[str, Any]] = {}
        if predicate is not None:
            with contextlib.suppress(BundleError):  # verify-bundle will say what is wrong
                for finding in acknowledged_findings(predicate):
                    # The verifier names the operator ``acknowledged_by``.
                    operator = finding.get("operator", finding.get("acknowledged_by"))
                    found[finding.get("id")] = {**finding, "operator": operator}
        for finding in _findings(self.status):
            acknowledged = finding.get("acknowledged")
            first = finding.get("first_bad_index")
            if not isinstance(acknowledged, dict) or (isinstance(first, int) and first >= size):
                continue
            found.setdefault(
                finding.get("id"),
                {
                    "id": finding.get("id"),
                    "kind": finding.get("kind"),
                    "first_bad_index": first,
                    "operator": acknowledged.get("operator"),
                    "reason": acknowledged.get("reason"),
                    "acknowledged_at": acknowledged.get("acknowledged_at"),
                },
            )
        return list(found.values())


async def ask_verifier(verifier: VerifierClient, *, tenant: str, chain: str) -> VerifierVerdict:
    """Ask the verifier to verify the chain now, then for its status and attestations."""
    if not verifier.configured:
        return VerifierVerdict(refusal=_unavailable("no verifier is configured for this log"))
    keys = await verifier.keys()
    if isinstance(keys, VerifierUnavailable):
        return VerifierVerdict(refusal=_unavailable(keys.reason))
    verified = await verifier.verify_now(tenant=tenant, chain=chain)
    status = await verifier.status(tenant=tenant, chain=chain)
    if isinstance(status, VerifierUnavailable):
        return VerifierVerdict(keys=keys, refusal=_unavailable(status.reason))
    attestations = await verifier.attestations(tenant=tenant, chain=chain)
    verdict = VerifierVerdict(
        keys=keys,
        status=status,
        attestations=[] if isinstance(attestations, VerifierUnavailable) else attestations,
    )
    # A finding says more than a verifier that would not verify (it may refuse because of it).
    verdict.refusal = _finding_refusal(chain, status)
    if verdict.refusal is None:
        for answer in (verified, attestations):
            if isinstance(answer, VerifierUnavailable):
                verdict.refusal = _unavailable(answer.reason)
                break
    return verdict


def _unavailable(reason: str) -> VerifierRequired:
    return VerifierRequired(
        f"the independent verifier could not vouch for this export ({reason}); an export is "
        "certified only with it (an administrator may override, with a reason)",
        reason=reason,
    )


def _findings(status: dict[str, Any] | None) -> list[dict[str, Any]]:
    findings = None if status is None else status.get("findings")
    return [f for f in findings or () if isinstance(f, dict)]


def _finding_refusal(chain: str, status: dict[str, Any]) -> IntegrityFailure | None:
    open_findings = [f for f in _findings(status) if f.get("acknowledged") is None]
    if not open_findings and status.get("halted") is not True:
        return None
    if not open_findings:
        return IntegrityFailure(
            f"the verifier has halted chain {chain!r} on a finding; it vouches for none of it "
            "until an operator acknowledges the finding",
            check="verifier-finding",
        )
    finding = min(open_findings, key=_earliest)
    first = finding.get("first_bad_index")
    evidence = finding.get("evidence") or {}
    expected, found = evidence.get("expected"), evidence.get("found")
    return IntegrityFailure(
        f"the verifier has an unacknowledged {finding.get('kind')} finding on chain {chain!r}"
        + ("" if first is None else f" at index {first}")
        + f": {finding.get('detail')}; it vouches for none of the chain until an operator "
        "acknowledges it",
        check="verifier-finding",
        index=first if isinstance(first, int) else None,
        expected=expected if isinstance(expected, str) else None,
        found=found if isinstance(found, str) else None,
        finding={
            "id": finding.get("id"),
            "kind": finding.get("kind"),
            "first_bad_index": first,
            "detail": finding.get("detail"),
            "found_at": finding.get("found_at"),
        },
    )


def _earliest(finding: dict[str, Any]) -> tuple[int, int]:
    """Order findings by their first bad index (one without comes last), then by id."""
    first, number = finding.get("first_bad_index"), finding.get("id")
    return (
        first if isinstance(first, int) else sys.maxsize,
        number if isinstance(number, int) else sys.maxsize,
    )
