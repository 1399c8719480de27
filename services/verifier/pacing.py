"""The sweep's rate cap: at most so many entries re-read per second, across every chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class EntryRate:
    """A leaky bucket over entries: each window pays for its entries before it is read, so the
    log is asked for at most `per_second` entries a second on average, in bursts of one window.

    The clock and the sleep are parameters, so that tests can pace without waiting."""

    def __init__(
        self,
        per_second: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("the rate must be positive")
        self.per_second = per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._free_at = monotonic()

    async def acquire(self, entries: int) -> None:
        """Wait until `entries` more may be read without passing the rate."""
        now = self._monotonic()
        start = max(now, self._free_at)
        self._free_at = start + entries / self.per_second
        if start > now:
            await self._sleep(start - now)
