"""The log's tokens for its verifier: signed by the log key, for one verifier, one chain, a
scope and a minute; anything else is refused."""

from __future__ import annotations

import pytest
from ledger.errors import VerificationError
from ledger.keys import SigningKey
from ledger.tokens import TokenClaims, mint, open_token

KEY = SigningKey.generate()
CLAIMS = TokenClaims(
    issuer="log.test/log",
    audience="verifier.test/witness",
    tenant="acme",
    chain="credit",
    scope=frozenset({"status"}),
    expires=1_000_060,
)


def test_a_token_opens_for_its_audience_before_it_expires() -> None:
    token = mint(CLAIMS, KEY)
    assert token.startswith("at1.")
    assert open_token(token, KEY.public_key, audience=CLAIMS.audience, now=1_000_000) == CLAIMS


@pytest.mark.parametrize(
    ("token", "audience", "now", "why"),
    [
        (mint(CLAIMS, KEY), "another-verifier", 1_000_000, "not this verifier"),
        (mint(CLAIMS, KEY), CLAIMS.audience, 1_000_060, "expired"),
        (mint(CLAIMS, SigningKey.generate()), CLAIMS.audience, 1_000_000, "not signed"),
        (mint(CLAIMS, KEY)[:-4] + "AAAA", CLAIMS.audience, 1_000_000, "not signed"),
        ("at1.e30.", CLAIMS.audience, 1_000_000, "not signed"),
        ("atk_0123456789abcdef_secret", CLAIMS.audience, 1_000_000, "not a log token"),
    ],
)
def test_anything_else_is_refused(token: str, audience: str, now: int, why: str) -> None:
    with pytest.raises(VerificationError, match=why):
        open_token(token, KEY.public_key, audience=audience, now=now)
