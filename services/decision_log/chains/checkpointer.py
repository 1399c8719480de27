"""Signs a checkpoint after commits that grow a chain, at most about one interval behind.

Appends only mark their chain; this task signs the newest head of each marked chain once per
interval, so a busy chain gets about one checkpoint per interval, not one per group commit. A
periodic sweep signs for chains that grew in a process that stopped before its checkpointer ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from http_edge.outages import DatabaseFault, classify, log_failure
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log import metrics
from decision_log.background import BackgroundLoop
from decision_log.chains import repository
from decision_log.chains.service import checkpoint_if_grown
from decision_log.signing import LogSigner

log = logging.getLogger(__name__)


class Checkpointer(BackgroundLoop):
    name = "checkpointer"

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        signer: LogSigner,
        interval_seconds: float,
        sweep_every_seconds: float = 5.0,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._interval = interval_seconds
        self._sweep_every = sweep_every_seconds
        self._dirty: set[int] = set()
        super().__init__()

    def mark_grown(self, chain_id: int) -> None:
        self._dirty.add(chain_id)
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        # Sign what the last commits added, so a clean shutdown leaves no chain behind.
        await self.sign_pending()

    async def sign_pending(self) -> None:
        """Sign each marked chain's head. A chain whose signing fails (its stored tree no
        longer agrees with its entries, say) stays marked and is retried on the next pass; it
        never holds back the chains after it (invariant 8). A database outage ends the pass."""
        chains, self._dirty = sorted(self._dirty), set()
        for position, chain_id in enumerate(chains):
            try:
                async with self._engine.begin() as connection:
                    signed = await checkpoint_if_grown(
                        connection, signer=self._signer, chain_id=chain_id
                    )
            except Exception as error:
                self._dirty.add(chain_id)
                if classify(error) is DatabaseFault.UNAVAILABLE:
                    self._dirty.update(chains[position + 1 :])
                    raise
                log_failure(log, f"checkpoint of chain {chain_id} not signed; retrying", error)
                continue
            if signed is not None:
                metrics.CHECKPOINTS_SIGNED.inc()
                fields = {"chain_id": chain_id, "size": signed}
                log.info("checkpoint signed", extra={"fields": fields})

    async def sweep(self) -> None:
        async with self._engine.connect() as connection:
            behind = await repository.chains_behind_checkpoint(connection)
            metrics.CHECKPOINT_LAG.set(await repository.checkpoint_lag_seconds(connection))
            metrics.COSIGNATURE_LAG.set(await repository.cosignature_lag_seconds(connection))
        self._dirty.update(behind)
        await self.sign_pending()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while not self._stopping:
            try:
                timeout = max(0.0, next_sweep - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                if loop.time() >= next_sweep:
                    await self.sweep()
                    next_sweep = loop.time() + self._sweep_every
                else:
                    await self.sign_pending()
                await asyncio.sleep(self._interval)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log_failure(log, "checkpoint signing failed; retrying", error)
                await asyncio.sleep(self._interval)
