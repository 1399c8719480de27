"""A run of consecutive entries proved at the cost of one proof (``check_run_inclusion``) is
proved exactly when every entry's own proof verifies: an oracle test against checking each
proof alone, on trees and runs of every shape, with leaves and stored subtrees altered."""

from __future__ import annotations

import hashlib

import pytest
from decision_log.evidence import CheckedCheckpoint, check_run_inclusion
from http_edge.problems import IntegrityFailure
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger.errors import ProofError
from ledger.merkle import (
    MerkleFrontier,
    NodeId,
    range_inclusion_proofs,
    range_proof_node_ids,
    range_subtrees,
    verify_inclusion,
)


def tree(size: int) -> tuple[list[bytes], dict[NodeId, bytes], bytes]:
    """Leaf hashes, every perfect subtree's hash, and the root of a tree of ``size`` leaves."""
    leaves = [hashlib.sha256(b"leaf %d" % index).digest() for index in range(size)]
    nodes: dict[NodeId, bytes] = {(0, index): leaf for index, leaf in enumerate(leaves)}
    frontier = MerkleFrontier()
    nodes.update(frontier.extend(leaves))
    return leaves, nodes, frontier.root()


def checkpoint(size: int, root: bytes) -> CheckedCheckpoint:
    return CheckedCheckpoint(size=size, root_hash=root, note="", cosigned=False, cosignatures=())


def each_proof_verifies(
    start: int, hashes: list[bytes], proofs: list[list[bytes]], size: int, root: bytes
) -> bool:
    try:
        for offset, (hashed, proof) in enumerate(zip(hashes, proofs, strict=True)):
            verify_inclusion(
                leaf_hash=hashed, index=start + offset, size=size, proof=proof, root=root
            )
    except ProofError:
        return False
    return True


@st.composite
def runs(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    start = draw(st.integers(min_value=0, max_value=size - 1))
    stop = draw(st.integers(min_value=start + 1, max_value=size))
    return size, start, stop


@settings(max_examples=150, deadline=None)
@given(runs())
def test_an_intact_run_is_proved_and_every_proof_verifies(run: tuple[int, int, int]) -> None:
    size, start, stop = run
    leaves, nodes, root = tree(size)
    outside = {node: nodes[node] for node in range_proof_node_ids(start, stop, size)}
    proofs = check_run_inclusion(
        start=start, hashes=leaves[start:stop], outside=outside, checkpoint=checkpoint(size, root)
    )
    assert each_proof_verifies(start, leaves[start:stop], proofs, size, root)


@settings(max_examples=150, deadline=None)
@given(runs(), st.data())
def test_any_altered_leaf_of_the_run_fails_the_run(
    run: tuple[int, int, int], data: st.DataObject
) -> None:
    size, start, stop = run
    leaves, nodes, root = tree(size)
    hashes = leaves[start:stop]
    altered = data.draw(st.integers(min_value=0, max_value=len(hashes) - 1))
    hashes[altered] = hashlib.sha256(b"rewritten").digest()
    outside = {node: nodes[node] for node in range_proof_node_ids(start, stop, size)}
    with pytest.raises(IntegrityFailure) as refused:
        check_run_inclusion(
            start=start, hashes=hashes, outside=outside, checkpoint=checkpoint(size, root)
        )
    assert refused.value.extensions["check"] == "inclusion"


@settings(max_examples=150, deadline=None)
@given(runs(), st.data())
def test_stored_subtrees_decide_only_where_they_lie_outside_the_run(
    run: tuple[int, int, int], data: st.DataObject
) -> None:
    """An altered stored subtree that overlaps the run is never used (it is computed from the
    run's leaves instead); one wholly outside it fails the run whenever a proof needs it."""
    size, start, stop = run
    leaves, nodes, root = tree(size)
    outside = {node: nodes[node] for node in range_proof_node_ids(start, stop, size)}
    if not outside:
        return  # the run is the whole tree
    node = data.draw(st.sampled_from(sorted(outside)))
    outside[node] = hashlib.sha256(b"forged subtree").digest()
    level, index = node
    overlaps = index << level < stop and (index + 1) << level > start
    hashes = leaves[start:stop]
    try:
        proofs = check_run_inclusion(
            start=start, hashes=hashes, outside=outside, checkpoint=checkpoint(size, root)
        )
    except IntegrityFailure:
        assert not overlaps
        return
    assert overlaps
    assert each_proof_verifies(start, hashes, proofs, size, root)


@settings(max_examples=300, deadline=None)
@given(runs(), st.data())
def test_the_run_passes_exactly_when_every_proof_does(
    run: tuple[int, int, int], data: st.DataObject
) -> None:
    """The oracle: whatever is altered, the one check agrees with checking every proof that
    the same hashes give, one by one."""
    size, start, stop = run
    leaves, nodes, root = tree(size)
    hashes = list(leaves[start:stop])
    outside = {node: nodes[node] for node in range_proof_node_ids(start, stop, size)}
    for _ in range(data.draw(st.integers(min_value=0, max_value=2))):
        if outside and data.draw(st.booleans()):
            node = data.draw(st.sampled_from(sorted(outside)))
            outside[node] = hashlib.sha256(b"forged %r" % (node,)).digest()
        else:
            position = data.draw(st.integers(min_value=0, max_value=len(hashes) - 1))
            hashes[position] = hashlib.sha256(b"forged %d" % position).digest()
    try:
        check_run_inclusion(
            start=start, hashes=hashes, outside=outside, checkpoint=checkpoint(size, root)
        )
        passed = True
    except IntegrityFailure:
        passed = False
    known = {
        node: value
        for node, value in outside.items()
        if not (node[1] << node[0] < stop and (node[1] + 1) << node[0] > start)
    }
    known.update(range_subtrees(start, hashes))
    proofs = [proof for _, proof in range_inclusion_proofs(start, stop, size, known)]
    assert passed == each_proof_verifies(start, hashes, proofs, size, root)
