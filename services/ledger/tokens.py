"""Short-lived tokens the log signs for its own calls to the verifier.

The log asks its verifier about a chain (its latest attestation, to verify it now) while
serving an auditor. It never passes the auditor's API key on: the verifier may be run by
someone else, and a tenant's live keys (admin, personal-data) must not travel there. Instead
the log signs a token with its Ed25519 key, the one key the verifier already trusts, saying
which verifier it is for, which chain, what for, and until when (seconds, not hours).

A token is ``at1.<claims>.<signature>``: base64url (no padding) of the RFC 8785 JSON claims
``{"aud", "chain", "exp", "iss", "scope", "tenant"}``, and of the Ed25519 signature over
``TOKEN_CONTEXT || claims``. The context string keeps a token from ever being a valid
signature of anything else the log signs (notes, DSSE envelopes).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

import orjson

from ledger.canonical import canonicalize
from ledger.errors import SignatureError, VerificationError
from ledger.keys import SigningKey, VerifyingKey

TOKEN_PREFIX: Final = "at1."  # noqa: S105  (a format marker, not a secret)
TOKEN_CONTEXT: Final = b"audit-trail verifier token v1\n"
SCOPES: Final = frozenset(("status", "verify"))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    issuer: str  # the log's origin
    audience: str  # the verifier's name: a token for one verifier is refused by another
    tenant: str
    chain: str
    scope: frozenset[str]
    expires: int  # POSIX seconds


def mint(claims: TokenClaims, key: SigningKey) -> str:
    body = canonicalize(
        {
            "aud": claims.audience,
            "chain": claims.chain,
            "exp": claims.expires,
            "iss": claims.issuer,
            "scope": sorted(claims.scope),
            "tenant": claims.tenant,
        }
    )
    signature = key.sign(TOKEN_CONTEXT + body)
    return TOKEN_PREFIX + _encode(body) + "." + _encode(signature)


def is_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX)


def open_token(token: str, key: VerifyingKey, *, audience: str, now: int) -> TokenClaims:
    """The claims of a token signed by ``key`` for ``audience`` and not yet expired; raises
    VerificationError saying what is wrong otherwise."""
    if not token.startswith(TOKEN_PREFIX):
        raise VerificationError("not a log token")
    encoded_body, dot, encoded_signature = token[len(TOKEN_PREFIX) :].partition(".")
    try:
        body, signature = _decode(encoded_body), _decode(encoded_signature)
    except (binascii.Error, ValueError):
        raise VerificationError("the token is not base64url") from None
    if not dot:
        raise VerificationError("the token has no signature")
    try:
        key.verify(signature, TOKEN_CONTEXT + body)
    except SignatureError:
        raise VerificationError("the token is not signed by the log's key") from None
    try:
        value = orjson.loads(body)
        claims = TokenClaims(
            issuer=str(value["iss"]),
            audience=str(value["aud"]),
            tenant=str(value["tenant"]),
            chain=str(value["chain"]),
            scope=frozenset(str(s) for s in value["scope"]),
            expires=int(value["exp"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise VerificationError("the token's claims are malformed") from None
    if claims.audience != audience:
        raise VerificationError(f"the token is for {claims.audience!r}, not this verifier")
    if claims.expires <= now:
        raise VerificationError("the token has expired")
    if not claims.scope <= SCOPES:
        raise VerificationError("the token names an unknown scope")
    return claims


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
