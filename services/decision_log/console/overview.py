"""The overview page's facts about each of the tenant's chains, from the services the API uses:
the chain's head and read model (``chains.service.chain_info``), its newest checkpoint that a
witness's cosignature verifies now (``evidence.latest_verified_checkpoint``, as the decision
view chooses its evidence), the verifier's own status, findings included, and its figures on
the chain's producers (``chains.sources.producer_sources``, as ``GET .../sources``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from decision_log.chains import service as chains
from decision_log.chains.schemas import ChainInfo, ChainSources, ProducerSource
from decision_log.chains.sources import producer_sources
from decision_log.evidence import CheckedCheckpoint, latest_verified_checkpoint
from decision_log.keys.service import Principal
from decision_log.state import AppState
from decision_log.verifier_client import VerifierUnavailable


@dataclass(frozen=True)
class VerifierWord:
    """What the verifier says of a chain: its status, or why it could not say."""

    configured: bool
    unavailable: str | None = None
    status: dict[str, Any] | None = None

    @property
    def open_findings(self) -> list[dict[str, Any]]:
        findings = (self.status or {}).get("findings") or []
        return [f for f in findings if isinstance(f, dict) and not f.get("acknowledged")]


# Producers needing attention named per chain; the rest are counted (GET .../sources lists all).
OVERVIEW_PRODUCERS = 20


@dataclass(frozen=True)
class ChainOverview:
    info: ChainInfo
    cosigned: CheckedCheckpoint | None
    verifier: VerifierWord
    now: datetime
    producers: ChainSources | None = None

    @property
    def troubled_producers(self) -> list[ProducerSource]:
        """Producers with numbers missing (overdue or not yet), findings or silence: what an
        auditor must look at (the verifier lists only those, `OVERVIEW_PRODUCERS` at most)."""
        return [] if self.producers is None else self.producers.sources

    @property
    def producer_count(self) -> int:
        summary = None if self.producers is None else self.producers.summary
        return (summary or {}).get("sources", 0)

    @property
    def checkpoint_age_seconds(self) -> float | None:
        checkpoint = self.info.checkpoint
        return None if checkpoint is None else (self.now - checkpoint.signed_at).total_seconds()


async def chain_overviews(state: AppState, principal: Principal) -> list[ChainOverview]:
    now = state.clock()
    log_verifier = state.signer.note_signer.verifier
    found = []
    async with state.engine.connect() as connection:
        rows = [
            row
            for row in await chains.list_chains(connection, tenant_id=principal.tenant_id)
            if principal.may_use_chain(row.slug)
        ]
        for row in rows:
            info = chains.chain_info(row, signer=state.signer)
            cosigned = await latest_verified_checkpoint(
                connection, chain_id=row.id, origin=info.origin, log_verifier=log_verifier
            )
            found.append((info, cosigned))
    overviews = []
    for info, cosigned in found:
        overviews.append(
            ChainOverview(
                info=info,
                cosigned=cosigned,
                verifier=await _verifier_word(state, tenant=principal.tenant, chain=info.chain),
                now=now,
                producers=(
                    await producer_sources(
                        state.verifier,
                        tenant=principal.tenant,
                        chain=info.chain,
                        needing_attention=True,
                        limit=OVERVIEW_PRODUCERS,
                    )
                    if state.verifier.configured
                    else None
                ),
            )
        )
    return overviews


async def _verifier_word(state: AppState, *, tenant: str, chain: str) -> VerifierWord:
    if not state.verifier.configured:
        return VerifierWord(configured=False)
    answer = await state.verifier.status(tenant=tenant, chain=chain)
    if isinstance(answer, VerifierUnavailable):
        return VerifierWord(configured=True, unavailable=answer.reason)
    return VerifierWord(configured=True, status=answer)
