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

# A page of a chain's producers, as the verifier lists them at most.
MAX_SOURCES_LISTED = 1000


async def producer_sources(
    verifier: VerifierClient,
    *,
    tenant: str,
    chain: str,
    source: str | None = None,
    needing_attention: bool = False,
    limit: int = MAX_SOURCES_LISTED,
    after: str | None = None,
) -> ChainSources:
    """The verifier's figures of the chain's producers: one `source`, or a page of `limit` in
    order of their names after `after`, only those `needing_attention` if asked; the summary
    counts them all."""
    answer = await verifier.completeness(
        tenant=tenant,
        chain=chain,
        selection={
            "source": source,
            "needing_attention": needing_attention or None,
            "limit": limit,
            "after": after,
        },
    )
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
        next_after = answer.get("next_after")
        return ChainSources(
            chain=chain,
            verifier=figures,
            summary=answer.get("summary"),
            sources=sources,
            next_after=next_after if isinstance(next_after, str) else None,
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
