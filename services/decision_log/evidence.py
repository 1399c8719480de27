"""What the log hands out as proven is checked on the way out (DESIGN.md, invariant 7).

The stored hashes, Merkle nodes and cosignature rows are the log's own records, and a record
can be altered (an insider with the database, a restore, a bug). So an evidence-bearing answer
(a decision's evidence, an export) rests only on what is checked here, from the exact bytes it
serves, at the moment it serves them:

1. each leaf hashes to the hash stored for it, says its own index, and its ``prev`` is the
   hash of the leaf before it, recomputed from that leaf's bytes (``check_entries``);
2. its inclusion proof leads to the root of the checkpoint it cites (``check_inclusion``);
3. the checkpoint verifies under the log's key, and is called cosigned only if a cosignature
   line verifies, now, over that checkpoint's body under the key of a registered, unrevoked
   witness (``latest_verified_checkpoint``): a cosignature row existing proves nothing.

A failed check raises ``IntegrityFailure`` (409) naming the entry, the check and what was
expected and found; nothing is served as proven in its place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from http_edge.problems import IntegrityFailure
from ledger.canonical import canonicalize
from ledger.errors import NoteError, ProofError, VerificationError
from ledger.leaf import GENESIS_PREV, Leaf
from ledger.merkle import (
    NodeId,
    leaf_hash,
    range_inclusion_proofs,
    range_subtrees,
    verify_inclusion,
)
from ledger.note import Checkpoint, NoteSignature, NoteVerifier, open_note, verify_cosignature
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log.witnesses import repository as witness_rows

# How many of the newest cosigned checkpoints are tried before giving up on finding one whose
# cosignature still verifies (a tampered row is rare; a long run of them is a finding anyway).
COSIGNED_CANDIDATES = 8


@dataclass(frozen=True, slots=True)
class CheckedCosignature:
    witness: str
    cosigned_at: datetime
    signature_line: str


@dataclass(frozen=True, slots=True)
class CheckedCheckpoint:
    """A checkpoint whose log signature, and cosignatures if ``cosigned``, verified just now."""

    size: int
    root_hash: bytes
    note: str  # the log-signed note with the verified cosignature lines appended
    cosigned: bool
    cosignatures: tuple[CheckedCosignature, ...]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as read from the store: its index, exact leaf bytes and the hash stored."""

    index: int
    leaf: bytes
    stored_hash: bytes


def check_entries(
    entries: Sequence[StoredEntry],
    *,
    tenant: str,
    chain: str,
    predecessors: dict[int, bytes] | None = None,
) -> list[bytes]:
    """Check entries read from the store; return their leaf hashes, recomputed.

    ``entries`` are in ascending index order, not necessarily contiguous (a decision's
    timeline). ``predecessors`` maps ``index - 1`` to the leaf bytes of the entry before one
    that is not itself in ``entries`` (its ``prev`` is checked against it); index 0 links to
    the genesis hash.
    """
    frame = LeafFrame.of(tenant=tenant, chain=chain)
    recomputed: dict[int, bytes] = {}
    hashes = []
    for entry in entries:
        # 1a. The bytes hash to the hash the log stores (and will prove) for them.
        hashed = leaf_hash(entry.leaf)
        if hashed != entry.stored_hash:
            raise IntegrityFailure(
                f"entry {entry.index}'s leaf does not hash to the hash stored for it",
                check="leaf-hash",
                index=entry.index,
                expected=entry.stored_hash.hex(),
                found=hashed.hex(),
            )
        # 1b. The leaf is one of this chain's, and says it is at this index: read from its
        # frame where it has this chain's (LeafFrame), else parsed, which says what is wrong.
        framed = frame.read(entry.leaf)
        if framed is not None:
            said, prev = (tenant, chain, framed[0]), framed[1]
        else:
            try:
                leaf = Leaf.parse(entry.leaf)
            except VerificationError as error:
                raise IntegrityFailure(
                    f"entry {entry.index}'s leaf is not in the leaf format: {error}",
                    check="leaf-hash",
                    index=entry.index,
                ) from None
            said, prev = (leaf.tenant, leaf.chain, leaf.index), leaf.prev
        if said != (tenant, chain, entry.index):
            raise IntegrityFailure(
                f"the leaf stored at index {entry.index} says it is entry {said[2]} of "
                f"{said[0]}/{said[1]}",
                check="index",
                index=entry.index,
                expected=f"{tenant}/{chain}#{entry.index}",
                found=f"{said[0]}/{said[1]}#{said[2]}",
            )
        # 1c. It links to the entry before it, as that entry's bytes hash now.
        before = entry.index - 1
        if before < 0:
            expected_prev: bytes | None = GENESIS_PREV
        elif before in recomputed:
            expected_prev = recomputed[before]
        elif predecessors is not None and before in predecessors:
            expected_prev = leaf_hash(predecessors[before])
        else:
            expected_prev = None  # the caller did not read it: nothing to link to
        if expected_prev is not None and prev != expected_prev:
            raise IntegrityFailure(
                f"entry {entry.index} does not link to entry {before} as stored",
                check="link",
                index=entry.index,
                expected=expected_prev.hex(),
                found=prev.hex(),
            )
        recomputed[entry.index] = hashed
        hashes.append(hashed)
    return hashes


