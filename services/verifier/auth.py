"""Who may read the verifier's findings: whoever may read the chain at the log.

The verifier keeps no API keys of its own. A person's caller sends a tenant key of the log; the
verifier asks the log which chains that key may read (``GET /v1/chains`` with the caller's key,
which needs the auditor or admin role) and serves status for those chains only. Keys, roles,
chain limits, expiry and revocation stay in one place, the log, and a revoked key stops working
here within `cache_seconds`. Trusting the log to say who a caller is does not weaken what the
verifier checks: at worst a dishonest log could show a chain's verification status to someone,
never change it.

The log itself, when it asks on an auditor's behalf, never passes that auditor's key on: it
sends a token it signed with its own key for this verifier, one chain, a scope (``status``,
``verify``) and a minute or so (``ledger.tokens``), checked here against the log key the
verifier already trusts, with no call back to the log.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.errors import VerificationError
from ledger.keys import VerifyingKey
from ledger.tokens import SCOPES, is_token, open_token

from verifier.log_client import LogClient
from verifier.problems import Forbidden, NotFound, Unauthenticated


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str | None
    chains: frozenset[str]
    scope: frozenset[str] = SCOPES
    # What identifies the caller for rate limits: a digest of its key, or the log's token's
    # tenant and chain.
    identity: bytes = b""

    def require_chain(self, chain: str, *, scope: str = "status") -> str:
        # A chain the caller may not read answers exactly like one that does not exist.
        if self.tenant is None or chain not in self.chains:
            raise NotFound(f"no chain {chain!r}")
        if scope not in self.scope:
            raise Forbidden(f"this credential may not {scope} chains")
        return self.tenant


class CallerAuthenticator:
    def __init__(
        self,
        *,
        log_client: LogClient,
        cache_seconds: float,
        log_key: VerifyingKey,
        name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log_client
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, Caller]] = {}
        self._log_key = log_key
        self._name = name
        self._clock = clock

    async def authenticate(self, api_key: str | None) -> Caller:
        if not api_key:
            raise Unauthenticated("send a tenant API key of the log as 'Authorization: Bearer'")
        if is_token(api_key.strip()):
            return self._from_token(api_key.strip())
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
            identity=digest,
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, caller)
        return caller

    def _from_token(self, token: str) -> Caller:
        try:
            claims = open_token(token, self._log_key, audience=self._name, now=int(self._clock()))
        except VerificationError as error:
            raise Unauthenticated(f"the log's token is refused: {error}") from None
        return Caller(
            tenant=claims.tenant,
            chains=frozenset((claims.chain,)),
            scope=claims.scope,
            identity=f"log:{claims.tenant}/{claims.chain}".encode(),
        )
