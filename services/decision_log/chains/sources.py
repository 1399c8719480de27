"""A chain's producers as the independent verifier sees them (docs/completeness.md).

The log computes no completeness figures of its own: it asks its verifier, which folds them
from the entries it replayed and signs them in its attestations, and repeats them, labelled as
the verifier's. A verifier that is not configured or does not answer is said to be so, with
no figures, never an error.
"""

from __future__ import annotations

from ledger.completeness import CLOSED_EVENT_TYPE
from ledger.leaf import format_received_at
from pydantic import ValidationError

from decision_log import admin_actions
from decision_log.admin_actions import api_actor
from decision_log.chains.schemas import (
    ChainSources,
    ProducerClose,
    ProducerClosed,
    ProducerSource,
    SourcesVerifier,
)
from decision_log.decisions.admin_records import flush_after_change
from decision_log.events.service import append_made_event
from decision_log.keys.service import Principal
from decision_log.problems import Conflict, NotFound, Unavailable
from decision_log.state import AppState
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
    query = {"limit": str(limit)}
    if source is not None:
        query["source"] = source
    if needing_attention:
        query["needing_attention"] = "true"
    if after is not None:
        query["after"] = after
    answer = await verifier.completeness(tenant=tenant, chain=chain, query=query)
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


async def close_producer(
    state: AppState, principal: Principal, *, chain: str, request: ProducerClose
) -> ProducerClosed:
    """Close a producer that cannot close itself (its process killed): its closing event,
    numbered after the highest the verifier saw once it has caught up, appended on its behalf
    with who and why, and the action recorded in the access log (docs/completeness.md)."""
    caught_up = await state.verifier.verify_now(tenant=principal.tenant, chain=chain)
    if isinstance(caught_up, VerifierUnavailable):
        raise Unavailable(f"the verifier could not check the chain first: {caught_up.reason}")
    figures = await producer_sources(
        state.verifier, tenant=principal.tenant, chain=chain, source=request.source
    )
    if not figures.verifier.available:
        raise Unavailable(f"the verifier's figures are not available: {figures.verifier.reason}")
    if not figures.sources:
        raise NotFound(
            f"the verifier has seen no producer {request.source!r} in chain {chain!r}",
            pointer="/source",
        )
    (producer,) = figures.sources
    if producer.closed:
        raise Conflict(f"producer {request.source!r} is closed already", pointer="/source")
    if producer.highest_sequence is None:
        raise Conflict(
            f"producer {request.source!r} numbered none of its events: there is no number to "
            "close it at",
            pointer="/source",
        )
    last = f"{int(producer.highest_sequence) + 1:020d}"
    now = state.clock()
    async with state.engine.begin() as connection:
        await admin_actions.note(
            connection,
            tenant_id=principal.tenant_id,
            actor=api_actor(principal),
            action="producer.close",
            target={"chain": chain, "source": request.source},
            reason=request.reason,
            changes={"last_sequence": last},
            at=now,
        )
    await flush_after_change(state, tenant_id=principal.tenant_id)
    event = {
        "specversion": "1.0",
        "id": f"closed-on-behalf-{last}",
        "source": request.source,
        "type": CLOSED_EVENT_TYPE,
        "time": format_received_at(now),
        "sequence": last,
        "datacontenttype": "application/json",
        "data": {"last_sequence": last, "closed_by": principal.key_id, "reason": request.reason},
    }
    receipt = await append_made_event(state, principal, chain, event)
    return ProducerClosed(chain=chain, source=request.source, last_sequence=last, receipt=receipt)