@dataclass(frozen=True, slots=True)
class LeafFrame:
    """The bytes around the event of every v1 leaf of one chain, to read a leaf's index and
    ``prev`` without parsing it: ``{"chain":C,"event":E,"index":I,"prev":"P","received_at":"R",
    "tenant":T,"v":1}``, keys in RFC 8785 order (``ledger.leaf.LeafPrefix`` builds leaves so).

    A leaf in this frame is one of this chain's and says its index and link in the frame's
    places (the verifier's replay reads leaves the same way). Its event is not parsed: the
    evidence rests on the leaf's hash, and on its inclusion in the signed tree, not on the form
    of its event; that form was checked when the log built the leaf, and the verifier checks it
    again from the raw bytes. A leaf out of frame is parsed strictly, which names what is wrong.
    About 2 µs a leaf, against 20 to 30 for the strict parse with its RFC 8785 check."""

    head: bytes
    tail: bytes

    @classmethod
    def of(cls, *, tenant: str, chain: str) -> LeafFrame:
        return cls(
            head=b'{"chain":' + canonicalize(chain) + b',"event":',
            tail=b'","tenant":' + canonicalize(tenant) + b',"v":1}',
        )

    def read(self, leaf: bytes) -> tuple[int, bytes] | None:
        """(index, prev) of a leaf in this frame; None if it is not."""
        if not (leaf.startswith(self.head) and leaf.endswith(self.tail)):
            return None
        received_at = len(leaf) - len(self.tail) - _RECEIVED_AT_CHARS
        prev_end = received_at - len(_BEFORE_RECEIVED_AT)
        prev_start = prev_end - 64
        index_end = prev_start - len(_BEFORE_PREV)
        index_start = leaf.rfind(_BEFORE_INDEX, len(self.head), index_end) + len(_BEFORE_INDEX)
        digits = leaf[index_start:index_end]
        if (
            index_start < len(_BEFORE_INDEX) + len(self.head)
            or leaf[prev_end:received_at] != _BEFORE_RECEIVED_AT
            or leaf[index_end:prev_start] != _BEFORE_PREV
            or not digits.isdigit()
            or (digits.startswith(b"0") and digits != b"0")
        ):
            return None
        try:
            return int(digits), bytes.fromhex(leaf[prev_start:prev_end].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None


_BEFORE_INDEX = b',"index":'
_BEFORE_PREV = b',"prev":"'
_BEFORE_RECEIVED_AT = b'","received_at":"'
_RECEIVED_AT_CHARS = 27  # 2026-11-26T10:00:00.123456Z


def check_contiguous(indexes: Sequence[int], *, start: int, stop: int) -> None:
    """Every index of [start, stop) is there, in order: a missing one is a 409, never a gap."""
    expected = start
    for index in indexes:
        if index != expected:
            raise IntegrityFailure(
                f"entry {expected} is missing from the store",
                check="missing",
                index=expected,
                expected=str(expected),
                found=str(index),
            )
        expected += 1
    if expected != stop:
        raise IntegrityFailure(
            f"entry {expected} is missing from the store",
            check="missing",
            index=expected,
            expected=str(expected),
            found=None,
        )


def check_inclusion(
    *, index: int, hashed: bytes, proof: Sequence[bytes], checkpoint: CheckedCheckpoint
) -> None:
    """2. The entry's inclusion proof leads to the checkpoint's root (RFC 9162 §2.1.3.2)."""
    try:
        verify_inclusion(
            leaf_hash=hashed,
            index=index,
            size=checkpoint.size,
            proof=proof,
            root=checkpoint.root_hash,
        )
    except ProofError as error:
        raise IntegrityFailure(
            f"entry {index}'s inclusion proof does not lead to the root of the checkpoint of "
            f"size {checkpoint.size}: {error}",
            check="inclusion",
            index=index,
            expected=checkpoint.root_hash.hex(),
        ) from None


def check_run_inclusion(
    *,
    start: int,
    hashes: Sequence[bytes],
    outside: Mapping[NodeId, bytes],
    checkpoint: CheckedCheckpoint,
) -> list[list[bytes]]:
    """2, for a run of consecutive entries: the inclusion proofs of ``[start, start +
    len(hashes))`` against the checkpoint, built from the run's own (recomputed) leaf hashes
    and stored subtrees ``outside`` it, all checked at the cost of one.

    Every hash a proof uses is then either computed from the run's leaf hashes or a stored
    subtree lying wholly outside the run (a stored node that overlaps the run is set aside and
    computed from below instead), so all the proofs are paths through one and the same tree:
    the first leads to the checkpoint's root exactly when every one does (tests/service/
    test_run_inclusion.py holds this against checking each proof). A failure therefore names
    the run's first entry, not the entry at fault; a caller that must name it proves the run's
    entries one by one against the stored tree (exports/proving.py does).
    """
    if not hashes:
        return []
    stop = start + len(hashes)
    known = {node: value for node, value in outside.items() if not _overlaps(node, start, stop)}
    known.update(range_subtrees(start, hashes))
    try:
        proofs = [p for _, p in range_inclusion_proofs(start, stop, checkpoint.size, known)]
    except ProofError as error:  # a stored subtree it needs is not there
        raise IntegrityFailure(
            f"the inclusion proofs of entries {start} to {stop - 1} cannot be built from the "
            f"store: {error}",
            check="inclusion",
            index=start,
            expected=checkpoint.root_hash.hex(),
        ) from None
    check_inclusion(index=start, hashed=hashes[0], proof=proofs[0], checkpoint=checkpoint)
    return proofs


def _overlaps(node: NodeId, start: int, stop: int) -> bool:
    """Whether the perfect subtree ``node`` (level, index) covers any leaf of [start, stop)."""
    level, index = node
    return index << level < stop and (index + 1) << level > start


def check_log_signature(
    note: str, *, log_verifier: NoteVerifier, origin: str, size: int
) -> Checkpoint:
    """3a. A stored checkpoint verifies under the log's key and says what its row says."""
    try:
        checkpoint = Checkpoint.parse(open_note(note, [log_verifier]).text)
    except NoteError as error:
        raise IntegrityFailure(
            f"the stored checkpoint of size {size} does not verify under the log's key: {error}",
            check="cosignature",
            expected=log_verifier.verifier_key,
        ) from None
    if checkpoint.origin != origin or checkpoint.size != size:
        raise IntegrityFailure(
            f"the stored checkpoint of size {size} is signed for {checkpoint.origin} at size "
            f"{checkpoint.size}",
            check="cosignature",
            expected=f"{origin} {size}",
            found=f"{checkpoint.origin} {checkpoint.size}",
        )
    return checkpoint


async def latest_verified_checkpoint(
    connection: AsyncConnection,
    *,
    chain_id: int,
    origin: str,
    log_verifier: NoteVerifier,
    covering: int = 0,
) -> CheckedCheckpoint | None:
    """3. The newest checkpoint of at least ``covering`` entries that a registered witness's
    cosignature verifies, now, under its registered key; None if there is none (then the
    caller uses the latest checkpoint, flagged as not cosigned)."""
    candidates = await witness_rows.cosigned_checkpoints(
        connection, chain_id=chain_id, covering=covering, limit=COSIGNED_CANDIDATES
    )
    for row in candidates:
        size, note = int(row.size), str(row.note)
        checkpoint = check_log_signature(note, log_verifier=log_verifier, origin=origin, size=size)
        if checkpoint.root_hash != bytes(row.root_hash):
            continue  # the row's root is not what the log signed: not usable as evidence
        body = checkpoint.to_text()
        cosignatures = await _verified_cosignatures(
            connection, chain_id=chain_id, size=size, body=body
        )
        if cosignatures:
            return CheckedCheckpoint(
                size=size,
                root_hash=checkpoint.root_hash,
                note=note + "".join(c.signature_line + "\n" for c in cosignatures),
                cosigned=True,
                cosignatures=tuple(cosignatures),
            )
    return None


async def latest_checkpoint(
    connection: AsyncConnection, *, chain_row: Any, origin: str, log_verifier: NoteVerifier
) -> CheckedCheckpoint | None:
    """The chain's latest checkpoint, its log signature checked, flagged as not cosigned."""
    if chain_row.checkpoint_size is None:
        return None
    size = int(chain_row.checkpoint_size)
    checkpoint = check_log_signature(
        str(chain_row.checkpoint_note), log_verifier=log_verifier, origin=origin, size=size
    )
    return CheckedCheckpoint(
        size=size,
        root_hash=checkpoint.root_hash,
        note=str(chain_row.checkpoint_note),
        cosigned=False,
        cosignatures=(),
    )


async def _verified_cosignatures(
    connection: AsyncConnection, *, chain_id: int, size: int, body: str
) -> list[CheckedCosignature]:
    verified = []
    for row in await witness_rows.live_cosignatures(connection, chain_id=chain_id, size=size):
        try:
            signature = NoteSignature.from_line(str(row.signature_line))
            timestamp = verify_cosignature(
                body, signature, NoteVerifier.from_verifier_key(str(row.verifier_key))
            )
        except (NoteError, ValueError):
            continue  # a line that does not verify is no cosignature
        verified.append(
            CheckedCosignature(
                witness=str(row.name),
                cosigned_at=datetime.fromtimestamp(timestamp, UTC),
                signature_line=str(row.signature_line),
            )
        )
    return verified


def stored_entry_problems(
    *,
    index: int,
    leaf: bytes,
    stored_hash: bytes,
    previous_stored_hash: bytes | None,
    tenant_json: bytes,
    chain_json: bytes,
) -> list[str]:
    """What is wrong with one stored entry, as raw routes say it beside the bytes they serve.

    Checked without parsing the event: a leaf is ``{"chain":C,"event":E,"index":I,"prev":"P",
    "received_at":"R","tenant":T,"v":1}`` in RFC 8785 order, and the last ``,"index":`` and
    ``,"prev":"`` of the bytes are the leaf's own (nothing after the event nests, and a quote
    inside a string is escaped). ``previous_stored_hash`` is the stored hash of the entry
    before (the genesis hash at index 0; None when not read).
    """
    problems = []
    if leaf_hash(leaf) != stored_hash:
        problems.append("leaf-hash")
    at_index = leaf.rfind(b',"index":')
    at_prev = leaf.rfind(b',"prev":"')
    own_index = leaf[at_index + 9 : at_prev] if 0 < at_index < at_prev else b""
    if (
        own_index != str(index).encode()
        or not leaf.startswith(b'{"chain":' + chain_json + b',"event":')
        or not leaf.endswith(b',"tenant":' + tenant_json + b',"v":1}')
    ):
        problems.append("index")
    if index == 0:
        previous_stored_hash = GENESIS_PREV
    if previous_stored_hash is not None:
        prev = leaf[at_prev + 9 : at_prev + 9 + 64] if at_prev > 0 else b""
        if prev != previous_stored_hash.hex().encode():
            problems.append("link")
    return problems
