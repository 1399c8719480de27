"""Who may read the verifier's findings: whoever may read the chain at the log.

The verifier keeps no API keys of its own. A caller sends a tenant key of the log; the verifier
asks the log which chains that key may read (``GET /v1/chains`` with the caller's key, which
needs the auditor or admin role) and serves status for those chains only. Keys, roles, chain
limits, expiry and revocation stay in one place, the log, and a revoked key stops working here
within `cache_seconds`. Trusting the log to say who a caller is does not weaken what the
verifier checks: at worst a dishonest log could show a chain's verification status to someone,
never change it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from verifier.log_client import LogClient
from verifier.problems import NotFound, Unauthenticated


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str | None
    chains: frozenset[str]

    def require_chain(self, chain: str) -> str:
        # A chain the caller may not read answers exactly like one that does not exist.
        if self.tenant is None or chain not in self.chains:
            raise NotFound(f"no chain {chain!r}")
        return self.tenant


class CallerAuthenticator:
    def __init__(self, *, log_client: LogClient, cache_seconds: float) -> None:
        self._log = log_client
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, Caller]] = {}

    async def authenticate(self, api_key: str | None) -> Caller:
        if not api_key:
            raise Unauthenticated("send a tenant API key of the log as 'Authorization: Bearer'")
        digest = hashlib.sha256(api_key.strip().encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        names = await self._log.chains_of_caller(api_key.strip())
        tenants = {name.tenant for name in names}
        caller = Caller(
            tenant=tenants.pop() if len(tenants) == 1 else None,
            chains=frozenset(name.chain for name in names),
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, caller)
        return caller
