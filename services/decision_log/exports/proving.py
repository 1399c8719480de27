"""An export's entries, read block by block and checked on their way into the bundle
(DESIGN.md, invariant 7), with ``decision_log.evidence``, from the exact bytes the bundle holds.

Strictly (the default), the first check that fails stops the export with its
``IntegrityFailure``:

1. every index asked for is in the store (for a run, ``check_contiguous``), and so is the entry
   before each one, whose bytes its link is checked against;
2. each leaf hashes to its stored hash, says its own index and chain, and links to the entry
   before it as that entry's bytes hash now (``check_entries``; the entry before a run is read
   once, then carried from block to block);
3. each entry is proved included in the export's checkpoint: a run of consecutive entries with
   ``check_run_inclusion`` (one check for the whole run), and if that fails the run is proved
   again entry by entry against the stored tree, so that the failure names the first entry at
   fault; the entries of a selection one by one.

Under an administrator's override (``judge_as_stored``) nothing stops the export: the same
checks run entry by entry, each failure is written down (``OverriddenFailures``) and the entries
go into the bundle as stored, with proofs from the stored tree, so that the bundle's own
verification fails at the first entry at fault, on the same check.

Reads are async; the checks are CPU work, which the builder runs in a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from http_edge.problems import IntegrityFailure
from ledger import membership
from ledger.merkle import (
    NodeId,
    assemble_proof,
    inclusion_proof_plan,
    plan_node_ids,
    range_proof_node_ids,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.chains import repository as chain_rows
from decision_log.evidence import (
    CheckedCheckpoint,
    StoredEntry,
    check_contiguous,
    check_entries,
    check_inclusion,
    check_run_inclusion,
)
from decision_log.exports import repository
from decision_log.problems import Problem, ProjectionMismatch

# What stands in a stored-tree proof for a hash the store no longer has: no leaf hashes to it,
# so the proof fails where that hash is needed, and only there.
ABSENT_HASH = bytes(32)
# How many failures an overridden export lists; the total is counted beyond them.
MAX_LISTED_FAILURES = 100


@dataclass(frozen=True, slots=True)
class ExportedChain:
    chain_id: int
    tenant: str
    chain: str


@dataclass(frozen=True, slots=True)
class ExportedEntry:
    index: int
    leaf: bytes  # the exact bytes written to entries.jsonl: the ones hashed and proved
    proof: Sequence[bytes]


@dataclass
class OverriddenFailures:
    """What failed and was exported anyway, under an administrator's override."""

    listed: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        if len(self.listed) < MAX_LISTED_FAILURES:
            self.listed.append(
                {"type": problem.slug, "detail": problem.detail, **problem.extensions}
            )


def missing_entry(index: int) -> IntegrityFailure:
    return IntegrityFailure(
        f"entry {index} is missing from the store",
        check="missing",
        index=index,
        expected=str(index),
        found=None,
    )


# ------------------------------------------------------------------------------- strictly


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run of consecutive entries as read, with what its checks need from around it."""

    start: int
    stop: int
    entries: list[StoredEntry]
    before: bytes | None  # the leaf of entry start - 1 (None for a run from entry 0)
    outside: dict[NodeId, bytes]  # stored subtrees the run's proofs need beyond its own leaves


async def read_run(
    connection: AsyncConnection,
    *,
    chain: ExportedChain,
    start: int,
    stop: int,
    before: bytes | None,
    size: int,
) -> StoredRun:
    """Entries [start, stop), the one before them unless ``before`` is given, and the stored
    subtrees outside the run that their proofs against the tree of ``size`` need."""
    first = start - 1 if before is None and start > 0 else start
    rows = await repository.entries_between(
        connection, chain_id=chain.chain_id, start=first, stop=stop
    )
    entries = [StoredEntry(index, leaf, stored) for index, leaf, stored in rows]
    if first < start:
        if not entries or entries[0].index != first:
            raise missing_entry(first)
        before = entries.pop(0).leaf
    wanted = {
        node for node in range_proof_node_ids(start, stop, size) if not _inside(node, start, stop)
    }
    outside = await chain_rows.merkle_nodes(connection, chain_id=chain.chain_id, node_ids=wanted)
    return StoredRun(start=start, stop=stop, entries=entries, before=before, outside=outside)


def prove_run(
    run: StoredRun, *, chain: ExportedChain, checkpoint: CheckedCheckpoint
) -> list[ExportedEntry]:
    """Steps 1 to 3 for a run (CPU only). An inclusion failure names the run's first entry:
    ``name_first_unproven`` finds the one at fault."""
    check_contiguous([entry.index for entry in run.entries], start=run.start, stop=run.stop)
    hashes = check_entries(
        run.entries,
        tenant=chain.tenant,
        chain=chain.chain,
        predecessors=None if run.before is None else {run.start - 1: run.before},
    )
    proofs = check_run_inclusion(
        start=run.start, hashes=hashes, outside=run.outside, checkpoint=checkpoint
    )
    return [
        ExportedEntry(entry.index, entry.leaf, proof)
        for entry, proof in zip(run.entries, proofs, strict=True)
    ]


async def name_first_unproven(
    connection: AsyncConnection,
    *,
    run: StoredRun,
    chain: ExportedChain,
    checkpoint: CheckedCheckpoint,
) -> None:
    """Prove a run that failed as a whole entry by entry against the stored tree, and raise
    the failure of the first entry that does not verify (returns if none fails alone).

    The stored inner nodes are what the log committed when the entries were appended, so an
    entry rewritten since (with its stored hash and the links after it recomputed) fails here
    at its own index; its left neighbour fails too when the rewritten entry is its sibling
    leaf, the one stored hash that changed with it.
    """
    proofs = await stored_proofs(
        connection,
        chain_id=chain.chain_id,
        indexes=[entry.index for entry in run.entries],
        size=checkpoint.size,
        stand_ins={},
    )
    for entry in run.entries:
        check_inclusion(
            index=entry.index,
            hashed=entry.stored_hash,  # equal to the recomputed hash: prove_run checked it
            proof=proofs[entry.index],
            checkpoint=checkpoint,
        )


@dataclass(frozen=True, slots=True)
class StoredSelection:
    """Chosen entries as read, with the entries before them that their links are checked
    against, and the stored tree's proofs (and, read with neighbours, second proofs)."""

    indexes: list[int]
    rows: dict[int, StoredEntry]
    proofs: dict[int, list[bytes]]
    # Read with neighbours: a second proof of an entry whose sibling leaf's stored hash is not
    # the one the leaf after that sibling links to (a swapped or replaced row); it is the one
    # exported if it verifies where the stored one does not, so that an intact entry beside a
    # tampered one is not blamed for its neighbour.
    second_proofs: dict[int, list[bytes]] = field(default_factory=dict)


