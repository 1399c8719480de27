"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

Hashing is RFC 9162 §2.1.1 (identical to RFC 6962 §2.1): leaves are hashed as
SHA-256(0x00 || leaf) and interior nodes as SHA-256(0x01 || left || right), the domain separation
that stops a leaf from being passed off as a node. Indexes are 0-based.

Storage-facing code works with perfect subtrees. A `NodeId` ``(level, index)`` names the perfect
subtree of 2^level leaves covering leaves [index * 2^level, (index + 1) * 2^level); level 0 is a
leaf hash. Every hash in an RFC 9162 proof is either such a subtree or, on the right edge of an
incomplete tree, the root of a few of them folded together. So a store that keeps the hash of
every perfect subtree (`MerkleFrontier.append` hands each out exactly once) can serve any proof
with one lookup of O(log n) nodes: `inclusion_proof_plan` / `consistency_proof_plan` say which,
`plan_node_ids` collects them for one query, and `assemble_proof` folds what came back.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 with the conventions of the reference
verifier (transparency-dev/merkle) that the conformance vectors encode: the proof must have
exactly the expected number of hashes, every hash is 32 bytes, and a proof for equal tree sizes
is empty and needs equal roots. A consistency proof from size 0 is refused: no such proof
exists (RFC 9162 §2.1.4 defines proofs for 0 < m < n only), and a verifier starting from
nothing needs none, since every tree extends the empty tree; callers handle that case before
asking for a proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

from ledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleFrontier",
    "NodeId",
    "ProofPlan",
    "assemble_proof",
    "consistency_proof_plan",
    "fold_subtrees",
    "inclusion_proof_plan",
    "leaf_hash",
    "node_hash",
    "plan_node_ids",
    "range_inclusion_proofs",
    "range_proof_node_ids",
    "range_subtrees",
    "reference_consistency_proof",
    "reference_inclusion_proof",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()  # MTH({}), RFC 9162 §2.1.1

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

NodeId = tuple[int, int]
ProofPlan = list[tuple[NodeId, ...]]

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash_sizes(hashes: Iterable[bytes], what: str) -> None:
    if set(map(len, hashes)) - {HASH_SIZE}:
        raise ValueError(f"{what} must be {HASH_SIZE}-byte hashes")


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already hashed leaves (RFC 9162 §2.1.1), level by level.

    Pairing neighbours level by level and carrying an unpaired last node up unchanged builds
    the same tree as the RFC's split at the largest power of two below n.
    """
    _check_hash_sizes(leaf_hashes, "leaf hashes")
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha256, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        # zip stops before an unpaired last node, which is carried up below.
        parents = [
            sha256(prefix + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """The root over adjacent perfect subtrees listed left to right, largest first.

    For such a list MTH splits off the first subtree and recurses on the rest, which makes the
    root a right fold: node_hash(h0, node_hash(h1, ... node_hash(h[-2], h[-1]))).
    """
    if not hashes:
        raise ValueError("nothing to fold")
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


# ---------------------------------------------------------------------------------------------
# Naive reference proofs, written as RFC 9162 states them (for tests and cross-checks)
# ---------------------------------------------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _reference_root(leaf_hashes: Sequence[bytes]) -> bytes:
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _largest_power_of_two_below(n)
    return node_hash(_reference_root(leaf_hashes[:k]), _reference_root(leaf_hashes[k:]))


def reference_inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1 (RFC 6962 §2.1.1), by direct recursion."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ProofError(f"leaf index {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if index < k:
        return [
            *reference_inclusion_proof(index, leaf_hashes[:k]),
            _reference_root(leaf_hashes[k:]),
        ]
    return [
        *reference_inclusion_proof(index - k, leaf_hashes[k:]),
        _reference_root(leaf_hashes[:k]),
    ]


def reference_consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (RFC 6962 §2.1.2), by direct recursion."""
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise ProofError(f"no consistency proof from size {old_size} to size {n}")

    def subproof(m: int, leaves: Sequence[bytes], complete_old_tree: bool) -> list[bytes]:
        n = len(leaves)
        if m == n:
            return [] if complete_old_tree else [_reference_root(leaves)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*subproof(m, leaves[:k], complete_old_tree), _reference_root(leaves[k:])]
        return [*subproof(m - k, leaves[k:], False), _reference_root(leaves[:k])]

    return subproof(old_size, leaf_hashes, True)


