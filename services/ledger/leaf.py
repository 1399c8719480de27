"""The leaf: the versioned, canonical record of one appended event (DESIGN.md, "Entry and leaf").

A leaf is the RFC 8785 canonical JSON of exactly
``{"v": 1, "tenant", "chain", "index", "received_at", "prev", "event"}``. Canonical JSON is
compositional: the canonical form of an object is its members, sorted by key, each written in
canonical form. So the leaf can be spliced from the event's canonical bytes (computed once, before
the chain lock is taken) and the few fields known only under the lock, and the result is
byte-identical to canonicalising the whole object (``tests/core/test_leaf.py`` checks this).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.canonical import canonicalize, parse_json
from ledger.errors import VerificationError

LEAF_VERSION = 1
GENESIS_PREV = bytes(32)

# Entries as leaf frames, for replaying a chain fast: each entry is its index (big-endian uint64),
# its leaf's length (big-endian uint32) and the leaf bytes, back to back. No base64, no JSON.
LEAF_FRAMES = "application/vnd.audit-trail.leaf-frames"
LEAF_FRAME_HEADER = struct.Struct(">QI")
# A frame whose length is this, with no bytes after its header, says that no entry is stored at
# its index: a reader learns of the hole where it is, and one that ignores the marker fails on a
# frame it cannot read, rather than taking a shorter stream for a whole one.
LEAF_FRAME_MISSING = 0xFFFFFFFF
# The NDJSON record that says the same, in place of the entry line.
NDJSON_MISSING_PREFIX = b'{"integrity_failure":'


def format_received_at(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits and ``Z``, as every leaf carries it."""
    if moment.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_received_at(text: str) -> datetime:
    if len(text) != 27 or not text.endswith("Z"):
        raise ValueError(f"received_at {text!r} is not RFC 3339 UTC with microseconds")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LeafPrefix:
    """The parts of a leaf that are fixed for one chain: everything but index, time and link."""

    chain_json: bytes
    tenant_json: bytes

    @classmethod
    def for_chain(cls, *, tenant: str, chain: str) -> LeafPrefix:
        return cls(chain_json=canonicalize(chain), tenant_json=canonicalize(tenant))

    def build(self, *, index: int, received_at: str, prev: bytes, event_json: bytes) -> bytes:
        """The leaf bytes; keys in RFC 8785 order: chain, event, index, prev, received_at, ..."""
        return b"".join(
            (
                b'{"chain":',
                self.chain_json,
                b',"event":',
                event_json,
                b',"index":',
                str(index).encode(),
                b',"prev":"',
                prev.hex().encode(),
                b'","received_at":"',
                received_at.encode(),
                b'","tenant":',
                self.tenant_json,
                b',"v":1}',
            )
        )


def build_leaf(
    *, tenant: str, chain: str, index: int, received_at: str, prev: bytes, event_json: bytes
) -> bytes:
    return LeafPrefix.for_chain(tenant=tenant, chain=chain).build(
        index=index, received_at=received_at, prev=prev, event_json=event_json
    )


@dataclass(frozen=True, slots=True)
class Leaf:
    """A leaf read back from its bytes, checked to be exactly in the canonical leaf format."""

    tenant: str
    chain: str
    index: int
    received_at: str
    prev: bytes
    event: dict[str, Any]

    @classmethod
    def parse(cls, data: bytes) -> Leaf:
        value = parse_json(data)
        if not isinstance(value, dict) or set(value) != {
            "v",
            "tenant",
            "chain",
            "index",
            "received_at",
            "prev",
            "event",
        }:
            raise VerificationError("leaf does not have exactly the fields of leaf format v1")
        if value["v"] != LEAF_VERSION:
            raise VerificationError(f"leaf format version {value['v']!r} is not supported")
        if canonicalize(value) != bytes(data):
            raise VerificationError("leaf bytes are not in RFC 8785 canonical form")
        prev = value["prev"]
        if not isinstance(prev, str) or len(prev) != 64:
            raise VerificationError("leaf prev is not a 64-digit hex hash")
        if not isinstance(value["event"], dict):
            raise VerificationError("leaf event is not an object")
        return cls(
            tenant=value["tenant"],
            chain=value["chain"],
            index=value["index"],
            received_at=value["received_at"],
            prev=bytes.fromhex(prev),
            event=value["event"],
        )
