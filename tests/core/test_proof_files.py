"""tlog-proof@v1 and consistency proof files, and proofs for runs of leaves: round trips, the
strict parsing a verifier relies on, and agreement with the RFC's naive definitions."""

from __future__ import annotations

import base64
import hashlib

import pytest
from ledger.errors import ProofError
from ledger.merkle import (
    MerkleFrontier,
    leaf_hash,
    range_inclusion_proofs,
    range_proof_node_ids,
    range_subtrees,
    reference_inclusion_proof,
)
from ledger.proofs import ConsistencyProofFile, TlogProof, read_tlog_proofs, split_tlog_proofs

CHECKPOINT = (
    "example.com/log\n3\n" + base64.b64encode(bytes(32)).decode() + "\n\n— example.com/log AAAA\n"
)
HASHES = tuple(hashlib.sha256(bytes([i])).digest() for i in range(3))


def test_a_tlog_proof_round_trips_in_the_c2sp_layout() -> None:
    proof = TlogProof(index=73894, hashes=HASHES, checkpoint=CHECKPOINT, extra=b"age-v1")
    text = proof.to_text()
    lines = text.split("\n")
    assert lines[:3] == [
        "c2sp.org/tlog-proof@v1",
        "extra " + base64.b64encode(b"age-v1").decode(),
        "index 73894",
    ]
    assert lines[3:6] == [base64.b64encode(h).decode() for h in HASHES]
    assert lines[6] == "" and text.endswith(CHECKPOINT)
    assert TlogProof.parse(text) == proof
    bare = TlogProof(index=0, hashes=(), checkpoint=CHECKPOINT)
    assert TlogProof.parse(bare.to_text()) == bare


@pytest.mark.parametrize(
    "text",
    [
        "c2sp.org/tlog-proof@v2\nindex 1\n\n" + CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 01\n\n" + CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex -1\n\n" + CHECKPOINT,
        f"c2sp.org/tlog-proof@v1\nindex {2**64}\n\n" + CHECKPOINT,  # not a uint64
        "c2sp.org/tlog-proof@v1\n\n" + CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 1\n"
        + base64.b64encode(bytes(31)).decode()
        + "\n\n"
        + CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 1\nnot base64!\n\n" + CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 1\n" + CHECKPOINT.replace("\n\n", "\n"),
    ],
)
def test_malformed_tlog_proofs_are_refused(text: str) -> None:
    with pytest.raises(ProofError):
        TlogProof.parse(text)


def test_concatenated_proofs_split_back_into_whole_documents() -> None:
    proofs = [TlogProof(index=i, hashes=HASHES[:i], checkpoint=CHECKPOINT) for i in range(3)]
    texts = [p.to_text() for p in proofs]
    assert list(split_tlog_proofs("".join(texts))) == texts
    assert [TlogProof.parse(t) for t in split_tlog_proofs("".join(texts))] == proofs
    with pytest.raises(ProofError):
        list(split_tlog_proofs("garbage\n" + texts[0]))


@pytest.mark.parametrize("chunk", [1, 2, 23, 24, 25, 100, 1 << 20])
def test_proofs_read_from_a_stream_split_as_from_a_whole_text(chunk: int) -> None:
    texts = [
        TlogProof(index=i, hashes=HASHES[: i % 4], checkpoint=CHECKPOINT).to_text()
        for i in range(20)
    ]
    data = "".join(texts).encode()
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert list(read_tlog_proofs(chunks)) == list(split_tlog_proofs(data.decode())) == texts
    assert list(read_tlog_proofs([])) == []
    for garbage in (b"garbage\n" + data, b"c2sp", b"c2sp.org/tlog-proof@v2\n"):
        with pytest.raises(ProofError):
            list(read_tlog_proofs([garbage[i : i + chunk] for i in range(0, len(garbage), chunk)]))


def test_a_consistency_proof_file_round_trips() -> None:
    proof = ConsistencyProofFile(old_size=3, hashes=HASHES, old_checkpoint=CHECKPOINT)
    assert proof.to_text().startswith("audit-trail.dev/tlog-consistency@v1\nold 3\n")
    assert ConsistencyProofFile.parse(proof.to_text()) == proof
    with pytest.raises(ProofError):
        ConsistencyProofFile.parse(proof.to_text().replace("old 3", "old x"))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 32, 45])
def test_proofs_for_a_run_of_leaves_equal_the_rfc_proofs(size: int) -> None:
    leaves = [leaf_hash(b"leaf %d" % i) for i in range(size)]
    stored = {(0, i): h for i, h in enumerate(leaves)}
    frontier = MerkleFrontier()
    for h in leaves:
        stored.update(frontier.append(h))
    for start in range(size):
        for end in range(start + 1, size + 1):
            known = range_subtrees(start, leaves[start:end])
            assert all(stored[node] == h for node, h in known.items())
            lookup = {**known, **{n: stored[n] for n in range_proof_node_ids(start, end, size)}}
            proofs = list(range_inclusion_proofs(start, end, size, lookup))
            assert [index for index, _ in proofs] == list(range(start, end))
            for index, proof in proofs:
                assert proof == reference_inclusion_proof(index, leaves), (size, start, end)


def test_a_run_of_leaves_needs_only_its_own_and_the_edge_nodes() -> None:
    leaves = [leaf_hash(b"%d" % i) for i in range(20)]
    known = range_subtrees(4, leaves[4:9])
    with pytest.raises(ProofError):
        list(range_inclusion_proofs(4, 9, 20, known))  # the outside nodes are missing
    stored = {(0, i): h for i, h in enumerate(leaves)}
    frontier = MerkleFrontier()
    for h in leaves:
        stored.update(frontier.append(h))
    with pytest.raises(ProofError, match="no leaves"):
        list(range_inclusion_proofs(4, 21, 20, stored))  # a range past the tree