# ---------------------------------------------------------------------------------------------
# Proof plans over stored perfect subtrees
# ---------------------------------------------------------------------------------------------


def perfect_subtrees(start: int, end: int) -> tuple[NodeId, ...]:
    """The perfect subtrees that make up leaves [start, end), left to right, largest first.

    Callers pass ranges of the RFC's recursion: `start` is a multiple of the largest power of
    two not above end - start, so the binary digits of the size, highest first, give aligned
    subtrees.
    """
    subtrees: list[NodeId] = []
    remaining = end - start
    while remaining:
        level = remaining.bit_length() - 1
        subtrees.append((level, start >> level))
        start += 1 << level
        remaining -= 1 << level
    return tuple(subtrees)


def inclusion_proof_plan(index: int, size: int) -> ProofPlan:
    """Which perfect subtrees give each hash of the inclusion proof of leaf `index`.

    One entry per proof hash, in RFC 9162 §2.1.3.1 order (from the leaf up).
    """
    if not 0 <= index < size:
        raise ProofError(f"no inclusion proof for leaf {index} in a tree of size {size}")
    plan: ProofPlan = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            plan.append(perfect_subtrees(start + k, end))
            end = start + k
        else:
            plan.append(perfect_subtrees(start, start + k))
            start += k
    plan.reverse()  # the descent found the hashes from the root down
    return plan


def consistency_proof_plan(old_size: int, new_size: int) -> ProofPlan:
    """Which perfect subtrees give each hash of the consistency proof from old_size to new_size.

    One entry per proof hash, in RFC 9162 §2.1.4.1 order. Equal sizes give an empty plan.
    """
    if not 0 < old_size <= new_size:
        raise ProofError(
            f"no consistency proof from size {old_size} to size {new_size}"
            + (" (a tree of size 0 is consistent with every tree)" if old_size == 0 else "")
        )
    plan: ProofPlan = []
    start, end, m = 0, new_size, old_size
    complete_old_tree = True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            plan.append(perfect_subtrees(start + k, end))
            end = start + k
        else:
            plan.append(perfect_subtrees(start, start + k))
            start, m = start + k, m - k
            complete_old_tree = False
    if not complete_old_tree:
        plan.append(perfect_subtrees(start, end))
    plan.reverse()
    return plan


def range_subtrees(start: int, leaf_hashes: Sequence[bytes]) -> dict[NodeId, bytes]:
    """Every perfect subtree lying wholly inside the leaves [start, start + len(leaf_hashes)).

    Proofs for a run of consecutive entries need few nodes besides these, so an export computes
    them from the leaves it holds instead of reading them back one by one.
    """
    nodes: dict[NodeId, bytes] = {(0, start + i): h for i, h in enumerate(leaf_hashes)}
    level, first, hashes = 0, start, list(leaf_hashes)
    sha256, prefix = _sha256, _NODE_PREFIX
    while len(hashes) > 1:
        # A node at the next level needs both children; an unpaired edge child has no parent here.
        offset = first & 1
        parents = [
            sha256(prefix + hashes[i] + hashes[i + 1]).digest()
            for i in range(offset, len(hashes) - 1, 2)
        ]
        level, first, hashes = level + 1, (first + offset) >> 1, parents
        nodes.update(((level, first + i), h) for i, h in enumerate(hashes))
    return nodes


