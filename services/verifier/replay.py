"""The checks of one chain's entries, from the raw leaf bytes, with no I/O (invariant 5).

`EntryReplay` takes the log's NDJSON entry stream in whatever chunks it arrives and, for every
entry, in order:

1. the entry is the next index (no gap, no repeat);
2. its leaf is exactly the leaf format v1 of this tenant and chain at this index, canonical
   (RFC 8785), whose ``prev`` is the leaf hash the verifier itself computed for the entry before;
3. its ``received_at`` is RFC 3339 UTC with microseconds and never goes backwards;
4. its leaf hash is recomputed, SHA-256(0x00 || leaf), and appended to the verifier's own Merkle
   frontier. The ``leaf_hash`` the log serves beside each leaf is never read;
5. the members of its event that completeness is folded from (`ledger.completeness`) are kept
   with its ``received_at``, from the event already parsed for step 2.

Step 2 has a fast path: a leaf is the fixed frame ``{"chain":C,"event":E,"index":I,"prev":"P",
"received_at":"R","tenant":T,"v":1}`` around the event (keys in RFC 8785 order), and canonical
JSON is compositional, so the leaf is canonical with the right fields exactly when the frame
bytes match and E is the canonical JSON of an object (`ledger.leaf`). A leaf that misses the
fast path goes through `Leaf.parse`, which says what is wrong.

`first_unproven_size` locates, after a failure, the first entry that the signed checkpoint does
not commit to, by consistency proofs from the verifier's own roots: the log's proofs are used as
evidence checked against its signature, never trusted.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NoReturn

import orjson
from ledger.canonical import canonicalize
from ledger.completeness import fold_fields
from ledger.errors import CanonicalJSONError, ProofError, VerificationError
from ledger.leaf import LEAF_FRAME_HEADER, LEAF_FRAME_MISSING, NDJSON_MISSING_PREFIX, Leaf
from ledger.merkle import MerkleFrontier, verify_consistency

__all__ = ["EntryReplay", "Finding", "first_unproven_size"]

_RECEIVED_AT: Final = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_RECEIVED_AT_SIZE: Final = 27


class Finding(VerificationError):
    """Something the log serves is not what it committed to, or not what the verifier cosigned.

    `kind` names the check that failed, `index` the first bad entry (None when no entry is at
    fault), `expected` and `found` what was compared, `evidence` anything else that proves it
    (checkpoints, proofs).
    """

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        index: int | None,
        expected: str | None = None,
        found: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{kind} at index {index}: {detail}")
        self.kind = kind
        self.detail = detail
        self.index = index
        self.expected = expected
        self.found = found
        self.evidence = evidence or {}

    def at(self, index: int | None, kind: str | None = None, detail: str | None = None) -> Finding:
        """The same finding, moved to an earlier first bad index."""
        return Finding(
            kind or self.kind,
            detail or self.detail,
            index=index,
            expected=self.expected,
            found=self.found,
            evidence={**self.evidence, "symptom": {"kind": self.kind, "index": self.index}},
        )


_LINE_HEAD: Final = b'{"index":'
_LINE_LEAF: Final = b',"leaf":"'
_LINE_HASH: Final = b'","leaf_hash":"'
MALFORMED_INDEX: Final = -1  # the index of an entry that could not be read


def _entry_line(line: bytes) -> tuple[int, bytes]:
    """(index, leaf) of an NDJSON entry line; (MALFORMED_INDEX, line) if it is not one."""
    # Fast path: the exact serialisation the log writes, {"index":N,"leaf":"B64","leaf_hash":"H"}
    # (the leaf_hash is never read). Anything else is parsed as JSON below.
    if line.startswith(_LINE_HEAD) and line.endswith(b'"}') and len(line) > 92:
        leaf_at = line.find(_LINE_LEAF, 9, 40)
        digits = line[9:leaf_at]
        if (
            leaf_at > 9
            and digits.isdigit()
            and (digits[:1] != b"0" or digits == b"0")
            and line[-81:-66] == _LINE_HASH
        ):
            try:
                return int(digits), binascii.a2b_base64(line[leaf_at + 9 : -81], strict_mode=True)
            except (binascii.Error, ValueError):
                pass
    try:
        record = orjson.loads(line)
        index = record["index"]
        leaf = binascii.a2b_base64(record["leaf"], strict_mode=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error, ValueError):
        return MALFORMED_INDEX, line
    if type(index) is not int or index < 0:
        return MALFORMED_INDEX, line
    return index, leaf


def split_entries(buffer: bytes, *, binary: bool) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete entries at the front of `buffer` as (index, leaf), and the rest.

    `binary`: leaf frames (`ledger.leaf.LEAF_FRAMES`); otherwise NDJSON lines.
    """
    if not binary:
        lines = buffer.split(b"\n")
        rest = lines.pop()
        # The log's in-band record of a missing entry is skipped: the next index then jumps,
        # which is what the checks report (a missing entry at the index skipped).
        return [
            _entry_line(line)
            for line in lines
            if line and not line.startswith(NDJSON_MISSING_PREFIX)
        ], rest
    records: list[tuple[int, bytes]] = []
    position, size, unpack = 0, len(buffer), LEAF_FRAME_HEADER.unpack_from
    header = LEAF_FRAME_HEADER.size
    while size - position >= header:
        index, length = unpack(buffer, position)
        if length == LEAF_FRAME_MISSING:  # no entry stored there; the index jump says so
            position += header
            continue
        end = position + header + length
        if end > size:
            break
        records.append((index, buffer[position + header : end]))
        position = end
    return records, buffer[position:]


