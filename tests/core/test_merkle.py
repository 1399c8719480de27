"""RFC 6962 / RFC 9162 Merkle trees: vectors, the naive reference, proof plans, verification."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger.errors import ProofError
from ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleFrontier,
    NodeId,
    assemble_proof,
    consistency_proof_plan,
    fold_subtrees,
    inclusion_proof_plan,
    leaf_hash,
    node_hash,
    plan_node_ids,
    reference_consistency_proof,
    reference_inclusion_proof,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.merkle import _reference_root as _reference_root

from tests.core.conformance_vectors import load_vectors

VECTORS = load_vectors("rfc6962_vectors.json")
LEAVES = [bytes.fromhex(leaf) for leaf in VECTORS["leaves_hex"]]
LEAF_HASHES = [leaf_hash(leaf) for leaf in LEAVES]
INCLUSION_PROBES = VECTORS["probes"]["inclusion"]
CONSISTENCY_PROBES = VECTORS["probes"]["consistency"]


def hashes(values: Sequence[str] | None) -> list[bytes]:
    return [bytes.fromhex(value) for value in values or ()]


# A larger tree shared by the exhaustive and property tests: its perfect subtrees are those of
# every smaller tree too.
BIG_SIZE = 4096
BIG_LEAF_HASHES = [leaf_hash(index.to_bytes(4, "big")) for index in range(BIG_SIZE)]


@cache
def perfect_subtree_hashes() -> dict[NodeId, bytes]:
    nodes: dict[NodeId, bytes] = {(0, index): h for index, h in enumerate(BIG_LEAF_HASHES)}
    frontier = MerkleFrontier()
    for node_id, h in frontier.extend(BIG_LEAF_HASHES):
        assert node_id not in nodes
        nodes[node_id] = h
    return nodes


@cache
def big_root(size: int) -> bytes:
    return root_hash(BIG_LEAF_HASHES[:size])


def inclusion_proof(index: int, size: int) -> list[bytes]:
    return assemble_proof(inclusion_proof_plan(index, size), perfect_subtree_hashes())


def consistency_proof(old_size: int, new_size: int) -> list[bytes]:
    return assemble_proof(consistency_proof_plan(old_size, new_size), perfect_subtree_hashes())


# --- hashing and roots -----------------------------------------------------------------------


def test_hashing_is_domain_separated_sha256() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["roots_by_size"]["0"]
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )


@pytest.mark.parametrize("size", range(len(LEAVES) + 1))
def test_roots_of_the_standard_leaves(size: int) -> None:
    expected = VECTORS["roots_by_size"][str(size)]
    assert root_hash(LEAF_HASHES[:size]).hex() == expected
    frontier = MerkleFrontier()
    frontier.extend(LEAF_HASHES[:size])
    assert frontier.root().hex() == expected


def test_every_perfect_subtree_hash_of_the_standard_leaves() -> None:
    expected = {
        (level, index): bytes.fromhex(value)
        for level, values in enumerate(VECTORS["node_hashes_by_level"])
        for index, value in enumerate(values)
    }
    frontier = MerkleFrontier()
    completed = dict(frontier.extend(LEAF_HASHES))
    assert completed == {node: h for node, h in expected.items() if node[0] >= 1}
    assert [expected[(0, index)] for index in range(8)] == LEAF_HASHES


def test_root_hash_matches_the_naive_recursion_and_the_frontier() -> None:
    for size in [*range(70), 511, 512, 513, 1000, BIG_SIZE]:
        leaves = BIG_LEAF_HASHES[:size]
        expected = _reference_root(leaves)
        assert root_hash(leaves) == expected
        frontier_nodes = MerkleFrontier(size, [b"\0" * 32] * size.bit_count()).node_ids()
        if size:
            assert fold_subtrees([perfect_subtree_hashes()[node] for node in frontier_nodes]) == (
                expected
            )


def test_root_hash_rejects_hashes_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        root_hash([b"\x00" * 32, b"\x00" * 31])


# --- the classic proofs and the reference verifier's probes ---------------------------------


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"])
def test_classic_inclusion_proofs(case: dict[str, Any]) -> None:
    index, size = case["leaf_index"], case["tree_size"]
    expected = hashes(case["proof"])
    assert reference_inclusion_proof(index, LEAF_HASHES[:size]) == expected
    assert assemble_proof(
        inclusion_proof_plan(index, size), perfect_subtree_hashes_of_vectors()
    ) == (expected)
    root = bytes.fromhex(case["expected_root"])
    leaf = leaf_hash(bytes.fromhex(case["leaf_hex"]))
    verify_inclusion(leaf_hash=leaf, index=index, size=size, proof=expected, root=root)
    assert root_from_inclusion_proof(leaf_hash=leaf, index=index, size=size, proof=expected) == root


@cache
def perfect_subtree_hashes_of_vectors() -> dict[NodeId, bytes]:
    return {
        (level, index): bytes.fromhex(value)
        for level, values in enumerate(VECTORS["node_hashes_by_level"])
        for index, value in enumerate(values)
    }


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"])
def test_classic_consistency_proofs(case: dict[str, Any]) -> None:
    old_size, new_size = case["size1"], case["size2"]
    expected = hashes(case["proof"])
    assert reference_consistency_proof(old_size, LEAF_HASHES[:new_size]) == expected
    plan = consistency_proof_plan(old_size, new_size)
    assert assemble_proof(plan, perfect_subtree_hashes_of_vectors()) == expected
    verify_consistency(
        old_size=old_size,
        new_size=new_size,
        proof=expected,
        old_root=bytes.fromhex(case["root1"]),
        new_root=bytes.fromhex(case["root2"]),
    )


@pytest.mark.parametrize(
    "probe", INCLUSION_PROBES, ids=[probe["file"] for probe in INCLUSION_PROBES]
)
def test_inclusion_probes(probe: dict[str, Any]) -> None:
    def verify() -> None:
        verify_inclusion(
            leaf_hash=bytes.fromhex(probe["leaf_hash"]),
            index=probe["leaf_index"],
            size=probe["tree_size"],
            proof=hashes(probe["proof"]),
            root=bytes.fromhex(probe["root"]),
        )

    if probe["want_error"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


@pytest.mark.parametrize(
    "probe", CONSISTENCY_PROBES, ids=[probe["file"] for probe in CONSISTENCY_PROBES]
)
def test_consistency_probes(probe: dict[str, Any]) -> None:
    def verify() -> None:
        verify_consistency(
            old_size=probe["size1"],
            new_size=probe["size2"],
            proof=hashes(probe["proof"]),
            old_root=bytes.fromhex(probe["root1"]),
            new_root=bytes.fromhex(probe["root2"]),
        )

    if probe["want_error"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


def test_consistency_from_the_empty_tree_is_refused_even_with_an_empty_proof() -> None:
    with pytest.raises(ProofError, match="size 0"):
        verify_consistency(
            old_size=0, new_size=5, proof=[], old_root=EMPTY_ROOT, new_root=big_root(5)
        )
    with pytest.raises(ProofError, match="size 0"):
        verify_consistency(
            old_size=0, new_size=0, proof=[], old_root=EMPTY_ROOT, new_root=EMPTY_ROOT
        )
    with pytest.raises(ProofError, match="size 0"):
        consistency_proof_plan(0, 5)


# --- plans against the naive reference, exhaustively for small trees -------------------------


def test_inclusion_plans_for_every_leaf_of_every_tree_up_to_70() -> None:
    for size in range(1, 71):
        leaves = BIG_LEAF_HASHES[:size]
        root = big_root(size)
        for index in range(size):
            plan = inclusion_proof_plan(index, size)
            proof = assemble_proof(plan, perfect_subtree_hashes())
            assert proof == reference_inclusion_proof(index, leaves)
            assert_plan_is_well_formed(plan, size)
            verify_inclusion(
                leaf_hash=leaves[index], index=index, size=size, proof=proof, root=root
            )


def test_consistency_plans_for_every_pair_of_sizes_up_to_70() -> None:
    for new_size in range(1, 71):
        leaves = BIG_LEAF_HASHES[:new_size]
        for old_size in range(1, new_size + 1):
            plan = consistency_proof_plan(old_size, new_size)
            proof = assemble_proof(plan, perfect_subtree_hashes())
            assert proof == reference_consistency_proof(old_size, leaves)
            assert_plan_is_well_formed(plan, new_size)
            verify_consistency(
                old_size=old_size,
                new_size=new_size,
                proof=proof,
                old_root=big_root(old_size),
                new_root=big_root(new_size),
            )


def assert_plan_is_well_formed(plan: list[tuple[NodeId, ...]], size: int) -> None:
    for subtrees in plan:
        levels = [level for level, _ in subtrees]
        assert levels == sorted(set(levels), reverse=True)  # strictly decreasing sizes
        for (level, index), (next_level, next_index) in itertools.pairwise(subtrees):
            assert (index + 1) << level == next_index << next_level  # adjacent
        last_level, last_index = subtrees[-1]
        assert (last_index + 1) << last_level <= size
        assert len(subtrees) == 1 or (last_index + 1) << last_level == size  # right edge only


def test_plans_name_each_node_once_and_refuse_impossible_requests() -> None:
    plan = consistency_proof_plan(3, 7)
    assert plan_node_ids(plan) == {node for subtrees in plan for node in subtrees}
    assert plan == [((0, 2),), ((0, 3),), ((1, 0),), ((1, 2), (0, 6))]
    assert inclusion_proof_plan(0, 1) == []
    assert consistency_proof_plan(5, 5) == []
    for index, size in [(0, 0), (3, 3), (-1, 4)]:
        with pytest.raises(ProofError):
            inclusion_proof_plan(index, size)
    for old_size, new_size in [(0, 0), (0, 1), (4, 3), (-1, 2)]:
        with pytest.raises(ProofError):
            consistency_proof_plan(old_size, new_size)


def test_assembling_without_a_needed_node_is_a_proof_error() -> None:
    with pytest.raises(ProofError, match=r"subtree \(1, 0\) is not available"):
        assemble_proof(consistency_proof_plan(3, 7), {(0, 2): b"a" * 32, (0, 3): b"b" * 32})


# --- the frontier ----------------------------------------------------------------------------


def test_frontier_hands_out_every_perfect_subtree_exactly_once() -> None:
    frontier = MerkleFrontier()
    handed_out: dict[NodeId, bytes] = {}
    for index, leaf in enumerate(BIG_LEAF_HASHES[:300]):
        for node, h in frontier.append(leaf):
            assert node not in handed_out
            assert node[0] >= 1
            handed_out[node] = h
        size = index + 1
        assert frontier.size == size
        assert frontier.root() == big_root(size)
        assert [1 << level for level, _ in frontier.node_ids()] == [
            1 << level for level in reversed(range(size.bit_length())) if size >> level & 1
        ]
        assert_plan_is_well_formed([frontier.node_ids()], size)
        assert frontier.node_ids()[0][1] == 0
        assert frontier.hashes == tuple(
            perfect_subtree_hashes()[node] for node in frontier.node_ids()
        )
    expected = {
        node
        for node in perfect_subtree_hashes()
        if node[0] >= 1 and (node[1] + 1) << node[0] <= 300
    }
    assert set(handed_out) == expected
    assert all(handed_out[node] == perfect_subtree_hashes()[node] for node in expected)


def test_frontier_node_ids_are_the_binary_decomposition_of_the_size() -> None:
    assert MerkleFrontier().node_ids() == ()
    assert MerkleFrontier(13, [b"h" * 32] * 3).node_ids() == ((3, 0), (2, 2), (0, 12))
    assert MerkleFrontier(64, [b"h" * 32]).node_ids() == ((6, 0),)


def test_frontier_round_trips_through_bytes() -> None:
    frontier = MerkleFrontier()
    frontier.extend(BIG_LEAF_HASHES[:1234])
    data = frontier.to_bytes()
    assert len(data) == HASH_SIZE * (1234).bit_count()
    restored = MerkleFrontier.from_bytes(1234, data)
    assert restored == frontier
    assert restored.root() == big_root(1234)
    assert MerkleFrontier(frontier.size, frontier.hashes) == frontier
    copy = frontier.copy()
    copy.append(BIG_LEAF_HASHES[1234])
    assert copy.root() == big_root(1235) and frontier.root() == big_root(1234)
    assert MerkleFrontier().root() == EMPTY_ROOT
    assert MerkleFrontier.from_bytes(0, b"").to_bytes() == b""


@pytest.mark.parametrize(
    ("size", "hashes_", "problem"),
    [
        (3, [b"a" * 32], "2 frontier hashes"),
        (0, [b"a" * 32], "0 frontier hashes"),
        (1, [b"a" * 31], "32-byte"),
        (-1, [], "negative"),
    ],
)
def test_frontier_validates_its_state(size: int, hashes_: list[bytes], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MerkleFrontier(size, hashes_)


def test_frontier_validates_serialised_state_and_leaf_hashes() -> None:
    with pytest.raises(ValueError):
        MerkleFrontier.from_bytes(3, b"a" * 32)
    with pytest.raises(ValueError):
        MerkleFrontier().append(b"short")


# --- properties over random trees ------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=3000)


def flip_bit(value: bytes, bit: int) -> bytes:
    position = bit % (len(value) * 8)
    changed = bytearray(value)
    changed[position // 8] ^= 1 << (position % 8)
    return bytes(changed)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_inclusion_proofs_verify_and_every_alteration_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, root = BIG_LEAF_HASHES[index], big_root(size)
    proof = inclusion_proof(index, size)
    verify_inclusion(leaf_hash=leaf, index=index, size=size, proof=proof, root=root)

    def rejected(*, leaf_: bytes = leaf, index_: int = index, size_: int = size,
                 proof_: list[bytes] = proof, root_: bytes = root) -> bool:  # fmt: skip
        try:
            verify_inclusion(leaf_hash=leaf_, index=index_, size=size_, proof=proof_, root=root_)
        except ProofError:
            return True
        return False

    bit = data.draw(st.integers(0, 255), label="bit")
    assert rejected(root_=flip_bit(root, bit))
    assert rejected(leaf_=flip_bit(leaf, bit))
    assert rejected(proof_=[*proof, proof[0] if proof else root])
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        assert rejected(
            proof_=[*proof[:position], flip_bit(proof[position], bit), *proof[position + 1 :]]
        )
        assert rejected(proof_=proof[:position] + proof[position + 1 :])
        other = data.draw(st.integers(0, len(proof) - 1), label="other")
        if proof[other] != proof[position]:
            swapped = list(proof)
            swapped[position], swapped[other] = swapped[other], swapped[position]
            assert rejected(proof_=swapped)
    if size > 1:
        other_index = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="i'")
        assert rejected(index_=other_index)
    # Another size, with that tree's real root: only an identical proof may pass.
    other_size = data.draw(st.integers(index + 1, BIG_SIZE), label="size'")
    if other_size != size:
        same = inclusion_proof(index, other_size) == proof
        assert rejected(size_=other_size, root_=big_root(other_size)) != same
    assert rejected(index_=size)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_consistency_proofs_verify_and_every_alteration_fails(
    size: int, data: st.DataObject
) -> None:
    new_size = size
    old_size = data.draw(st.integers(1, new_size), label="old_size")
    old_root, new_root = big_root(old_size), big_root(new_size)
    proof = consistency_proof(old_size, new_size)
    verify_consistency(
        old_size=old_size, new_size=new_size, proof=proof, old_root=old_root, new_root=new_root
    )

    def rejected(*, old: int = old_size, new: int = new_size, proof_: list[bytes] = proof,
                 old_root_: bytes = old_root, new_root_: bytes = new_root) -> bool:  # fmt: skip
        try:
            verify_consistency(
                old_size=old, new_size=new, proof=proof_, old_root=old_root_, new_root=new_root_
            )
        except ProofError:
            return True
        return False

    bit = data.draw(st.integers(0, 255), label="bit")
    assert rejected(old_root_=flip_bit(old_root, bit))
    assert rejected(new_root_=flip_bit(new_root, bit))
    assert rejected(proof_=[*proof, old_root])
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        assert rejected(
            proof_=[*proof[:position], flip_bit(proof[position], bit), *proof[position + 1 :]]
        )
        assert rejected(proof_=proof[:position] + proof[position + 1 :])
        other = data.draw(st.integers(0, len(proof) - 1), label="other")
        if proof[other] != proof[position]:
            swapped = list(proof)
            swapped[position], swapped[other] = swapped[other], swapped[position]
            assert rejected(proof_=swapped)
    if old_size != new_size:
        assert rejected(old_root_=new_root, new_root_=old_root)
    # Other sizes, with those trees' real roots: only an identical proof may pass.
    other_old = data.draw(st.integers(1, new_size), label="old'")
    if other_old != old_size:
        same = consistency_proof(other_old, new_size) == proof
        assert rejected(old=other_old, old_root_=big_root(other_old)) != same
    other_new = data.draw(st.integers(old_size, BIG_SIZE), label="new'")
    if other_new != new_size:
        same = consistency_proof(old_size, other_new) == proof
        assert rejected(new=other_new, new_root_=big_root(other_new)) != same
