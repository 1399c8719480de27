"""Bundles built in the test process: a genuine one, written by the exporter's own writer over a
small chain signed with a fresh log key, and zip files laid out byte by byte, as a forger
would, to test what verify-bundle refuses before it inflates anything."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from decision_log.exports.proving import ExportedEntry
from decision_log.exports.writer import BundleWriter
from ledger.bundle import BUNDLE_FORMAT, MANIFEST, SHA256SUMS, manifest_statement, sha256sums
from ledger.dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from ledger.keys import SigningKey
from ledger.leaf import GENESIS_PREV, build_leaf
from ledger.merkle import leaf_hash, reference_inclusion_proof, root_hash
from ledger.note import Checkpoint, NoteSigner, NoteVerifier, sign_note

ORIGIN = "audit-trail.example/log"
TENANT, CHAIN = "acme", "credit"


@dataclass
class Genuine:
    """A bundle as the log writes it, and what is needed to verify (or re-sign) it."""

    data: bytes
    key: SigningKey
    log: NoteVerifier
    leaves: list[bytes] = field(default_factory=list)


def received_at(index: int) -> str:
    return f"2026-01-01T00:00:{index:02d}.000000Z"


def chain_leaves(size: int) -> list[bytes]:
    leaves, prev = [], GENESIS_PREV
    for index in range(size):
        event = {
            "data": {"output": {"decision": "approve"}, "system": {"name": "scorer"}},
            "id": f"e-{index}",
            "subject": f"loan-{index % 3}",
            "type": "dev.audit-trail.decision.recorded.v1",
        }
        leaf = build_leaf(
            tenant=TENANT,
            chain=CHAIN,
            index=index,
            received_at=received_at(index),
            prev=prev,
            event_json=orjson.dumps(event, option=orjson.OPT_SORT_KEYS),
        )
        leaves.append(leaf)
        prev = leaf_hash(leaf)
    return leaves


def genuine_bundle(
    *,
    size: int = 12,
    selection: dict[str, Any] | None = None,
    key: SigningKey | None = None,
    leaves: list[bytes] | None = None,
    info_changes: dict[str, Any] | None = None,
) -> Genuine:
    """A range export of a whole chain of ``size`` entries (or another selection of it),
    written and signed as the log does."""
    key = key or SigningKey.generate()
    signer = NoteSigner(name=ORIGIN, key=key)
    leaves = leaves or chain_leaves(size)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    checkpoint = Checkpoint(origin=ORIGIN, size=len(leaves), root_hash=root_hash(hashes))
    note = sign_note(checkpoint.to_text(), [signer])
    selection = selection or {"kind": "range", "start": 0, "end": len(leaves)}
    info: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "generator": "audit-trail test",
        "created_at": "2026-01-02T00:00:00.000000Z",
        "origin": ORIGIN,
        "tenant": TENANT,
        "chain": CHAIN,
        "log": {"name": ORIGIN, "verifier_key": signer.verifier_key},
        "verifier": None,
        "selection": selection,
        "checkpoint": {
            "size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "cosigned": False,
        },
        "consistency_from": [],
        "attestation": False,
        "acknowledged_findings": [],
        **(info_changes or {}),
    }
    start, end = selection.get("start", 0), selection.get("end", len(leaves))
    writer = BundleWriter(info=info, checkpoint_note=note)
    writer.add_entries(
        [
            ExportedEntry(index=i, leaf=leaves[i], proof=reference_inclusion_proof(i, hashes))
            for i in range(start, end)
        ]
    )
    writer.add_file("keys/log.vkey", (signer.verifier_key + "\n").encode())
    out = io.BytesIO()
    writer.finish(out, key=key, verification=["checked in the test"])
    return Genuine(data=out.getvalue(), key=key, log=signer.verifier, leaves=leaves)


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@dataclass
class RawMember:
    """A member laid out by hand: every field a forger could set."""

    name: bytes
    data: bytes = b""
    compressed: bytes | None = None  # the deflate of `data` unless given
    method: int = 8
    flags: int = 0
    version: int = 20
    stated_size: int | None = None  # len(data) unless given
    crc: int | None = None  # the CRC-32 of `data` unless given
    listed: bool = True  # in the central directory


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def raw_zip(members: Sequence[RawMember]) -> bytes:
    """A zip file of exactly these members, laid out as APPNOTE.TXT describes; zip64 end
    records when there are more than 65,535 members."""
    out = bytearray()
    directory = bytearray()
    count = 0
    for member in members:
        compressed = deflated(member.data) if member.compressed is None else member.compressed
        size = len(member.data) if member.stated_size is None else member.stated_size
        crc = zlib.crc32(member.data) if member.crc is None else member.crc
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            member.version,
            member.flags,
            member.method,
            0,
            0x21,
            crc,
            len(compressed),
            size,
            len(member.name),
            0,
        )
        out += member.name + compressed
        if not member.listed:
            continue
        count += 1
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            (3 << 8) | min(member.version, 63),
            member.version,
            member.flags,
            member.method,
            0,
            0x21,
            crc,
            len(compressed),
            size,
            len(member.name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        directory += member.name
    start = len(out)
    out += directory
    if count > 0xFFFF:
        zip64_at = len(out)
        out += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(directory), start
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, zip64_at, 1)
    narrow = min(count, 0xFFFF)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, narrow, narrow, len(directory), start, 0)
    return bytes(out)


def resigned(files: dict[str, bytes], key: SigningKey, *, sizes: bool = True) -> dict[str, bytes]:
    """SHA256SUMS and the manifest recomputed over the files and signed with ``key``: what a
    faulty exporter holding the log's key would write (without sizes: as earlier ones did)."""
    body = {n: d for n, d in files.items() if n not in (SHA256SUMS, MANIFEST)}
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in body.items()}
    envelope = orjson.loads(files[MANIFEST])
    predicate = orjson.loads(base64.b64decode(envelope["payload"]))["predicate"]
    statement = manifest_statement(
        digests, predicate, {n: len(d) for n, d in body.items()} if sizes else None
    )
    signed = sign_envelope(payload_type=IN_TOTO_PAYLOAD_TYPE, payload=statement, key=key)
    return {**body, SHA256SUMS: sha256sums(digests), MANIFEST: orjson.dumps(signed)}


def rebuilt(files: dict[str, bytes], *extra: RawMember) -> bytes:
    """The files laid out by `raw_zip`, in order, then the extra members."""
    return raw_zip([*(RawMember(name.encode(), data) for name, data in files.items()), *extra])
