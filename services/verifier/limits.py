"""A bound on what callers can make the verifier do on demand.

Verifying now and re-reading a chain cost the verifier and the log real work; a caller could
otherwise ask for it in a loop. Each caller (an API key, or the log's token for one chain) gets a
bucket of ``burst`` requests, refilled at ``per_minute``; past it, 429 with Retry-After. The
scheduled work (the worker and the sweep) is not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from verifier.problems import TooManyRequests


class OnDemandLimiter:
    def __init__(
        self, *, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = burst
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[bytes, tuple[float, float]] = {}  # identity -> (tokens, when)

    def spend(self, identity: bytes) -> None:
        """Take one request from the caller's bucket, or refuse it (TooManyRequests)."""
        now = self._clock()
        tokens, then = self._buckets.get(identity, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - then) * self._rate)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / self._rate) if self._rate else 60
            raise TooManyRequests(
                "this caller asked the verifier for on-demand work too often; retry later",
                retry_after=wait,
            )
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        self._buckets[identity] = (tokens - 1.0, now)