def leftover_entries(buffer: bytes, *, binary: bool) -> list[tuple[int, bytes]]:
    """What the stream ended on: an unterminated last line, or a cut-off frame."""
    if binary:
        return [(MALFORMED_INDEX, buffer)] if buffer else []
    return [_entry_line(buffer)] if buffer.strip() else []


def _malformed(found: bytes, position: int) -> Finding:
    return Finding(
        "malformed-entry",
        "the log served an entry that is not an index with a leaf (an NDJSON line "
        "{index, leaf (base64)}, or a complete leaf frame)",
        index=position,
        found=found[:200].decode("utf-8", "replace"),
    )


class EntryReplay:
    """Replays entries [start, ...) of one chain on top of what the verifier already checked."""

    def __init__(
        self,
        *,
        tenant: str,
        chain: str,
        frontier: MerkleFrontier,
        prev: bytes,
        last_received_at: str = "",
    ) -> None:
        self.tenant = tenant
        self.chain = chain
        self.start = frontier.size
        self.frontier = frontier.copy()
        self.prev = prev
        self.last_received_at = last_received_at.encode()
        self.hashes: list[bytes] = []
        # (fold_fields of the event, received_at) of the entries checked since the completeness
        # fold last took them (`verifier.completeness.ChainFold.take` empties the list).
        self.events: list[tuple[dict[str, Any], str]] = []
        # The hash of the entry that failed a check, when it had a readable leaf.
        self.failed_hash: bytes | None = None
        self._buffer = b""
        self._binary = False
        self._head = b'{"chain":' + canonicalize(chain) + b',"event":'
        self._tail = b'","tenant":' + canonicalize(tenant) + b',"v":1}'

    @property
    def size(self) -> int:
        return self.frontier.size

    def feed(self, data: bytes, *, binary: bool = False) -> None:
        """Check every complete entry in `data` (plus what was left over from the last chunk);
        `binary`: the stream is leaf frames, not NDJSON."""
        self._binary = binary
        records, self._buffer = split_entries(self._buffer + data, binary=binary)
        self._check_records(records)

    def finish(self, end: int) -> None:
        """The stream has ended; it must have held exactly the entries up to `end`."""
        if self._buffer:
            records = leftover_entries(self._buffer, binary=self._binary)
            self._buffer = b""
            self._check_records(records)
        if self.size < end:
            raise Finding(
                "missing-entry",
                f"the log's entries stop at index {self.size}, its checkpoint says {end}",
                index=self.size,
                expected=str(end),
                found=str(self.size),
            )
        if self.size > end:
            raise Finding(
                "unexpected-entry",
                f"the log served entries past the checkpointed size {end}",
                index=end,
            )

    def _check_records(self, records: Sequence[tuple[int, bytes]]) -> None:
        head, tail, head_size = self._head, self._tail, len(self._head)
        tail_size = len(tail) + _RECEIVED_AT_SIZE
        sha256, append, hashes = hashlib.sha256, self.frontier.append, self.hashes
        events = self.events
        prev, last_received_at, expected = self.prev, self.last_received_at, self.size
        for index, leaf in records:
            if index != expected:
                self.failed_hash = None
                if index == MALFORMED_INDEX:
                    raise _malformed(leaf, expected)
                if index > expected:
                    raise Finding(
                        "missing-entry",
                        f"the log skips from index {expected - 1} to {index}",
                        index=expected,
                        expected=str(expected),
                        found=str(index),
                    )
                raise Finding(
                    "unexpected-entry",
                    f"the log serves index {index} again (or out of order) where {expected} "
                    "belongs",
                    index=expected,
                    expected=str(expected),
                    found=str(index),
                )
            hashed = sha256(b"\x00" + leaf).digest()
            frame = b',"index":%d,"prev":"%s","received_at":"' % (index, prev.hex().encode())
            received_at_at = len(leaf) - tail_size
            frame_at = received_at_at - len(frame)
            received_at = leaf[received_at_at : received_at_at + _RECEIVED_AT_SIZE]
            event = (
                _canonical_object(leaf[head_size:frame_at])
                if leaf.startswith(head)
                and leaf.endswith(tail)
                and frame_at > head_size
                and leaf[frame_at:received_at_at] == frame
                and _RECEIVED_AT.fullmatch(received_at)
                else None
            )
            if event is None:
                self.failed_hash = hashed
                self._explain_bad_leaf(leaf, index, prev)
            if received_at < last_received_at:
                self.failed_hash = hashed
                raise Finding(
                    "time-goes-backwards",
                    "received_at is earlier than the entry before",
                    index=index,
                    expected=f">= {last_received_at.decode()}",
                    found=received_at.decode(),
                )
            append(hashed)
            hashes.append(hashed)
            events.append((fold_fields(event), received_at.decode()))
            prev, last_received_at, expected = hashed, received_at, expected + 1
            self.prev, self.last_received_at = prev, last_received_at

    def _explain_bad_leaf(self, leaf: bytes, index: int, prev: bytes) -> NoReturn:
        """The slow path: say exactly what is wrong with a leaf that missed the fast path."""
        try:
            parsed = Leaf.parse(leaf)
        except (VerificationError, ValueError) as error:
            raise Finding("malformed-leaf", str(error), index=index) from None
        for name, want, got in (
            ("tenant", self.tenant, parsed.tenant),
            ("chain", self.chain, parsed.chain),
        ):
            if want != got:
                raise Finding(
                    "misplaced-leaf",
                    f"the leaf belongs to {name} {got!r}",
                    index=index,
                    expected=want,
                    found=str(got),
                )
        if parsed.index != index:
            raise Finding(
                "misplaced-leaf",
                f"the leaf at index {index} says it is entry {parsed.index}",
                index=index,
                expected=str(index),
                found=str(parsed.index),
            )
        if parsed.prev != prev:
            raise Finding(
                "broken-link",
                "the leaf's prev is not the hash of the entry before it",
                index=index,
                expected=prev.hex(),
                found=parsed.prev.hex(),
            )
        if not _RECEIVED_AT.fullmatch(parsed.received_at.encode()):
            raise Finding("malformed-leaf", "received_at is not RFC 3339 UTC", index=index)
        raise Finding("malformed-leaf", "the leaf is not in leaf format v1", index=index)