async def read_selection(
    connection: AsyncConnection,
    *,
    chain: ExportedChain,
    indexes: Sequence[int],
    size: int,
    neighbours: bool = False,
) -> StoredSelection:
    """The chosen entries, each one's predecessor (and with ``neighbours`` its successor, whose
    ``prev`` stands in for an entry the store lacks), and proofs from the stored tree."""
    wanted = list(indexes)
    around = {index - 1 for index in wanted if index > 0}
    if neighbours:
        around |= {index + 1 for index in wanted}
    found = await repository.entries_at(
        connection, chain_id=chain.chain_id, indexes=sorted(set(wanted) | around)
    )
    rows = {index: StoredEntry(index, leaf, stored) for index, leaf, stored in found}
    stand_ins = {
        index - 1: prev
        for index, entry in rows.items()
        if index - 1 not in rows and (prev := claimed_prev(entry.leaf)) is not None
    }
    proofs = await stored_proofs(
        connection,
        chain_id=chain.chain_id,
        indexes=[index for index in wanted if index in rows],
        size=size,
        stand_ins=stand_ins,
    )
    second_proofs = {}
    if neighbours:
        for index, proof in proofs.items():
            sibling = index ^ 1
            claimed = _claimed_hash(rows, sibling)
            if (
                proof
                and sibling < size
                and inclusion_proof_plan(index, size)[0] == ((0, sibling),)
                and claimed is not None
                and claimed != proof[0]
            ):
                second_proofs[index] = [claimed, *proof[1:]]
    return StoredSelection(indexes=wanted, rows=rows, proofs=proofs, second_proofs=second_proofs)


def _claimed_hash(rows: Mapping[int, StoredEntry], index: int) -> bytes | None:
    """The hash of entry ``index`` as the entry after it links to it."""
    after = rows.get(index + 1)
    return None if after is None else claimed_prev(after.leaf)


def prove_selection(
    selection: StoredSelection,
    *,
    chain: ExportedChain,
    checkpoint: CheckedCheckpoint,
    subjects: Mapping[int, str] | None,
) -> list[ExportedEntry]:
    """Steps 1 to 3 for chosen entries, one by one (CPU only); and for entries chosen by
    decision (``subjects``), that each is about the decision the read model lists it under."""
    chosen = set(selection.indexes)
    needed = chosen | {index - 1 for index in chosen if index > 0}
    for index in sorted(needed):
        if index not in selection.rows:
            raise missing_entry(index)
    entries = [selection.rows[index] for index in selection.indexes]
    hashes = check_entries(
        entries,
        tenant=chain.tenant,
        chain=chain.chain,
        predecessors={index: selection.rows[index].leaf for index in needed - chosen},
    )
    foreign = {} if subjects is None else foreign_entries(entries, subjects)
    exported = []
    for entry, hashed in zip(entries, hashes, strict=True):
        proof = selection.proofs[entry.index]
        check_inclusion(index=entry.index, hashed=hashed, proof=proof, checkpoint=checkpoint)
        if subjects is not None:
            check_membership(entry.index, subjects[entry.index], foreign)
        exported.append(ExportedEntry(entry.index, entry.leaf, proof))
    return exported


# -------------------------------------------------------------------- under an override