def range_proof_node_ids(start: int, end: int, size: int) -> set[NodeId]:
    """The stored nodes that the inclusion proofs of leaves [start, end) need besides
    `range_subtrees` of those leaves.

    A proof hash lying wholly left of `start` is a left sibling on the path of every leaf right
    of it, so it is on the path of leaf `start` too; likewise on the right with leaf end - 1. A
    proof hash straddling an edge is built from those and the range's own subtrees.
    """
    return plan_node_ids(inclusion_proof_plan(start, size)) | plan_node_ids(
        inclusion_proof_plan(end - 1, size)
    )


def range_inclusion_proofs(
    start: int, end: int, size: int, lookup: Mapping[NodeId, bytes]
) -> Iterator[tuple[int, list[bytes]]]:
    """(index, inclusion proof) of every leaf in [start, end), in order, by one walk down the
    tree that computes each subtree hash once for all the leaves below it."""
    if not 0 <= start < end <= size:
        raise ProofError(f"no leaves [{start}, {end}) in a tree of size {size}")

    computed: dict[NodeId, bytes] = {}

    def node(level: int, index: int) -> bytes:
        # A sibling that straddles an edge of the range is built from its halves: one is
        # wholly outside (on the edge leaf's path), the other inside or straddling in turn.
        found = lookup.get((level, index)) or computed.get((level, index))
        if found is None:
            if level == 0:
                raise ProofError(f"the hash of leaf {index} is not available")
            found = node_hash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1))
            computed[(level, index)] = found
        return found

    def subtree(first: int, stop: int) -> bytes:
        hashes = [node(level, index) for level, index in perfect_subtrees(first, stop)]
        return fold_subtrees(hashes)

    def walk(first: int, stop: int, path: list[bytes]) -> Iterator[tuple[int, list[bytes]]]:
        if stop - first == 1:
            yield first, path[::-1]
            return
        middle = first + _largest_power_of_two_below(stop - first)
        if start < middle:
            yield from walk(first, middle, [*path, subtree(middle, stop)])
        if end > middle:
            yield from walk(middle, stop, [*path, subtree(first, middle)])

    return walk(0, size, [])


def plan_node_ids(plan: Iterable[tuple[NodeId, ...]]) -> set[NodeId]:
    """Every node a plan needs, to fetch them in one query."""
    return {node for subtrees in plan for node in subtrees}


def assemble_proof(
    plan: Iterable[tuple[NodeId, ...]], lookup: Mapping[NodeId, bytes]
) -> list[bytes]:
    """Turn a plan into proof hashes, given the stored hash of every node it names."""
    proof: list[bytes] = []
    for subtrees in plan:
        try:
            hashes = [lookup[node] for node in subtrees]
        except KeyError as missing:
            raise ProofError(f"the hash of subtree {missing.args[0]} is not available") from None
        proof.append(fold_subtrees(hashes))
    return proof


# ---------------------------------------------------------------------------------------------
# The frontier (compact range [0, size))
# ---------------------------------------------------------------------------------------------


