"""What the verifier remembers of a chain's leaves, across epochs.

Every leaf hash the verifier recomputed and found committed is stored once, under the epoch in
which it was replayed (`verifier.leaf_hashes`, in runs of at most `LEAF_HASH_RUN`). An epoch
that continues from a checkpoint cosigned in an earlier one (`verifier.epochs.start_size`)
keeps that epoch's hashes below its start: its *lineage* says which epoch remembers which range.
Reads are by window, so a chain of any length is compared in bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.leaf import GENESIS_PREV
from ledger.merkle import HASH_SIZE, MerkleFrontier
from sqlalchemy.ext.asyncio import AsyncConnection

from verifier import repository

# Leaf hashes are remembered in runs of at most this many (2 MiB per row).
LEAF_HASH_RUN: Final = 65536


class MemoryGap(Exception):
    """The verifier's own store lacks leaf hashes it wrote: it was altered behind its back."""


@dataclass(frozen=True)
class Segment:
    epoch: int
    start: int
    stop: int | None  # None: open-ended (the current epoch)


@dataclass(frozen=True)
class Lineage:
    """Which epoch remembers which indexes of the chain, newest epoch first."""

    segments: tuple[Segment, ...]

    @classmethod
    def of(cls, *, epoch: int, starts: Sequence[Any]) -> Lineage:
        """`starts`: rows (epoch, start_size, history_replaced) of `verifier.epochs`.

        Epoch 0, and epochs written before epochs were recorded, start from nothing.
        """
        start_of = {int(row.epoch): int(row.start_size) for row in starts}
        segments: list[Segment] = []
        upper: int | None = None
        for number in range(epoch, -1, -1):
            lower = start_of.get(number, 0)
            if upper is None or lower < upper:
                segments.append(Segment(number, lower, upper))
                upper = lower
            if upper == 0:
                break
        return cls(tuple(segments))

    def parts(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(epoch, start, stop) pieces of [start, stop), in index order."""
        pieces = []
        for segment in self.segments:
            low = max(start, segment.start)
            high = stop if segment.stop is None else min(stop, segment.stop)
            if low < high:
                pieces.append((segment.epoch, low, high))
        return sorted(pieces, key=lambda piece: piece[1])

    def epoch_of(self, index: int) -> int:
        for segment in self.segments:
            if index >= segment.start and (segment.stop is None or index < segment.stop):
                return segment.epoch
        raise ValueError(f"no epoch remembers index {index}")


async def lineage(connection: AsyncConnection, *, chain_id: int, epoch: int) -> Lineage:
    return Lineage.of(epoch=epoch, starts=await repository.epochs(connection, chain_id=chain_id))


async def remembered_window(
    connection: AsyncConnection, *, chain_id: int, lineage: Lineage, start: int, stop: int
) -> bytes:
    """The remembered leaf hashes of entries [start, stop), concatenated (32 bytes each)."""
    pieces: list[bytes] = []
    for epoch, low, high in lineage.parts(start, stop):
        runs = await repository.leaf_hash_runs(
            connection, chain_id=chain_id, epoch=epoch, start=low, stop=high, longest=LEAF_HASH_RUN
        )
        position = low
        for run in runs:
            run_start, data = int(run.start), bytes(run.hashes)
            run_stop = run_start + len(data) // HASH_SIZE
            if run_stop <= position:
                continue
            if run_start > position:
                break
            take = min(run_stop, high)
            pieces.append(data[(position - run_start) * HASH_SIZE : (take - run_start) * HASH_SIZE])
            position = take
            if position == high:
                break
        if position != high:
            raise MemoryGap(
                f"the verifier's store has no leaf hash for entry {position} (epoch {epoch})"
            )
    return b"".join(pieces)


async def remembered_frontier(
    connection: AsyncConnection, *, chain_id: int, lineage: Lineage, size: int
) -> tuple[MerkleFrontier, bytes]:
    """The Merkle frontier of the remembered leaf hashes [0, size) and the last of them (the
    genesis `prev` for size 0), read a run at a time."""
    frontier, last = MerkleFrontier(), GENESIS_PREV
    for start in range(0, size, LEAF_HASH_RUN):
        stop = min(start + LEAF_HASH_RUN, size)
        window = await remembered_window(
            connection, chain_id=chain_id, lineage=lineage, start=start, stop=stop
        )
        frontier.extend(window[i : i + HASH_SIZE] for i in range(0, len(window), HASH_SIZE))
        last = window[-HASH_SIZE:]
    return frontier, last
