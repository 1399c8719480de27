"""The re-read of entries already checked, without I/O: each way the served history can differ
from what the verifier remembers, and the kind of tamper it is named as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger.canonical import canonicalize
from ledger.leaf import LEAF_FRAME_HEADER, build_leaf
from ledger.merkle import MerkleFrontier, leaf_hash
from verifier.history import Difference, HistoryWindow, name_difference
from verifier.remembered import Lineage

TENANT, CHAIN = "acme", "credit"
COSIGNED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def chain(size: int, *, received_at: datetime = COSIGNED_AT - timedelta(hours=1)) -> list[bytes]:
    leaves, prev = [], bytes(32)
    for index in range(size):
        leaf = make_leaf(index, prev, received_at=received_at, decision="declined")
        leaves.append(leaf)
        prev = leaf_hash(leaf)
    return leaves


def make_leaf(index: int, prev: bytes, *, received_at: datetime, decision: str) -> bytes:
    return build_leaf(
        tenant=TENANT,
        chain=CHAIN,
        index=index,
        received_at=received_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        prev=prev,
        event_json=canonicalize({"id": str(index), "data": {"decision": decision}}),
    )


def frames(entries: list[tuple[int, bytes]]) -> bytes:
    return b"".join(LEAF_FRAME_HEADER.pack(index, len(leaf)) + leaf for index, leaf in entries)


def reread(
    served: list[tuple[int, bytes]], remembered: list[bytes], start: int, stop: int
) -> Difference | None:
    """Feed the window the stream of [start, stop + 1), in small chunks, as the log would."""
    frontier = MerkleFrontier()
    frontier.extend(leaf_hash(leaf) for leaf in remembered[:start])
    window = HistoryWindow(
        start=start,
        stop=stop,
        remembered=b"".join(leaf_hash(leaf) for leaf in remembered[start:stop]),
        frontier=frontier,
    )
    data = frames([(i, leaf) for i, leaf in served if start <= i <= stop])
    for offset in range(0, len(data), 97):
        window.feed(data[offset : offset + 97], binary=True)
    difference = window.finish()
    if difference is None:
        # The frontier now covers the remembered hashes [0, stop): a pass ending there can
        # rebuild the root the verifier cosigned.
        expected = MerkleFrontier()
        expected.extend(leaf_hash(leaf) for leaf in remembered[:stop])
        assert window.frontier == expected
    return difference


def named(difference: Difference | None, **facts: object) -> tuple[str, int | None]:
    assert difference is not None
    finding = name_difference(
        difference,
        tenant=TENANT,
        chain=CHAIN,
        logged_size=facts.get("logged_size"),  # type: ignore[arg-type]
        stored_hash=facts.get("stored_hash"),  # type: ignore[arg-type]
        first_cosigned_at=COSIGNED_AT,
    )
    return finding.kind, finding.index


def test_an_unchanged_chain_has_no_difference_in_any_window() -> None:
    leaves = chain(20)
    served = list(enumerate(leaves))
    for start, stop in ((0, 20), (0, 7), (7, 14), (14, 20), (19, 20)):
        assert reread(served, leaves, start, stop) is None


def test_a_window_knows_when_every_entry_arrived_before_the_one_after_it() -> None:
    """A stream that breaks off after the window's entries (a log flagging a problem of its
    own) loses nothing the window needed."""
    leaves = chain(10)
    window = HistoryWindow(
        start=0,
        stop=10,
        remembered=b"".join(leaf_hash(leaf) for leaf in leaves),
        frontier=MerkleFrontier(),
    )
    window.feed(frames(list(enumerate(leaves[:9]))), binary=True)
    assert not window.compared_all
    window.feed(frames([(9, leaves[9])]), binary=True)
    assert window.compared_all and not window.settled
    assert window.finish() is None


def test_an_edit_in_place_is_a_leaf_mismatch_at_the_edited_entry() -> None:
    leaves = chain(20)
    served = list(enumerate(leaves))
    served[11] = (11, leaves[11].replace(b"declined", b"approved"))
    difference = reread(served, leaves, 0, 20)
    assert difference is not None and difference.successor_served
    assert named(difference) == ("leaf-mismatch", 11)


def test_an_edited_last_entry_is_told_by_the_log_s_own_stored_hash() -> None:
    leaves = chain(20)
    served = list(enumerate(leaves))
    served[19] = (19, leaves[19].replace(b"declined", b"approved"))
    difference = reread(served, leaves, 0, 20)
    assert difference is not None and not difference.successor_served
    assert named(difference, stored_hash=leaf_hash(leaves[19])) == ("leaf-mismatch", 19)


def test_a_hole_is_a_missing_entry_even_at_the_window_s_last_index() -> None:
    leaves = chain(20)
    served = [(i, leaf) for i, leaf in enumerate(leaves) if i != 9]
    assert named(reread(served, leaves, 0, 20)) == ("missing-entry", 9)
    # The window [0, 10) ends at the hole: the entry after it tells it from a cut.
    assert named(reread(served, leaves, 0, 10)) == ("missing-entry", 9)


def test_a_cut_is_a_rollback_at_the_first_missing_index() -> None:
    leaves = chain(20)
    served = list(enumerate(leaves[:13]))
    assert named(reread(served, leaves, 0, 20), logged_size=13) == ("rollback", 13)
    assert named(reread(served, leaves, 0, 20), logged_size=5) == ("rollback", 13)
    # A log that still signs for the entries it no longer serves has lost them.
    assert named(reread(served, leaves, 0, 20), logged_size=20) == ("missing-entry", 13)


def test_swapped_entries_are_a_misplaced_leaf_at_the_lower_index() -> None:
    leaves = chain(20)
    served = list(enumerate(leaves))
    served[4], served[15] = (4, leaves[15]), (15, leaves[4])
    assert named(reread(served, leaves, 0, 20)) == ("misplaced-leaf", 4)


def test_a_recomputed_suffix_is_a_rewrite_or_a_fork_by_when_it_was_received() -> None:
    leaves = chain(20)
    for received_at, kind in (
        (COSIGNED_AT - timedelta(hours=1), "rewritten-history"),
        (COSIGNED_AT + timedelta(seconds=1), "forked-history"),
    ):
        served = list(enumerate(leaves[:6]))
        prev = leaf_hash(leaves[5])
        for index in range(6, 20):
            leaf = make_leaf(index, prev, received_at=received_at, decision="approved")
            served.append((index, leaf))
            prev = leaf_hash(leaf)
        assert named(reread(served, leaves, 0, 20)) == (kind, 6)
        # Seen from a later window, the first rewritten entry of that window is named.
        assert named(reread(served, leaves, 10, 20)) == (kind, 10)


def test_a_repeated_index_is_an_unexpected_entry() -> None:
    leaves = chain(10)
    served = [*enumerate(leaves[:5]), (3, leaves[3]), *[(i, leaves[i]) for i in range(5, 10)]]
    assert named(reread(served, leaves, 0, 10)) == ("unexpected-entry", 5)


def test_a_window_is_at_most_65536_entries_and_needs_its_remembered_hashes() -> None:
    with pytest.raises(ValueError):
        HistoryWindow(start=0, stop=65537, remembered=bytes(32 * 65537), frontier=MerkleFrontier())
    with pytest.raises(ValueError):
        HistoryWindow(start=0, stop=2, remembered=bytes(32), frontier=MerkleFrontier())


def test_an_epoch_keeps_the_memory_of_those_before_it_below_its_start() -> None:
    class Start:
        def __init__(self, epoch: int, start_size: int) -> None:
            self.epoch, self.start_size = epoch, start_size

    lineage = Lineage.of(epoch=3, starts=[Start(1, 20), Start(2, 0), Start(3, 12)])
    # Epoch 2 started over from nothing, so nothing before it counts; epoch 3 kept [0, 12).
    assert lineage.parts(0, 40) == [(2, 0, 12), (3, 12, 40)]
    assert lineage.epoch_of(11) == 2 and lineage.epoch_of(12) == 3
    lineage = Lineage.of(epoch=2, starts=[Start(1, 20), Start(2, 8)])
    assert lineage.parts(0, 30) == [(0, 0, 8), (2, 8, 30)]
    assert Lineage.of(epoch=0, starts=[]).parts(5, 9) == [(0, 5, 9)]