# Where orjson's output may differ from RFC 8785: a double it writes as "100.0" or with an
# exponent ("1e16"), where JCS writes "100" and "10000000000000000" (RFC 8785 §3.2.2.3), and keys
# with characters beyond U+FFFF (4-byte UTF-8), which JCS sorts by UTF-16 code units and orjson
# by code points (§3.2.3). With every digit turned into "0", plain substring searches find
# every such spot (a regular expression costs more than the rest of the check); a false alarm
# inside a string only sends the event the exact way.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_ORJSON_SORTED: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def _may_differ_from_jcs(event: bytes) -> bool:
    if not event.isascii() and max(event) >= 0xF0:
        return True
    # Both spots need ".0" or an exponent sign; most events have neither, and three substring
    # searches rule that out before the translation below.
    if b".0" not in event and b"e+" not in event and b"e-" not in event:
        return False
    digits = event.translate(_DIGITS_AS_ZERO)
    if b"0." in digits and (b"0.0," in digits or b"0.0}" in digits or b"0.0]" in digits):
        return True
    # orjson writes exponents as "e+" or "e-" (never "E", never a bare "e").
    return b"0e+0" in digits or b"0e-0" in digits


def _is_canonical_object(event: bytes) -> bool:
    return _canonical_object(event) is not None


def _canonical_object(event: bytes) -> dict[str, Any] | None:
    """The object `event` is the RFC 8785 canonical JSON of, or None if it is not one.

    orjson parses (rejecting what is not JSON); if writing the value back with sorted keys
    gives the same bytes and none of orjson's differences from RFC 8785 can be present, the
    bytes are canonical. Otherwise `canonicalize` decides. A duplicate key, a non-canonical
    number or any stray byte makes the round trip differ.
    """
    try:
        value = orjson.loads(event)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    try:
        if orjson.dumps(value, option=_ORJSON_SORTED) == event and not _may_differ_from_jcs(event):
            return value
    except orjson.JSONEncodeError:
        pass
    try:
        return value if canonicalize(value) == event else None
    except CanonicalJSONError:
        return None


async def first_unproven_size(
    *,
    base: MerkleFrontier,
    hashes: Sequence[bytes],
    checkpoint_size: int,
    checkpoint_root: bytes,
    consistency_proof: Callable[[int], Awaitable[list[bytes]]],
) -> int:
    """The largest m in [base.size, base.size + len(hashes)] whose first m leaves, as the
    verifier computed them, the signed checkpoint is proven to extend.

    `base` is a prefix the verifier has already proven; `hashes` the leaf hashes after it.
    Entry m is then the first that the checkpoint does not commit to. `consistency_proof(m)`
    fetches the proof from size m to the checkpoint's size; a proof that does not verify counts
    as no proof. Binary search: O(log n) proofs, each checked against the signed root.
    """

    async def proven(size: int) -> bool:
        if size > checkpoint_size:
            return False
        root = base.copy()
        root.extend(hashes[: size - base.size])
        if size == checkpoint_size:
            return root.root() == checkpoint_root
        if size == 0:
            return True
        try:
            proof = await consistency_proof(size)
            verify_consistency(
                old_size=size,
                new_size=checkpoint_size,
                proof=proof,
                old_root=root.root(),
                new_root=checkpoint_root,
            )
        except ProofError:
            return False
        return True

    low, high = base.size, base.size + len(hashes)
    if await proven(high):
        return high
    while high - low > 1:
        middle = (low + high) // 2
        if await proven(middle):
            low = middle
        else:
            high = middle
    return low
