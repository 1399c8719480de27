"""The spliced leaf is byte-identical to canonicalising the whole leaf object (RFC 8785)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from ledger.canonical import canonicalize
from ledger.errors import VerificationError
from ledger.leaf import GENESIS_PREV, Leaf, build_leaf, format_received_at, parse_received_at


def fits_ijson(number: float) -> bool:
    """Integral floats in [2^53, 1e21) print as integers beyond the I-JSON range; parse_json
    refuses them at the door, so they never reach a leaf."""
    return not (number.is_integer() and 2**53 <= abs(number) < 1e21)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False).filter(fits_ijson)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
slugs = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    tenant=slugs,
    chain=slugs,
    index=st.integers(min_value=0, max_value=2**53 - 1),
    prev=st.binary(min_size=32, max_size=32),
    event=st.dictionaries(st.text(), json_values, max_size=6),
)
def test_spliced_leaf_equals_the_canonical_object(
    tenant: str, chain: str, index: int, prev: bytes, event: dict[str, object]
) -> None:
    received_at = "2026-11-26T20:05:26.123456Z"
    leaf = build_leaf(
        tenant=tenant,
        chain=chain,
        index=index,
        received_at=received_at,
        prev=prev,
        event_json=canonicalize(event),
    )
    whole = {
        "v": 1,
        "tenant": tenant,
        "chain": chain,
        "index": index,
        "received_at": received_at,
        "prev": prev.hex(),
        "event": event,
    }
    assert leaf == rfc8785.dumps(whole)
    parsed = Leaf.parse(leaf)
    assert (parsed.tenant, parsed.chain, parsed.index, parsed.prev) == (tenant, chain, index, prev)


def test_received_at_is_utc_with_microseconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert format_received_at(moment) == "2026-01-02T03:04:05.000006Z"
    assert parse_received_at("2026-01-02T03:04:05.000006Z") == moment
    with pytest.raises(ValueError, match="timezone"):
        format_received_at(datetime(2026, 1, 2))


@pytest.mark.parametrize(
    "mutation",
    [
        lambda leaf: leaf.replace(b'"v":1', b'"v":2'),
        lambda leaf: leaf.replace(b'{"chain"', b'{ "chain"'),
        lambda leaf: leaf.replace(b',"v":1}', b',"v":1,"x":0}'),
    ],
    ids=["version", "not canonical", "extra field"],
)
def test_leaf_parse_refuses_anything_but_format_v1(mutation: object) -> None:
    leaf = build_leaf(
        tenant="acme",
        chain="credit",
        index=0,
        received_at="2026-11-26T20:05:26.123456Z",
        prev=GENESIS_PREV,
        event_json=b'{"id":"1"}',
    )
    Leaf.parse(leaf)
    with pytest.raises(VerificationError):
        Leaf.parse(mutation(leaf))  # type: ignore[operator]
