"""The pure replay checks, on leaves built by the log's own leaf builder (no I/O)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pytest
from ledger.canonical import canonicalize
from ledger.leaf import LEAF_FRAME_HEADER, build_leaf
from ledger.merkle import MerkleFrontier, leaf_hash, root_hash
from verifier.replay import EntryReplay, Finding, _is_canonical_object


def stream(leaves: list[bytes], start: int = 0) -> bytes:
    return b"".join(
        orjson.dumps({"index": start + i, "leaf": base64.b64encode(leaf).decode()}) + b"\n"
        for i, leaf in enumerate(leaves)
    )


def chain_of(count: int, **event: object) -> list[bytes]:
    leaves, prev = [], bytes(32)
    for index in range(count):
        leaf = build_leaf(
            tenant="acme",
            chain="credit",
            index=index,
            received_at="2026-11-26T10:00:00.000001Z",
            prev=prev,
            event_json=canonicalize({"id": str(index), "data": {"score": 0.5}, **event}),
        )
        leaves.append(leaf)
        prev = leaf_hash(leaf)
    return leaves


def replay() -> EntryReplay:
    return EntryReplay(tenant="acme", chain="credit", frontier=MerkleFrontier(), prev=bytes(32))


def test_replay_rebuilds_the_root_whatever_the_chunking() -> None:
    leaves = chain_of(37)
    data = stream(leaves)
    for size in (1, 7, 100, len(data)):
        checked = replay()
        for offset in range(0, len(data), size):
            checked.feed(data[offset : offset + size])
        checked.finish(37)
        assert checked.frontier.root() == root_hash([leaf_hash(leaf) for leaf in leaves])


def numbered(leaves: list[bytes]) -> bytes:
    """Served as the log numbers its rows: position i has index i."""
    return b"".join(stream([leaf], i) for i, leaf in enumerate(leaves))


@pytest.mark.parametrize(
    ("served", "kind", "index"),
    [
        (lambda ls: stream(ls[:3]) + stream(ls[4:], 4), "missing-entry", 3),
        (lambda ls: stream(ls[:3]) + stream(ls[2:3], 2), "unexpected-entry", 3),
        (lambda ls: numbered([*ls[:3], ls[2], *ls[3:]]), "misplaced-leaf", 3),
        (
            lambda ls: numbered([*ls[:3], ls[3].replace(b'"acme"', b'"acmf"'), *ls[4:]]),
            "misplaced-leaf",
            3,
        ),
        (
            lambda ls: numbered([*ls[:3], ls[3].replace(b'"score"', b'"score" '), *ls[4:]]),
            "malformed-leaf",
            3,
        ),
        (lambda ls: numbered([*ls[:3], ls[3].replace(b"0.5", b"0.6"), *ls[4:]]), "broken-link", 4),
        (lambda ls: numbered(ls[:5]), "missing-entry", 5),
    ],
)
def test_each_broken_rule_is_named_at_its_index(served: object, kind: str, index: int) -> None:
    checked = replay()
    with pytest.raises(Finding) as raised:
        checked.feed(served(chain_of(6)))  # type: ignore[operator]
        checked.finish(6)
    assert (raised.value.kind, raised.value.index) == (kind, index)


def test_canonical_check_agrees_with_rfc8785() -> None:
    for value in ({"a": 1}, {"b": [1.5, "x", None, True]}, {"\ue000": 1, "\U0001f600": 2}):
        assert _is_canonical_object(canonicalize(value))
    for text in (b'{"a":1.0}', b'{"b":1,"a":2}', b'{"a":1,"a":1}', b'{"a": 1}', b"[1]", b"{"):
        assert not _is_canonical_object(text)
    # orjson would order these keys by code point, RFC 8785 by UTF-16 unit.
    assert not _is_canonical_object('{"\ue000":1,"\U0001f600":2}'.encode())


def frames(leaves: list[bytes], start: int = 0) -> bytes:
    return b"".join(
        LEAF_FRAME_HEADER.pack(start + i, len(leaf)) + leaf for i, leaf in enumerate(leaves)
    )


def test_leaf_frames_replay_like_ndjson_whatever_the_chunking() -> None:
    leaves = chain_of(37)
    data = frames(leaves)
    for size in (1, 5, 12, 100, len(data)):
        checked = replay()
        for offset in range(0, len(data), size):
            checked.feed(data[offset : offset + size], binary=True)
        checked.finish(37)
        assert checked.frontier.root() == root_hash([leaf_hash(leaf) for leaf in leaves])


@pytest.mark.parametrize(
    ("served", "kind", "index"),
    [
        (lambda ls: frames(ls[:3]) + frames(ls[4:], 4), "missing-entry", 3),
        (lambda ls: frames(ls[:3]) + frames(ls[2:3], 2), "unexpected-entry", 3),
        (lambda ls: frames(ls[:5])[:-1], "malformed-entry", 4),  # cut off in the last leaf
        (lambda ls: frames(ls[:3]) + b"\x00" * 5, "malformed-entry", 3),  # a cut-off header
        (lambda ls: frames([*ls[:3], ls[3].replace(b"0.5", b"0.6"), *ls[4:]]), "broken-link", 4),
    ],
)
def test_broken_leaf_frames_are_named_at_their_index(
    served: Callable[[list[bytes]], bytes], kind: str, index: int
) -> None:
    checked = replay()
    with pytest.raises(Finding) as raised:
        checked.feed(served(chain_of(6)), binary=True)
        checked.finish(6)
    assert (raised.value.kind, raised.value.index) == (kind, index)