def judge_as_stored(
    selection: StoredSelection,
    *,
    chain: ExportedChain,
    checkpoint: CheckedCheckpoint,
    subjects: Mapping[int, str] | None,
    failures: OverriddenFailures,
) -> list[ExportedEntry]:
    """Every chosen entry the store has, as stored, with its stored-tree proof; each check that
    fails is written down in ``failures`` instead of stopping the export (CPU only)."""
    chosen = set(selection.indexes)
    foreign = (
        {}
        if subjects is None
        else foreign_entries(
            (selection.rows[i] for i in selection.indexes if i in selection.rows), subjects
        )
    )
    exported = []
    for index in selection.indexes:
        if index > 0 and index - 1 not in chosen and index - 1 not in selection.rows:
            failures.add(missing_entry(index - 1))  # a gap just before the selection
        entry = selection.rows.get(index)
        if entry is None:
            failures.add(missing_entry(index))
            continue
        before = selection.rows.get(index - 1)
        proof: Sequence[bytes] = selection.proofs[index]
        try:
            (hashed,) = check_entries(
                [entry],
                tenant=chain.tenant,
                chain=chain.chain,
                predecessors=None if before is None else {index - 1: before.leaf},
            )
            proof = _proof_that_verifies(selection, index, hashed, checkpoint)
            if subjects is not None:
                check_membership(index, subjects[index], foreign)
        except (IntegrityFailure, ProjectionMismatch) as failure:
            failures.add(failure)
        exported.append(ExportedEntry(index, entry.leaf, proof))
    return exported


def _proof_that_verifies(
    selection: StoredSelection, index: int, hashed: bytes, checkpoint: CheckedCheckpoint
) -> Sequence[bytes]:
    """The stored proof, or the second one where only that verifies; raises the stored
    proof's failure if neither does."""
    stored = selection.proofs[index]
    try:
        check_inclusion(index=index, hashed=hashed, proof=stored, checkpoint=checkpoint)
    except IntegrityFailure:
        second = selection.second_proofs.get(index)
        if second is not None:
            with contextlib.suppress(IntegrityFailure):
                check_inclusion(index=index, hashed=hashed, proof=second, checkpoint=checkpoint)
                return second
        raise
    return stored


# ------------------------------------------------------------------------------ helpers


async def stored_proofs(
    connection: AsyncConnection,
    *,
    chain_id: int,
    indexes: Iterable[int],
    size: int,
    stand_ins: Mapping[int, bytes],
) -> dict[int, list[bytes]]:
    """Each entry's inclusion proof in the tree of ``size`` from the stored nodes, unchecked.

    A leaf hash the store lacks (its entry is gone) is taken from ``stand_ins``, else the
    absent hash, as is any inner node the store lacks."""
    plans = {index: inclusion_proof_plan(index, size) for index in indexes}
    needed = plan_node_ids(node for plan in plans.values() for node in plan)
    nodes = await chain_rows.merkle_nodes(connection, chain_id=chain_id, node_ids=needed)
    for node in needed - nodes.keys():
        level, index = node
        nodes[node] = stand_ins.get(index, ABSENT_HASH) if level == 0 else ABSENT_HASH
    return {index: assemble_proof(plan, nodes) for index, plan in plans.items()}


def foreign_entries(
    entries: Iterable[StoredEntry], subjects: Mapping[int, str]
) -> dict[int, str | None]:
    """Entries the read model lists in a decision's timeline (``subjects``) that the events
    themselves put in another decision (ledger/membership.py), with the decision they are of:
    a selective export never discloses another decision's event on the read model's word."""
    listed: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    unreadable: dict[int, str | None] = {}
    for entry in entries:
        try:
            event = orjson.loads(entry.leaf).get("event")
        except (orjson.JSONDecodeError, AttributeError):
            event = None
        if not isinstance(event, dict):
            unreadable[entry.index] = None
            continue
        listed.setdefault(subjects[entry.index], []).append((entry.index, event))
    foreign = dict(unreadable)
    for decision_id, events in listed.items():
        for index, found in membership.decision_ids_of(events).items():
            if found != decision_id:
                foreign[index] = found
    return foreign


def check_membership(index: int, decision_id: str, foreign: Mapping[int, str | None]) -> None:
    if index in foreign:
        found = foreign[index]
        raise ProjectionMismatch(
            f"entry {index} is in the read model's timeline of decision {decision_id!r}, "
            f"but it is an event of {found!r}",
            decision_id=decision_id,
            column="timeline",
            expected=f"events of {decision_id!r}",
            found=f"entry {index}, an event of {found!r}",
        )


def claimed_prev(leaf: bytes) -> bytes | None:
    """The hash a leaf says its predecessor has, if it can be read."""
    try:
        prev = orjson.loads(leaf).get("prev")
        return bytes.fromhex(prev) if isinstance(prev, str) and len(prev) == 64 else None
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        return None


def _inside(node: NodeId, start: int, stop: int) -> bool:
    """Whether the perfect subtree ``node`` lies wholly inside the leaves [start, stop)."""
    level, index = node
    return index << level >= start and (index + 1) << level <= stop
