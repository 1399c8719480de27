"""The log's calls to its verifier (``AUDIT_TRAIL_VERIFIER_URL``), built in one place.

The log asks its verifier for four things: its public keys, to verify a chain now (before an
export, so that the newest checkpoint gets cosigned), its attestations, signed DSSE envelopes
that the log embeds as they are, and the completeness of the chain's producers as the verifier
folded it from the entries it replayed (which the log repeats as the verifier's). A verifier
that is not configured, does not answer or refuses is reported as such (``VerifierUnavailable``),
never hidden: callers decide whether to go on without it (a decision view says so) or to refuse
(an export).

The caller's own API key never goes to the verifier, which may be run by someone else: each
call carries a token the log signs for that verifier, one chain, one purpose and a minute
(``ledger.tokens``). A verifier reached over the network needs HTTPS, so that even those
tokens never travel in clear; only a loopback address may use plain HTTP.

Path segments are quoted, so a chain name can never reach another route of the verifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from ledger.tokens import TokenClaims, mint

from decision_log.signing import LogSigner

VERIFY_TIMEOUT_SECONDS = 30.0
# How long a token the log signs for one call stays good (the call takes at most the timeout).
TOKEN_SECONDS = 60
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def require_private_transport(base_url: str, *, plain_http: bool = False) -> None:
    """Refuse a verifier URL that would carry tokens in clear over a network, unless the operator
    said the network is private (``plain_http``)."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    if parts.scheme == "https" or (parts.scheme == "http" and (loopback or plain_http)):
        return
    raise ValueError(
        f"the verifier URL {base_url!r} must use https (plain http only to a loopback address, "
        "or with AUDIT_TRAIL_VERIFIER_PLAIN_HTTP=true inside a private network)"
    )


@dataclass(frozen=True)
class VerifierUnavailable:
    """Why the verifier could not help: not configured, no answer, or a refusal."""

    reason: str
    url: str | None = None
    status: int | None = None


class VerifierClient:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str | None,
        signer: LogSigner,
        clock: Callable[[], float] = time.time,
        plain_http: bool = False,
    ) -> None:
        self._http = http
        self._base = None if not base_url else base_url.rstrip("/")
        if self._base is not None:
            require_private_transport(self._base, plain_http=plain_http)
        self._signer = signer
        self._clock = clock
        self._audience: str | None = None

    @property
    def configured(self) -> bool:
        return self._base is not None

    def chain_url(self, chain: str) -> str:
        assert self._base is not None
        return f"{self._base}/v1/chains/{quote(chain, safe='')}"

    async def keys(self) -> dict[str, Any] | VerifierUnavailable:
        return await self._json("GET", "/v1/keys", credential=None)

    async def verify_now(self, *, tenant: str, chain: str) -> dict[str, Any] | VerifierUnavailable:
        credential = await self._token(tenant=tenant, chain=chain, scope="verify")
        if isinstance(credential, VerifierUnavailable):
            return credential
        return await self._json(
            "POST",
            self._chain_path(chain, "/verify"),
            credential=credential,
            seconds=VERIFY_TIMEOUT_SECONDS,
        )

    async def status(self, *, tenant: str, chain: str) -> dict[str, Any] | VerifierUnavailable:
        credential = await self._token(tenant=tenant, chain=chain, scope="status")
        if isinstance(credential, VerifierUnavailable):
            return credential
        return await self._json("GET", self._chain_path(chain, ""), credential=credential)

    async def attestations(
        self, *, tenant: str, chain: str
    ) -> list[dict[str, Any]] | VerifierUnavailable:
        """The chain's attestations, newest first (each with its signed ``envelope``)."""
        credential = await self._token(tenant=tenant, chain=chain, scope="status")
        if isinstance(credential, VerifierUnavailable):
            return credential
        answer = await self._json(
            "GET",
            self._chain_path(chain, "/attestations"),
            credential=credential,
            params={"limit": 1000},
        )
        if isinstance(answer, VerifierUnavailable):
            return answer
        found = answer.get("attestations")
        if not isinstance(found, list):
            return VerifierUnavailable("the verifier's attestation list is malformed")
        return found

    async def completeness(
        self, *, tenant: str, chain: str, query: dict[str, str]
    ) -> dict[str, Any] | VerifierUnavailable:
        """The verifier's completeness figures of the chain's producers, as `query` (its route's
        query: source, needing_attention, limit, after) picks them."""
        credential = await self._token(tenant=tenant, chain=chain, scope="status")
        if isinstance(credential, VerifierUnavailable):
            return credential
        return await self._json(
            "GET",
            self._chain_path(chain, "/completeness"),
            credential=credential,
            params=query,
        )

    async def _token(self, *, tenant: str, chain: str, scope: str) -> str | VerifierUnavailable:
        """A token for this verifier (named in its public keys), this chain and this purpose."""
        if self._audience is None:
            keys = await self.keys()
            if isinstance(keys, VerifierUnavailable):
                return keys
            name = keys.get("name")
            if not isinstance(name, str):
                return VerifierUnavailable("the verifier does not name itself in /v1/keys")
            self._audience = name
        claims = TokenClaims(
            issuer=self._signer.origin,
            audience=self._audience,
            tenant=tenant,
            chain=chain,
            scope=frozenset((scope,)),
            expires=int(self._clock()) + TOKEN_SECONDS,
        )
        return mint(claims, self._signer.key)

    def _chain_path(self, chain: str, tail: str) -> str:
        return f"/v1/chains/{quote(chain, safe='')}{tail}"

    async def _json(
        self,
        method: str,
        path: str,
        *,
        credential: str | None,
        seconds: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any] | VerifierUnavailable:
        if self._base is None:
            return VerifierUnavailable("no verifier is configured for this log")
        url = self._base + path
        headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
        try:
            response = await self._http.request(
                method,
                url,
                headers=headers,
                params=params,
                timeout=seconds if seconds is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as error:
            return VerifierUnavailable(f"no answer ({type(error).__name__})", url=url)
        if response.status_code != 200:
            return VerifierUnavailable(
                f"HTTP {response.status_code}", url=url, status=response.status_code
            )
        try:
            body = response.json()
        except ValueError:
            return VerifierUnavailable("not JSON", url=url)
        if not isinstance(body, dict):
            return VerifierUnavailable("not a JSON object", url=url)
        return body
