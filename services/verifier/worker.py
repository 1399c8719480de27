"""Follows every chain the verifier can see: poll, verify, attest on a schedule; and runs the
sweep that re-reads them (`verifier.sweep`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from http_edge.outages import log_failure

from verifier import metrics
from verifier.log_client import LogClient
from verifier.problems import Problem
from verifier.service import ChainVerifier
from verifier.sweep import Sweeper

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        *,
        verifier: ChainVerifier,
        sweeper: Sweeper,
        log_client: LogClient,
        poll_interval_seconds: float,
        attestation_interval_seconds: float,
    ) -> None:
        self._verifier = verifier
        self._sweeper = sweeper
        self._log = log_client
        self._poll_interval = poll_interval_seconds
        self._attestation_interval = attestation_interval_seconds
        self._next_attestations = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, *, attest: bool | None = None) -> None:
        """One pass over every chain; attestations too when they are due (or `attest`)."""
        names = await self._log.list_chains()
        for name in names:
            try:
                await self._verifier.verify(name)
            except Problem as problem:
                log.warning("verifying %s/%s: %s", name.tenant, name.chain, problem.detail)
        metrics.LAST_PASS.set(time.time())
        metrics.CHAINS_HALTED.set(await self._verifier.halted_count())
        metrics.COMPLETENESS_GAPS_OPEN.set(await self._verifier.open_gaps())
        metrics.COMPLETENESS_SOURCES_SILENT.set(await self._verifier.silent_sources())
        due = time.monotonic() >= self._next_attestations if attest is None else attest
        if due:
            self._next_attestations = time.monotonic() + self._attestation_interval
            for name in names:
                await self._verifier.attest(name, only_if_grown=True)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="verifier-worker")
        await self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Problem as problem:
                log.warning("verifier pass failed: %s", problem.detail)
            except Exception as error:
                log_failure(log, "verifier pass failed; retrying", error)
            await asyncio.sleep(self._poll_interval)
