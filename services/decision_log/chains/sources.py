"""A chain's producers as the independent verifier sees them (docs/completeness.md).

The log computes no completeness figures of its own: it asks its verifier, which folds them
from the entries it replayed and signs them in its attestations, and repeats them, labelled as
the verifier's. A verifier that is not configured or does not answer is said to be so, with
no figures, never an error.
"""

from __future__ import annotations

from pydantic import ValidationError

from decision_log.chains.schemas import ChainSources, ProducerSource, SourcesVerifier
from decision_log.verifier_client import VerifierClient, VerifierUnavailable


async def producer_sources(
    verifier: VerifierClient, *, tenant: str, chain: str, source: str | None
) -> ChainSources:
    answer = await verifier.completeness(tenant=tenant, chain=chain, source=source)
    if isinstance(answer, VerifierUnavailable):
        return _unavailable(chain, f"the verifier could not be asked: {answer.reason}")
    listed = answer.get("sources")
    if not isinstance(listed, list):
        return _unavailable(chain, "the verifier's completeness figures are malformed")
    try:
        sources = [ProducerSource.model_validate(item) for item in listed]
        figures = SourcesVerifier(
            available=True,
            reason=None if answer.get("covers") else "the verifier has replayed no entry yet",
            name=answer.get("verifier"),
            verified_size=answer.get("verified_size"),
            covers=answer.get("covers"),
            judged_at=answer.get("judged_at"),
            gap_age_seconds=answer.get("gap_age_seconds"),
            silent_after_intervals=answer.get("silent_after_intervals"),
            attestation=answer.get("attestation"),
        )
        return ChainSources(
            chain=chain, verifier=figures, summary=answer.get("summary"), sources=sources
        )
    except ValidationError:
        return _unavailable(chain, "the verifier's completeness figures are malformed")


def _unavailable(chain: str, reason: str) -> ChainSources:
    return ChainSources(
        chain=chain,
        verifier=SourcesVerifier(
            available=False,
            reason=reason,
            name=None,
            verified_size=None,
            covers=None,
            judged_at=None,
            gap_age_seconds=None,
            silent_after_intervals=None,
            attestation=None,
        ),
        summary=None,
        sources=[],
    )
