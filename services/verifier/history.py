"""What the log serves now against what this verifier checked before, and the kind of tamper at
the first difference (no I/O).

`HistoryWindow` re-reads entries [start, stop) of a chain, already verified and cosigned, from
the raw leaf bytes, and compares each with the leaf hash the verifier remembers computing for
that index when it first replayed it (invariant 5: the log's stored hashes are never read here):

1. the entry served at each position has that index (none skipped, none repeated);
2. SHA-256(0x00 || leaf) equals the remembered leaf hash, so the leaf is byte for byte the one
   checked and cosigned (its format, its own index and its `prev` link were checked then);
3. the remembered hashes are appended to a Merkle frontier, so that a whole pass can rebuild the
   root the verifier cosigned at its end (a check of the verifier's own memory).

It stops at the first difference and keeps what is needed to name it: the served leaf and the
`prev` of the entry served after it. `name_difference` then says which tamper it is:

| what the re-read shows at index i                                      | kind                |
| ---------------------------------------------------------------------- | ------------------- |
| no entry i, and none after it, and the log's checkpoint ends at i      | `rollback`          |
| no entry i, but a later one (or a checkpoint that still claims i)      | `missing-entry`     |
| a leaf that says it is another entry (index, tenant or chain)          | `misplaced-leaf`    |
| a leaf its successor does not link to, or whose stored hash differs    | `leaf-mismatch`     |
| a self-consistent leaf received after the verifier cosigned index i    | `forked-history`    |
| a self-consistent leaf received no later than that                     | `rewritten-history` |

"Self-consistent" means the log's own data agrees with the new leaf: the next entry's `prev` is
its hash (or, with no next entry, the log's stored leaf hash is). An entry edited in place
leaves its successor's link (and usually its stored hash) pointing at the old bytes; a rewrite
recomputes them. A rewrite keeps the times of the entries it replaces, while entries appended
after a cut are received after the verifier cosigned the tree that held the entries they
replace: an entry received after the first checkpoint this verifier cosigned over its index
cannot be the entry it cosigned, so the log cut back and continued. The times compared are the
log's `received_at` and the verifier's own clock at cosigning; a skew between the two clocks
can only move a finding between these two kinds, never hide it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from ledger.errors import VerificationError
from ledger.leaf import Leaf, parse_received_at
from ledger.merkle import HASH_SIZE, MerkleFrontier

from verifier.replay import MALFORMED_INDEX, Finding, leftover_entries, split_entries

__all__ = ["Difference", "HistoryWindow", "name_difference"]

# The largest window a re-read compares at once (also the run length of remembered hashes).
MAX_WINDOW: Final = 65536

What = Literal["changed", "skipped", "repeated", "malformed", "short"]


@dataclass(frozen=True)
class Difference:
    """The first entry that is not what the verifier remembers, with what was seen there."""

    index: int
    what: What
    remembered: bytes
    # "changed": the leaf served at `index`; "skipped"/"repeated": the index served instead.
    leaf: bytes | None = None
    served_index: int | None = None
    # "changed": whether the log served an entry index + 1, and that entry's `prev` (None if
    # its leaf could not be read).
    successor_served: bool = False
    successor_prev: bytes | None = None

    @property
    def served_hash(self) -> bytes | None:
        return None if self.leaf is None else hashlib.sha256(b"\x00" + self.leaf).digest()


class HistoryWindow:
    """Re-reads entries [start, stop) against `remembered` (their leaf hashes, concatenated).

    Feed it the log's stream of [start, stop + 1): the entry after the window, where the log
    has one, tells a hole at the window's last index from a cut, and gives a changed last entry
    its successor. `frontier` covers the remembered hashes [0, start) and is extended over the
    window's.
    """

    def __init__(
        self, *, start: int, stop: int, remembered: bytes, frontier: MerkleFrontier
    ) -> None:
        if not 0 <= start <= stop or stop - start > MAX_WINDOW:
            raise ValueError(f"a window is at most {MAX_WINDOW} entries, not [{start}, {stop})")
        if len(remembered) != HASH_SIZE * (stop - start):
            raise ValueError("one remembered hash per entry of the window is needed")
        if frontier.size != start:
            raise ValueError(f"the frontier covers {frontier.size} entries, not {start}")
        self.start = start
        self.stop = stop
        self.position = start
        self.frontier = frontier.copy()
        self.difference: Difference | None = None
        self._remembered = remembered
        self._changed: tuple[int, bytes] | None = None  # waiting for its successor
        self._done = False
        self._buffer = b""
        self._binary = False

    @property
    def settled(self) -> bool:
        """Nothing more of the stream can change the outcome."""
        return self._done

    @property
    def compared_all(self) -> bool:
        """Every entry of the window matched; only the entry after it may still come."""
        return self.position == self.stop and self._changed is None and self.difference is None

    def feed(self, data: bytes, *, binary: bool = False) -> None:
        """Compare every complete entry in `data`; `binary`: leaf frames, not NDJSON."""
        self._binary = binary
        if self._done:
            return
        records, self._buffer = split_entries(self._buffer + data, binary=binary)
        self._compare(records)

    def finish(self) -> Difference | None:
        """The stream has ended; the first difference, if any."""
        if not self._done and self._buffer:
            records = leftover_entries(self._buffer, binary=self._binary)
            self._buffer = b""
            self._compare(records)
        if self._changed is not None:
            self._settle_change(successor=None)
        if not self._done and self.position < self.stop:
            self._differ(self.position, "short")
        self._done = True
        return self.difference

    def _compare(self, records: list[tuple[int, bytes]]) -> None:
        remembered, start, stop = self._remembered, self.start, self.stop
        sha256, append = hashlib.sha256, self.frontier.append
        position = self.position
        for index, leaf in records:
            if self._changed is not None:
                self._settle_change(successor=(index, leaf))
                return
            if position == stop:
                self._done = True  # the entry after the window: no hole at stop - 1
                break
            if index != position:
                self.position = position
                if index == MALFORMED_INDEX:
                    self._differ(position, "malformed")
                else:
                    what: What = "skipped" if index > position else "repeated"
                    self._differ(position, what, served_index=index)
                return
            hashed = sha256(b"\x00" + leaf).digest()
            offset = (position - start) * HASH_SIZE
            if hashed != remembered[offset : offset + HASH_SIZE]:
                self.position = position
                self._changed = (position, leaf)
                continue
            append(hashed)
            position += 1
        self.position = position

    def _remembered_at(self, index: int) -> bytes:
        offset = (index - self.start) * HASH_SIZE
        return self._remembered[offset : offset + HASH_SIZE]

    def _settle_change(self, *, successor: tuple[int, bytes] | None) -> None:
        assert self._changed is not None
        index, leaf = self._changed
        self._changed = None
        served = successor is not None and successor[0] == index + 1
        prev = _prev_of(successor[1]) if served and successor is not None else None
        self.difference = Difference(
            index=index,
            what="changed",
            remembered=self._remembered_at(index),
            leaf=leaf,
            successor_served=served,
            successor_prev=prev,
        )
        self._done = True

    def _differ(self, index: int, what: What, *, served_index: int | None = None) -> None:
        self.difference = Difference(
            index=index,
            what=what,
            remembered=self._remembered_at(index),
            served_index=served_index,
        )
        self._done = True


def _prev_of(leaf: bytes) -> bytes | None:
    try:
        return Leaf.parse(leaf).prev
    except (VerificationError, ValueError):
        return None


def name_difference(
    difference: Difference,
    *,
    tenant: str,
    chain: str,
    logged_size: int | None,
    stored_hash: bytes | None,
    first_cosigned_at: datetime | None,
) -> Finding:
    """The finding for the first difference (see the table in the module docstring).

    `logged_size`: the size of the log's latest checkpoint, verified under its key (None if it
    did not verify or could not be read); `stored_hash`: the leaf hash the log stores for a
    changed entry that has no successor (None if not asked); `first_cosigned_at`: when this
    verifier first cosigned a checkpoint covering the index.
    """
    index, remembered = difference.index, difference.remembered.hex()
    evidence: dict[str, Any] = {"remembered_leaf_hash": remembered}
    if difference.what == "short":
        evidence["logged_size"] = logged_size
        if logged_size is not None and logged_size > index:
            return Finding(
                "missing-entry",
                f"the log's checkpoint of size {logged_size} claims entry {index}, which it no "
                "longer serves",
                index=index,
                expected=remembered,
                found="missing",
                evidence=evidence,
            )
        return Finding(
            "rollback",
            f"the log no longer has entries from {index} on, which this verifier cosigned",
            index=index,
            expected=remembered,
            found="missing",
            evidence=evidence,
        )
    if difference.what == "skipped":
        return Finding(
            "missing-entry",
            f"the log skips entry {index}: the next entry it serves is {difference.served_index}",
            index=index,
            expected=remembered,
            found="missing",
            evidence={**evidence, "next_served_index": difference.served_index},
        )
    if difference.what == "repeated":
        return Finding(
            "unexpected-entry",
            f"the log serves entry {difference.served_index} again where {index} belongs",
            index=index,
            expected=str(index),
            found=str(difference.served_index),
            evidence=evidence,
        )
    if difference.what == "malformed" or difference.leaf is None:
        return Finding(
            "malformed-entry",
            "the log serves something that is not an entry where this verifier checked one",
            index=index,
            expected=remembered,
            evidence=evidence,
        )
    served = difference.served_hash
    assert served is not None
    evidence.update(served_leaf_hash=served.hex())
    try:
        leaf = Leaf.parse(difference.leaf)
    except (VerificationError, ValueError) as error:
        return Finding(
            "leaf-mismatch",
            f"entry {index} was edited: its bytes are no longer a leaf ({error})",
            index=index,
            expected=remembered,
            found=served.hex(),
            evidence=evidence,
        )
    for field, want, got in (
        ("tenant", tenant, leaf.tenant),
        ("chain", chain, leaf.chain),
        ("index", index, leaf.index),
    ):
        if want != got:
            return Finding(
                "misplaced-leaf",
                f"the leaf served at index {index} belongs to {field} {got!r}",
                index=index,
                expected=str(want),
                found=str(got),
                evidence=evidence,
            )
    if difference.successor_served:
        link = None if difference.successor_prev is None else difference.successor_prev.hex()
        evidence["successor_prev"] = link
        edited = difference.successor_prev != served
        how = f"entry {index + 1} still links to the entry that was there"
    else:
        evidence["log_stored_leaf_hash"] = None if stored_hash is None else stored_hash.hex()
        edited = stored_hash is not None and stored_hash != served
        how = "the log's own stored leaf hash is still the old one"
    if edited:
        return Finding(
            "leaf-mismatch",
            f"entry {index} was edited in place: {how}",
            index=index,
            expected=remembered,
            found=served.hex(),
            evidence=evidence,
        )
    received_at = parse_received_at(leaf.received_at)
    evidence.update(
        received_at=leaf.received_at,
        first_cosigned_at=None if first_cosigned_at is None else first_cosigned_at.isoformat(),
    )
    if first_cosigned_at is not None and received_at > first_cosigned_at:
        return Finding(
            "forked-history",
            f"the log cut back to {index} and continued: its entry {index} was received after "
            "this verifier cosigned the entry that was there",
            index=index,
            expected=remembered,
            found=served.hex(),
            evidence=evidence,
        )
    return Finding(
        "rewritten-history",
        f"entries from {index} on were rewritten with their hashes and links recomputed",
        index=index,
        expected=remembered,
        found=served.hex(),
        evidence=evidence,
    )