class MerkleFrontier:
    """The perfect subtrees covering leaves [0, size): all a log needs to append and sign roots.

    Their sizes are the binary digits of `size`, largest (leftmost) first.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"tree size {size} is negative")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, not {len(hashes)}"
            )
        _check_hash_sizes(hashes, "frontier hashes")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def node_ids(self) -> tuple[NodeId, ...]:
        """The `NodeId`s of `hashes`, in the same order."""
        return perfect_subtrees(0, self._size)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf; return the perfect subtrees of level >= 1 it completes, lowest first.

        Like incrementing a binary counter: each trailing 1 bit of the old size is a subtree that
        merges with the new one into a subtree twice as large.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf_hash)}")
        completed: list[tuple[NodeId, bytes]] = []
        node, level, index, carry = leaf_hash, 0, self._size, self._size
        while carry & 1:
            node = _sha256(_NODE_PREFIX + self._hashes.pop() + node).digest()  # node_hash, inlined
            level, index, carry = level + 1, index >> 1, carry >> 1
            completed.append(((level, index), node))
        self._hashes.append(node)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        completed: list[tuple[NodeId, bytes]] = []
        for leaf in leaf_hashes:
            completed.extend(self.append(leaf))
        return completed

    def root(self) -> bytes:
        return fold_subtrees(self._hashes) if self._hashes else EMPTY_ROOT

    def copy(self) -> MerkleFrontier:
        return MerkleFrontier(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> MerkleFrontier:
        if len(data) != HASH_SIZE * size.bit_count():
            raise ValueError(
                f"a frontier of size {size} is {HASH_SIZE * size.bit_count()} bytes, "
                f"not {len(data)}"
            )
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleFrontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------


def _inclusion_proof_length(index: int, size: int) -> int:
    # Below the highest bit where index and size - 1 differ, the path has a sibling at every
    # level; above it, one for each 1 bit of the index (a complete left subtree beside it).
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _check_proof_hashes(proof: Sequence[bytes], expected_length: int) -> None:
    if len(proof) != expected_length:
        raise ProofError(f"proof has {len(proof)} hashes, expected exactly {expected_length}")
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofError(f"proof hash {position} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    *, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1-4)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
    _check_proof_hashes(proof, _inclusion_proof_length(index, size))
    # Step 2: fn walks the leaf's index and sn the last index up the tree. (node_hash is
    # inlined: bundles verify one proof per entry, and the call is a third of the cost.)
    fn, sn = index, size - 1
    r = leaf_hash
    sha256, prefix = _sha256, _NODE_PREFIX
    for p in proof:
        if sn == 0:  # step 4a
            raise ProofError("proof is too long for the tree size")
        if fn & 1 or fn == sn:
            r = sha256(prefix + p + r).digest()
            if not fn & 1:
                # fn is the last node of its level with no right sibling: climb until it is a
                # right child again (these levels have no proof hash).
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(prefix + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # step 5
        raise ProofError("proof is too short for the tree size")
    return r


def verify_inclusion(
    *, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf with hash `leaf_hash` is at `index` in the tree with `root`.

    Returns None on success, raises ProofError saying what failed.
    """
    computed = root_from_inclusion_proof(leaf_hash=leaf_hash, index=index, size=size, proof=proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} leads to root {computed.hex()}, "
            f"not the expected {root.hex()} of tree size {size}"
        )


def verify_consistency(
    *, old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree (new_size, new_root) extends the tree (old_size, old_root).

    RFC 9162 §2.1.4.2. Returns None on success, raises ProofError saying what failed. An
    old_size of 0 is refused (see the module docstring): skip the call when starting from an
    empty tree.
    """
    if old_size == 0:
        raise ProofError(
            "there is no consistency proof from tree size 0; every tree extends the empty tree, "
            "so a verifier starting from nothing checks no proof"
        )
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError(f"proof between equal sizes must be empty, it has {len(proof)} hashes")
        if old_root != new_root:
            raise ProofError(f"trees of the same size {old_size} have different roots")
        return
    # Step 1, with the exact length the reference verifier demands.
    _check_proof_hashes(proof, len(consistency_proof_plan(old_size, new_size)))
    # Step 2: when the old tree is a perfect subtree of the new one the proof omits its root.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4: skip the levels where the old tree's last node is a right child.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # Step 5: fr rebuilds the old root, sr the new one.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # step 6a
            raise ProofError("proof is too long for the tree sizes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # Step 7.
    if sn != 0:
        raise ProofError("proof is too short for the tree sizes")
    if fr != old_root:
        raise ProofError(
            f"consistency proof rebuilds old root {fr.hex()}, not the expected {old_root.hex()} "
            f"of tree size {old_size}"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof rebuilds new root {sr.hex()}, not the expected {new_root.hex()} "
            f"of tree size {new_size}"
        )
