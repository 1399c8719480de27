"""Export bundles: the files of one, the signed manifest, and their offline verification.

A bundle is a zip file that lets a regulator check, with only the log's (and the verifier's)
public key, that every record in it is exactly what the log committed, in order, and covered by a
checkpoint the verifier cosigned. Its members:

- ``bundle.json``: what was selected (chain, range, time or decisions) and against which checkpoint.
- ``entries.jsonl``: the leaves, exact bytes, one per line in index order (RFC 8785 output has no
  raw newline, so the line is the leaf).
- ``inclusion-proofs.tlog-proof``: one C2SP tlog-proof@v1 document per entry, in the same order,
  concatenated; each is a complete proof that any tlog-proof verifier accepts on its own.
- ``checkpoint.txt``: the checkpoint with the log's signature and the witnesses' cosignatures.
- ``consistency/<size>.tlog-consistency``: proofs that the checkpoint extends earlier ones.
- ``attestation.dsse.json``: the verifier's in-toto attestation at the checkpoint's size.
- ``keys/``, ``schemas/``, ``report.html``, ``README.txt``.
- ``SHA256SUMS`` (``sha256sum -c`` format) over all of the above, and ``manifest.dsse.json``: the
  same digests as the subjects of an in-toto Statement v1, signed by the log in a DSSE envelope.

`verify_bundle` checks all of it and raises `BundleError` naming the first file, entry and check
that fails; it trusts nothing in the bundle but what the given keys sign. The bundle comes from a
stranger: its zip layout is checked before anything is inflated (`zip_layout`), the signed
manifest is read first, and every member is streamed through its hash under the size the
manifest signs, so that memory stays bounded on any input. Given no verifier key,
it checks the cosignature and the attestation under the bundle's own copy of the verifier's key
(``keys/verifier.vkey``): that proves nothing by itself (the copy came with the bundle), but a
cosignature or attestation that fails even under it is a failure. The report then says the
bundle is consistent with the log's key only (``witnessed`` is false).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from ledger import membership
from ledger.dsse import (
    CHAIN_VERIFICATION_PREDICATE_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_TYPE,
    securesystemslib_keyid,
    verify_envelope,
)
from ledger.errors import ProofError, VerificationError
from ledger.extraction import ExtractionError, StagedExtraction
from ledger.leaf import GENESIS_PREV, LEAF_VERSION
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.note import ALG_COSIGNATURE_V1, Checkpoint, NoteVerifier, open_note
from ledger.proofs import ConsistencyProofFile, TlogProof, read_tlog_proofs
from ledger.zip_layout import ZipLayoutError, ZipMember, inflate, read_layout

BUNDLE_FORMAT: Final = "audit-trail.dev/export-bundle@v1"
MANIFEST_PREDICATE_TYPE: Final = "https://audit-trail.dev/attestations/export-manifest/v1"

BUNDLE_JSON: Final = "bundle.json"
ENTRIES: Final = "entries.jsonl"
INCLUSION_PROOFS: Final = "inclusion-proofs.tlog-proof"
CHECKPOINT: Final = "checkpoint.txt"
ATTESTATION: Final = "attestation.dsse.json"
SHA256SUMS: Final = "SHA256SUMS"
MANIFEST: Final = "manifest.dsse.json"
CONSISTENCY_DIR: Final = "consistency/"
CONSISTENCY_SUFFIX: Final = ".tlog-consistency"
VERIFIER_KEY: Final = "keys/verifier.vkey"

# The members streamed from the archive (any size the signed manifest states); every other
# member is read whole, under these caps, so that memory stays bounded on any input: at most
# SMALL_MEMBERS_BYTES of small members, a chunk of each streamed one, and one entry line.
STREAMED: Final = frozenset({ENTRIES, INCLUSION_PROOFS})
MANIFEST_BYTES: Final = 1 << 20
SMALL_MEMBER_BYTES: Final = 16 << 20
SMALL_MEMBERS_BYTES: Final = 64 << 20

_SUMS_LINE = re.compile(r"([0-9a-f]{64})  ([^\n]+)")
_RECEIVED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


class BundleError(VerificationError):
    """A bundle that does not verify: which file (and entry) failed, which check, and how.

    The checks of an entry: ``format`` (not a v1 leaf), ``index`` (not the entry, chain or
    order its place says), ``missing`` (an entry of a range is not there), ``selection`` (not
    of the selected decisions), ``inclusion`` (not the leaf the checkpoint commits to, or a
    proof against another checkpoint), ``link`` (its prev is not the entry before it)."""

    def __init__(
        self, member: str, message: str, *, index: int | None = None, check: str | None = None
    ) -> None:
        self.member = member
        self.index = index
        self.check = check
        self.message = message
        # What the bundle says must be read first (an override it was built under), for the
        # verdict to be printed with it.
        self.warnings: list[str] = []
        where = member if index is None else f"{member}, entry {index}"
        if check is not None:
            where += f" ({check})"
        super().__init__(f"{where}: {message}")


def consistency_member(old_size: int) -> str:
    return f"{CONSISTENCY_DIR}{old_size}{CONSISTENCY_SUFFIX}"


def sha256sums(digests: Mapping[str, str]) -> bytes:
    """A ``sha256sum`` listing of the digests (text mode: two spaces), in the given order."""
    return "".join(f"{digest}  {name}\n" for name, digest in digests.items()).encode()


def parse_sha256sums(data: bytes) -> dict[str, str]:
    digests: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        match = _SUMS_LINE.fullmatch(line)
        if match is None:
            raise BundleError(SHA256SUMS, f"line {number} is not '<sha256 hex>  <file>'")
        digest, name = match.groups()
        if name in digests:
            raise BundleError(SHA256SUMS, f"{name} is listed twice")
        digests[name] = digest
    return digests


def manifest_statement(
    digests: Mapping[str, str],
    predicate: Mapping[str, Any],
    sizes: Mapping[str, int] | None = None,
) -> bytes:
    """The in-toto Statement v1 whose subjects are the bundle's files with their SHA-256 and,
    as an annotation, their size in bytes (the cap a verifier reads each file under)."""
    sizes = sizes or {}
    statement = {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": digest}}
            | ({"annotations": {"size": sizes[name]}} if name in sizes else {})
            for name, digest in digests.items()
        ],
        "predicateType": MANIFEST_PREDICATE_TYPE,
        "predicate": dict(predicate),
    }
    return orjson.dumps(statement)


@dataclass
class BundleReport:
    """What a verified bundle holds and what was checked, for the CLI to print."""

    origin: str
    tenant: str
    chain: str
    selection: dict[str, Any]
    checkpoint_size: int
    root_hash: str
    entries: int = 0
    first_index: int | None = None
    last_index: int | None = None
    links_checked: int = 0
    files: int = 0
    cosigned_by: list[str] = field(default_factory=list)
    consistent_with: list[int] = field(default_factory=list)
    attestation: str | None = None
    notes: list[str] = field(default_factory=list)
    # Checked under the verifier key the caller gave (not only the bundle's own copy of it).
    witnessed: bool = False
    # Findings the verifier's attestation says this history spans, each acknowledged by an
    # operator: id, kind, first_bad_index, acknowledged_by, reason, acknowledged_at.
    acknowledged_findings: list[dict[str, Any]] = field(default_factory=list)
    # What bundle.json says of an administrator's override the export was built under.
    override: dict[str, Any] | None = None

    def warnings(self) -> list[str]:
        """What must be read before anything else: an override the export was built under."""
        return override_warnings(self.override)

    def lines(self) -> list[str]:
        span = (
            "none" if self.first_index is None else f"indexes {self.first_index}..{self.last_index}"
        )
        lines = [
            *self.warnings(),
            f"chain          {self.tenant}/{self.chain} ({self.origin})",
            f"selection      {describe_selection(self.selection, chain=self.chain)}",
            f"checkpoint     size {self.checkpoint_size}, root {self.root_hash}",
            "OK manifest    signed by the log; SHA256SUMS and the signed manifest agree; "
            f"{self.files} files match their SHA-256",
            "OK checkpoint  signed by the log"
            + (f"; cosigned by {', '.join(self.cosigned_by)}" if self.cosigned_by else "")
            + ("" if self.witnessed or not self.cosigned_by else " (under the bundle's own key)"),
            f"OK entries     {self.entries} ({span}), each leaf proved included in the checkpoint",
            f"OK links       {self.links_checked} links between consecutive entries",
        ]
        if self.consistent_with:
            sizes = ", ".join(map(str, self.consistent_with))
            lines.append(f"OK consistency the checkpoint extends the log's checkpoints at {sizes}")
        if self.attestation is not None:
            lines.append(f"OK attestation {self.attestation}")
        lines.extend(
            f"ACKNOWLEDGED   finding {f.get('id')}: {f.get('kind')} at index "
            f"{f.get('first_bad_index')}, acknowledged by "
            f"{f.get('acknowledged_by', f.get('operator'))} at {f.get('acknowledged_at')}: "
            f"{f.get('reason')}"
            for f in self.acknowledged_findings
        )
        lines.extend(f"NOTE           {note}" for note in self.notes)
        if self.selection.get("kind") == "decisions":
            lines.append(f"NOTE           {DECISIONS_EXPORT_LIMIT}")
        return lines


DECISIONS_EXPORT_LIMIT: Final = (
    "a decisions export proves that each event in it is one the log committed; it does not "
    "prove that a decision's timeline is complete (an event the log holds but the export "
    "left out would not show)"
)


def describe_selection(selection: Mapping[str, Any], *, chain: str) -> str:
    """The selection of bundle.json in words, for people (report.html, the CLI's report)."""
    kind = selection.get("kind")
    start, end = selection.get("start"), selection.get("end")
    if isinstance(start, int) and isinstance(end, int):
        indexes = f"entries {start} to {end - 1}" if end > start else "no entries"
    else:
        indexes = "entries (no index range stated)"
    if kind == "range":
        return f"{indexes} of chain {chain}"
    if kind == "time":
        since = selection.get("since") or "the first entry"
        until = selection.get("until") or "the checkpoint"
        return f"decisions received from {since} to before {until}: {indexes} of chain {chain}"
    if kind == "decisions":
        ids = [str(d) for d in selection.get("decision_ids") or []]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        return f"the events of {len(ids)} decision(s) of chain {chain}: {shown}"
    return f"a selection of an unknown kind ({str(kind)[:40]}) of chain {chain}"


def override_warnings(override: Any) -> list[str]:
    """bundle.json's account of an administrator's override, as lines to print first."""
    if not isinstance(override, dict):
        return []
    failures = [f for f in override.get("failures") or [] if isinstance(f, dict)]
    total = override.get("failures_total", len(failures))
    lines = [
        "WARNING        exported under an administrator's override "
        f"(reason: {override.get('reason')!r}); {total} check(s) failed at export time"
    ]
    lines.extend(f"WARNING          {_describe_failure(f)}" for f in failures[:10])
    if isinstance(total, int) and total > 10:
        lines.append(f"WARNING          ... and {total - 10} more (bundle.json)")
    return lines


def _describe_failure(failure: Mapping[str, Any]) -> str:
    where = "" if failure.get("index") is None else f"entry {failure['index']} "
    check = failure.get("check") or failure.get("type")
    return f"{where}({check}): {failure.get('detail')}"


def _verifying_keys(verifiers: Iterable[NoteVerifier]) -> dict[str, Any]:
    return {securesystemslib_keyid(v.public_key): v.public_key for v in verifiers}


def _json_object(data: bytes, member: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BundleError(member, "is not valid JSON") from None
    if not isinstance(value, dict):
        raise BundleError(member, "is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class SignedFile:
    """A file as the signed manifest lists it; ``size`` is absent from older bundles."""

    sha256: str
    size: int | None


class BundleMembers:
    """A bundle's members, each checked against the signed manifest before it is used.

    The small members are held in ``files``; the two that grow with the export (entries and
    proofs) are streamed again by `stream` when they are checked, through their hash once more,
    so that a file changed under the verifier is caught. When extracting, every member is
    written to the staging directory on its first reading and streamed back from there.
    """

    def __init__(
        self, source: BinaryIO, members: Mapping[str, ZipMember], staged: StagedExtraction | None
    ) -> None:
        self.source = source
        self.members = members
        self.staged = staged
        self.files: dict[str, bytes] = {}
        self.signed: dict[str, SignedFile] = {}

    def read_whole(self, name: str, *, cap: int) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise BundleError(name, "is missing")
        if member.size > cap:
            raise BundleError(name, f"is {member.size} bytes, more than the {cap} allowed")
        return b"".join(_inflated(self.source, member))

    def check_against(self, signed: Mapping[str, SignedFile]) -> None:
        """Every member is listed and every listed file present, at its signed size; then each
        is read through its hash (and written out, when extracting)."""
        self.signed = dict(signed)
        unlisted = sorted(set(self.members) - set(signed) - {SHA256SUMS, MANIFEST})
        if unlisted:
            raise BundleError(unlisted[0], "is in the bundle but not in the signed manifest")
        for name, listed in signed.items():
            member = self.members.get(name)
            if member is None:
                raise BundleError(
                    name, "is listed in the signed manifest but missing from the bundle"
                )
            if listed.size is not None and member.size != listed.size:
                raise BundleError(
                    name, f"is {member.size} bytes, the signed manifest says {listed.size}"
                )
            if name not in STREAMED and member.size > SMALL_MEMBER_BYTES:
                raise BundleError(name, f"is more than {SMALL_MEMBER_BYTES} bytes")
        small = sum(m.size for n, m in self.members.items() if n not in STREAMED)
        if small > SMALL_MEMBERS_BYTES:
            raise BundleError("(zip)", f"its small files add up to more than {SMALL_MEMBERS_BYTES}")
        for member in sorted(self.members.values(), key=lambda m: m.data_offset):
            self._read_through_hash(member)

    def _read_through_hash(self, member: ZipMember) -> None:
        name = member.name
        keep = name not in STREAMED
        chunks: list[bytes] = []
        digest = hashlib.sha256()
        out = None if self.staged is None else self.staged.create(name)
        try:
            for chunk in _inflated(self.source, member):
                digest.update(chunk)
                if keep:
                    chunks.append(chunk)
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
        data = b"".join(chunks)
        if name in (SHA256SUMS, MANIFEST):
            if data != self.files.get(name):
                raise BundleError(name, "changed while it was read")
            return
        expected = self.signed[name].sha256
        if digest.hexdigest() != expected:
            raise BundleError(
                name, f"has SHA-256 {digest.hexdigest()}, the signed manifest says {expected}"
            )
        if keep:
            self.files[name] = data

    def stream(self, name: str) -> Iterator[bytes]:
        """A streamed member's bytes, once more through their hash (checked at the end)."""
        member = self.members.get(name)
        if member is None:
            raise BundleError(name, "is missing")
        digest = hashlib.sha256()
        if self.staged is None:
            chunks = _inflated(self.source, member)
        else:
            chunks = _file_chunks(self.staged.open(name))
        for chunk in chunks:
            digest.update(chunk)
            yield chunk
        if digest.hexdigest() != self.signed[name].sha256:
            raise BundleError(name, "changed while it was read")


def _inflated(source: BinaryIO, member: ZipMember) -> Iterator[bytes]:
    try:
        yield from inflate(source, member)
    except ZipLayoutError as error:
        raise BundleError(member.name, f"cannot be read: {error}") from None
    except OSError as error:
        raise BundleError(member.name, f"cannot be read: {type(error).__name__}") from None


def _file_chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        yield from iter(lambda: file.read(1 << 20), b"")


def _lines(chunks: Iterable[bytes], member: str) -> Iterator[bytes]:
    """The lines of a stream, without their newline; the stream must end with one."""
    parts: list[bytes] = []  # of the line not yet ended
    for chunk in chunks:
        *ended, rest = chunk.split(b"\n")
        if ended:
            parts.append(ended[0])
            yield b"".join(parts)
            yield from ended[1:]
            parts = []
        if rest:
            parts.append(rest)
    if parts:
        raise BundleError(member, "does not end with a newline")


def _check_manifest(
    envelope_bytes: bytes, sums: bytes, log_key: NoteVerifier
) -> dict[str, SignedFile]:
    """The manifest's single signature, by the log, and its agreement with SHA256SUMS."""
    envelope = _json_object(envelope_bytes, MANIFEST)
    signatures = envelope.get("signatures")
    if isinstance(signatures, list) and len(signatures) > 1:
        raise BundleError(MANIFEST, f"carries {len(signatures)} signatures; the log signs once")
    try:
        payload_type, payload = verify_envelope(envelope, _verifying_keys([log_key]))
    except VerificationError as error:
        raise BundleError(MANIFEST, f"not signed by the log key given: {error}") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise BundleError(MANIFEST, f"payload type is {payload_type!r}, not in-toto")
    statement = _json_object(payload, MANIFEST)
    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise BundleError(MANIFEST, "payload is not an in-toto Statement v1")
    if statement.get("predicateType") != MANIFEST_PREDICATE_TYPE:
        raise BundleError(MANIFEST, "payload is not an export manifest")
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise BundleError(MANIFEST, "has no list of subjects")
    signed: dict[str, SignedFile] = {}
    for subject in subjects:
        try:
            name, digest = subject["name"], subject["digest"]["sha256"]
            size = (subject.get("annotations") or {}).get("size")
        except (KeyError, TypeError, AttributeError):
            raise BundleError(MANIFEST, "a subject has no name and sha256 digest") from None
        if not isinstance(name, str) or not isinstance(digest, str) or name in signed:
            raise BundleError(MANIFEST, "a subject's name or digest is not a string, or repeats")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise BundleError(MANIFEST, f"the size of {name} is not a whole number of bytes")
        signed[name] = SignedFile(sha256=digest, size=size)
    listed = parse_sha256sums(sums)
    digests = {name: file.sha256 for name, file in signed.items()}
    if listed != digests:
        differing = sorted(set(listed.items()) ^ set(digests.items()))
        name = differing[0][0]
        raise BundleError(SHA256SUMS, f"disagrees with the signed manifest about {name}")
    return signed


def _check_checkpoint(
    text: str,
    *,
    info: Mapping[str, Any],
    log_key: NoteVerifier,
    verifier_key: NoteVerifier | None,
    cosignature_required: bool,
) -> tuple[Checkpoint, list[str]]:
    """The log's signature and, under ``verifier_key``, the verifier's cosignature: one that
    is there must verify, and one must be there if ``cosignature_required``."""
    verifiers = [log_key] if verifier_key is None else [log_key, verifier_key]
    try:
        opened = open_note(text, verifiers)
        checkpoint = Checkpoint.parse(opened.text)
    except VerificationError as error:
        raise BundleError(CHECKPOINT, str(error), check="cosignature") from None
    signers = {(s.name, s.key_id) for s in opened.verified}
    if (log_key.name, log_key.key_id) not in signers:
        raise BundleError(CHECKPOINT, "has no signature by the log key given")
    expected = info.get("checkpoint") or {}
    if checkpoint.origin != info.get("origin"):
        raise BundleError(
            CHECKPOINT, f"origin {checkpoint.origin!r} is not the bundle's {info.get('origin')!r}"
        )
    if checkpoint.size != expected.get("size") or checkpoint.root_hash.hex() != expected.get(
        "root_hash"
    ):
        raise BundleError(CHECKPOINT, "size or root hash differ from bundle.json")
    if (
        verifier_key is not None
        and cosignature_required
        and (verifier_key.name, verifier_key.key_id) not in signers
    ):
        raise BundleError(
            CHECKPOINT,
            f"has no cosignature by the verifier {verifier_key.name}",
            check="cosignature",
        )
    cosigners = [s.name for s in opened.verified if s.name != log_key.name]
    return checkpoint, cosigners


def _check_entries(
    members: BundleMembers,
    *,
    info: Mapping[str, Any],
    checkpoint: Checkpoint,
    checkpoint_text: str,
    report: BundleReport,
) -> None:
    """Every entry, in order, streamed beside its proof; the first that fails is named with its
    index and check. An entry missing from a range is known only once every entry has been
    read (a later one may be out of order instead), so a missing one is named last."""
    selection = info.get("selection") or {}
    decision_ids = (
        set(selection.get("decision_ids") or []) if selection.get("kind") == "decisions" else None
    )
    # A range or time export holds every entry of its index range [start, end), none left out.
    span = _index_range(selection) if selection.get("kind") in ("range", "time") else None
    window = _time_window(selection) if selection.get("kind") == "time" else None
    tenant, chain = info.get("tenant"), info.get("chain")
    size, root = checkpoint.size, checkpoint.root_hash
    previous_index, previous_hash = -1, b""
    first_missing: int | None = None
    spans: dict[int, membership.SpanLink] = {}  # of a decisions export: GenAI spans, grouped last
    leaves = _lines(members.stream(ENTRIES), ENTRIES)
    proofs = _proof_documents(members.stream(INCLUSION_PROOFS))
    line_number = 0
    for leaf in leaves:
        line_number += 1
        proof = next(proofs, None)
        if proof is None:
            raise BundleError(
                INCLUSION_PROOFS, f"holds fewer proofs than the {line_number} entries"
            )
        index = proof.index
        if index <= previous_index:
            raise BundleError(
                ENTRIES,
                f"entry {index} follows entry {previous_index}: not in index order",
                index=index,
                check="index",
            )
        if span is not None:
            expected = span[0] if previous_index < 0 else previous_index + 1
            if first_missing is None and expected < min(index, span[1]):
                first_missing = expected
            if not span[0] <= index < span[1]:
                raise BundleError(
                    ENTRIES,
                    f"is outside the selection [{span[0]}, {span[1]})",
                    index=index,
                    check="selection",
                )
        try:
            value = orjson.loads(leaf)
        except orjson.JSONDecodeError:
            raise BundleError(
                ENTRIES, f"line {line_number} is not JSON", index=index, check="format"
            ) from None
        if not isinstance(value, dict) or value.get("v") != LEAF_VERSION:
            raise BundleError(
                ENTRIES, f"line {line_number} is not a v1 leaf", index=index, check="format"
            )
        if value.get("index") != index:
            raise BundleError(
                ENTRIES,
                f"line {line_number} holds entry {value.get('index')!r}, its proof is for {index}",
                index=index,
                check="index",
            )
        if value.get("tenant") != tenant or value.get("chain") != chain:
            raise BundleError(
                ENTRIES, f"leaf is not of chain {tenant}/{chain}", index=index, check="index"
            )
        if proof.checkpoint != checkpoint_text:
            raise BundleError(
                INCLUSION_PROOFS,
                f"the proof is not against {CHECKPOINT}",
                index=index,
                check="inclusion",
            )
        hashed = leaf_hash(leaf)
        try:
            verify_inclusion(
                leaf_hash=hashed, index=index, size=size, proof=proof.hashes, root=root
            )
        except VerificationError as error:
            raise BundleError(
                ENTRIES, f"leaf is not the one committed: {error}", index=index, check="inclusion"
            ) from None
        prev = value.get("prev")
        if index == 0 and prev != GENESIS_PREV.hex():
            raise BundleError(
                ENTRIES, "the first entry does not link to the genesis", index=0, check="link"
            )
        if previous_index >= 0 and index == previous_index + 1:
            if prev != previous_hash.hex():
                raise BundleError(
                    ENTRIES,
                    f"prev is {prev}, not the leaf hash {previous_hash.hex()} of entry "
                    f"{previous_index}",
                    index=index,
                    check="link",
                )
            report.links_checked += 1
        if window is not None:
            _check_received_in(window, value.get("received_at"), index=index)
        if decision_ids is not None:
            event = value.get("event")
            event = event if isinstance(event, dict) else {}
            link = membership.span_link(event) if _is_genai(event) else None
            if link is not None:
                spans[index] = link  # its decision follows from the bundle's other spans
            else:
                _check_selected(index, membership.decision_of(event), decision_ids)
        if report.first_index is None:
            report.first_index = index
        report.last_index, previous_index, previous_hash = index, index, hashed
        report.entries += 1
    if next(proofs, None) is not None:
        raise BundleError(INCLUSION_PROOFS, f"holds more proofs than the {line_number} entries")
    if decision_ids is not None:
        for index, found in sorted(membership.genai_decision_ids(spans).items()):
            _check_selected(index, found, decision_ids)
    if span is not None:
        expected = span[0] if previous_index < 0 else previous_index + 1
        if first_missing is None and expected < span[1]:
            first_missing = expected
    if span is not None and first_missing is not None:
        raise BundleError(
            ENTRIES,
            f"is missing: the selection is every entry in [{span[0]}, {span[1]})",
            index=first_missing,
            check="missing",
        )


def _is_genai(event: Mapping[str, Any]) -> bool:
    return event.get("type") == membership.GENAI_INVOCATION


def _check_selected(index: int, found: str | None, decision_ids: set[str]) -> None:
    """An entry of a decisions export is an event of a selected decision (ledger/membership.py:
    its subject, the id a model server's logger names it by, or a GenAI span's grouping)."""
    if found not in decision_ids:
        raise BundleError(
            ENTRIES,
            f"is an event of decision {found!r}, not one of the selected decisions",
            index=index,
            check="selection",
        )


def _proof_documents(chunks: Iterable[bytes]) -> Iterator[TlogProof]:
    try:
        for number, text in enumerate(read_tlog_proofs(chunks), start=1):
            try:
                yield TlogProof.parse(text, what="tlog-proof")
            except VerificationError as error:
                raise BundleError(INCLUSION_PROOFS, f"proof {number}: {error}") from None
    except (UnicodeDecodeError, ProofError) as error:
        raise BundleError(INCLUSION_PROOFS, str(error)) from None


def _time_window(selection: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """[since, until) of a time export, as RFC 3339 UTC with microseconds: in that one format,
    the order of the strings is the order of the times."""
    window = selection.get("since"), selection.get("until")
    for bound in window:
        if bound is not None and (not isinstance(bound, str) or not _RECEIVED_AT.fullmatch(bound)):
            raise BundleError(BUNDLE_JSON, f"the selection's time bound {bound!r} is malformed")
    return window


def _check_received_in(window: tuple[str | None, str | None], received: Any, *, index: int) -> None:
    since, until = window
    if not isinstance(received, str) or not _RECEIVED_AT.fullmatch(received):
        raise BundleError(ENTRIES, "its received_at is malformed", index=index, check="format")
    if (since is not None and received < since) or (until is not None and received >= until):
        raise BundleError(
            ENTRIES,
            f"received at {received}, outside the selection [{since}, {until})",
            index=index,
            check="selection",
        )


def _index_range(selection: Mapping[str, Any]) -> tuple[int, int]:
    start, end = selection.get("start"), selection.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start <= end:
        raise BundleError(BUNDLE_JSON, "the selection has no valid index range [start, end)")
    return start, end


def _check_consistency(
    files: Mapping[str, bytes],
    *,
    info: Mapping[str, Any],
    checkpoint: Checkpoint,
    log_key: NoteVerifier,
) -> list[int]:
    sizes = info.get("consistency_from") or []
    present = sorted(name for name in files if name.startswith(CONSISTENCY_DIR))
    expected = sorted(consistency_member(size) for size in sizes)
    if present != expected:
        missing = sorted(set(expected) ^ set(present))
        raise BundleError(missing[0], "does not match the consistency proofs bundle.json lists")
    for size in sizes:
        member = consistency_member(size)
        try:
            proof = ConsistencyProofFile.parse(files[member].decode("utf-8"), what=member)
            old = Checkpoint.parse(open_note(proof.old_checkpoint, [log_key]).text)
        except (UnicodeDecodeError, VerificationError) as error:
            raise BundleError(member, str(error)) from None
        if old.origin != checkpoint.origin or old.size != size or proof.old_size != size:
            raise BundleError(member, f"is not about the log's checkpoint at size {size}")
        try:
            verify_consistency(
                old_size=size,
                new_size=checkpoint.size,
                proof=proof.hashes,
                old_root=old.root_hash,
                new_root=checkpoint.root_hash,
            )
        except VerificationError as error:
            raise BundleError(member, f"does not prove consistency: {error}") from None
    return sorted(sizes)


def check_attestation(
    envelope: Mapping[str, Any],
    *,
    checkpoint: Checkpoint,
    verifier_key: NoteVerifier,
    whose: str = "the verifier key given",
) -> dict[str, Any]:
    """The predicate of the verifier's attestation that it checked the chain up to this
    checkpoint and found it intact, once its signature, result and subject check out; a
    ``BundleError`` on the attestation otherwise (a failed result names its finding)."""
    try:
        _, payload = verify_envelope(envelope, _verifying_keys([verifier_key]))
    except VerificationError as error:
        raise BundleError(ATTESTATION, f"not signed by {whose}: {error}") from None
    statement = _json_object(payload, ATTESTATION)
    predicate = statement.get("predicate")
    if statement.get("predicateType") != CHAIN_VERIFICATION_PREDICATE_TYPE or not isinstance(
        predicate, dict
    ):
        raise BundleError(ATTESTATION, "is not a chain verification attestation")
    if predicate.get("result") != "passed":
        finding = predicate.get("finding")
        named = (
            f": {finding.get('kind')} at index {finding.get('first_bad_index')}: "
            f"{finding.get('detail')}"
            if isinstance(finding, dict)
            else ""
        )
        raise BundleError(ATTESTATION, f"says the verification {predicate.get('result')!r}{named}")
    subjects = statement.get("subject")
    subject = subjects[0] if isinstance(subjects, list) and subjects else None
    digest = subject.get("digest") if isinstance(subject, dict) else None
    annotations = subject.get("annotations") if isinstance(subject, dict) else None
    if (
        not isinstance(subject, dict)
        or not isinstance(digest, dict)
        or not isinstance(annotations, dict)
        or subject.get("name") != checkpoint.origin
        or digest.get("rfc6962-sha256") != checkpoint.root_hash.hex()
        or annotations.get("tree_size") != checkpoint.size
    ):
        raise BundleError(ATTESTATION, "is not about this chain at the checkpoint's size and root")
    return predicate


def acknowledged_findings(predicate: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The acknowledged findings an attestation says its range spans (each with id, kind,
    first_bad_index, acknowledged_by, reason, acknowledged_at)."""
    listed = predicate.get("acknowledged_findings") or []
    if not isinstance(listed, list) or not all(isinstance(f, dict) for f in listed):
        raise BundleError(ATTESTATION, "acknowledged_findings is not a list of findings")
    return list(listed)


def _describe_attestation(predicate: Mapping[str, Any], checkpoint: Checkpoint) -> str:
    checked = predicate.get("checked")
    checked = checked if isinstance(checked, dict) else {}
    return (
        f"the verifier attests its check passed at size {checkpoint.size} "
        f"({checked.get('entries_replayed')} entries replayed, issued {predicate.get('issued_at')})"
    )


def _own_verifier_key(files: Mapping[str, bytes]) -> NoteVerifier | None:
    """The bundle's own copy of the verifier's key: enough to find a bundle that contradicts
    itself, never enough to trust it."""
    data = files.get(VERIFIER_KEY)
    if data is None:
        return None
    try:
        key = NoteVerifier.from_verifier_key(data.decode("utf-8").strip())
    except (UnicodeDecodeError, VerificationError) as error:
        raise BundleError(VERIFIER_KEY, f"is not a verifier key: {error}") from None
    if key.alg != ALG_COSIGNATURE_V1:
        raise BundleError(VERIFIER_KEY, "is not a cosignature/v1 (type 0x04) verifier key")
    return key


def verify_bundle(
    bundle: BinaryIO,
    *,
    log_key: NoteVerifier,
    verifier_key: NoteVerifier | None = None,
    extract_to: Path | None = None,
) -> BundleReport:
    """Check a bundle (a zip file, opened for reading) against the log's key (and the
    verifier's), trusting nothing else in it.

    1. The zip's layout, from its central directory, before anything is inflated (`zip_layout`).
    2. The signed manifest and SHA256SUMS, each read under a small cap: one signature, by the
       log, and the same digests.
    3. Every member listed and every listed file present, at its signed size; each read through
       its hash against its signed digest (and, with ``extract_to``, written to a staging
       directory that becomes ``extract_to`` only once everything below holds).
    4. bundle.json, the checkpoint, every entry with its proof, the consistency proofs and the
       attestation (`_verify_contents`).

    Raises BundleError at the first failure; returns what was verified. Without
    ``verifier_key`` the cosignature and the attestation are checked under the bundle's own
    copy of the verifier's key, if it has one, and the report is not ``witnessed``.
    """
    if verifier_key is not None and verifier_key.alg != ALG_COSIGNATURE_V1:
        raise ValueError("the verifier key must be its cosignature/v1 (type 0x04) verifier key")
    # Step 1.
    try:
        layout = read_layout(bundle)
    except ZipLayoutError as error:
        raise BundleError("(zip)", str(error)) from None
    except OSError as error:
        raise BundleError("(zip)", f"cannot be read: {type(error).__name__}") from None
    try:
        staged = None if extract_to is None else StagedExtraction(extract_to)
    except (ExtractionError, OSError) as error:
        raise BundleError("(extract)", str(error)) from None
    try:
        members = BundleMembers(bundle, {m.name: m for m in layout}, staged)
        # Step 2.
        for name in (MANIFEST, SHA256SUMS):
            members.files[name] = members.read_whole(name, cap=MANIFEST_BYTES)
        signed = _check_manifest(members.files[MANIFEST], members.files[SHA256SUMS], log_key)
        # Step 3.
        members.check_against(signed)
        # Step 4.
        info = _json_object(members.files.get(BUNDLE_JSON, b"{}"), BUNDLE_JSON)
        if BUNDLE_JSON not in members.files:
            raise BundleError(BUNDLE_JSON, "is missing")
        _check_info(info)
        try:
            report = _verify_contents(members, info, log_key=log_key, verifier_key=verifier_key)
        except BundleError as error:
            error.warnings = override_warnings(info.get("override"))
            raise
        if staged is not None:
            try:
                staged.finish()
            except (ExtractionError, OSError) as error:
                raise BundleError("(extract)", str(error)) from None
        return report
    except BaseException:
        if staged is not None:
            staged.abandon()
        raise


def _check_info(info: Mapping[str, Any]) -> None:
    """The shape of what bundle.json says, before anything relies on it: signed by the log or
    not, a malformed value is a failure, never an error of the verifier's own."""
    if info.get("format") != BUNDLE_FORMAT:
        raise BundleError(BUNDLE_JSON, f"format is {info.get('format')!r}, not {BUNDLE_FORMAT!r}")
    for key in ("checkpoint", "selection"):
        if not isinstance(info.get(key), dict):
            raise BundleError(BUNDLE_JSON, f"its {key} is not an object")
    for key in ("origin", "tenant", "chain"):
        if not isinstance(info.get(key), str):
            raise BundleError(BUNDLE_JSON, f"its {key} is not a string")
    selection = info["selection"]
    ids = selection.get("decision_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise BundleError(BUNDLE_JSON, "its selection's decision_ids is not a list of strings")
    sizes = info.get("consistency_from")
    if sizes is not None and not (
        isinstance(sizes, list) and all(type(size) is int and size >= 0 for size in sizes)
    ):
        raise BundleError(BUNDLE_JSON, "its consistency_from is not a list of tree sizes")
    override = info.get("override")
    if override is not None and not (
        isinstance(override, dict) and isinstance(override.get("failures") or [], list)
    ):
        raise BundleError(BUNDLE_JSON, "its override is not an object with a list of failures")


def _verify_contents(
    members: BundleMembers,
    info: Mapping[str, Any],
    *,
    log_key: NoteVerifier,
    verifier_key: NoteVerifier | None,
) -> BundleReport:
    """Everything after the manifest and bundle.json (see verify_bundle)."""
    files = members.files
    if CHECKPOINT not in files:
        raise BundleError(CHECKPOINT, "is missing")
    try:
        checkpoint_text = files[CHECKPOINT].decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(CHECKPOINT, "is not UTF-8") from None
    own_key = None if verifier_key is not None else _own_verifier_key(files)
    witness = verifier_key or own_key
    claimed = info.get("checkpoint") or {}
    checkpoint, cosigners = _check_checkpoint(
        checkpoint_text,
        info=info,
        log_key=log_key,
        verifier_key=witness,
        cosignature_required=verifier_key is not None or claimed.get("cosigned") is True,
    )
    override = info.get("override")
    report = BundleReport(
        origin=checkpoint.origin,
        tenant=str(info.get("tenant")),
        chain=str(info.get("chain")),
        selection=dict(info.get("selection") or {}),
        checkpoint_size=checkpoint.size,
        root_hash=checkpoint.root_hash.hex(),
        files=len(members.signed),
        cosigned_by=cosigners,
        witnessed=verifier_key is not None,
        override=override if isinstance(override, dict) else None,
    )
    _check_entries(
        members, info=info, checkpoint=checkpoint, checkpoint_text=checkpoint_text, report=report
    )
    report.consistent_with = _check_consistency(
        files, info=info, checkpoint=checkpoint, log_key=log_key
    )
    attestation = files.get(ATTESTATION)
    if verifier_key is not None and attestation is None:
        raise BundleError(ATTESTATION, "is missing: the bundle holds no verifier attestation")
    if witness is not None and attestation is not None:
        predicate = check_attestation(
            _json_object(attestation, ATTESTATION),
            checkpoint=checkpoint,
            verifier_key=witness,
            whose="the verifier key given"
            if verifier_key is not None
            else f"the bundle's own verifier key ({VERIFIER_KEY})",
        )
        report.attestation = _describe_attestation(predicate, checkpoint)
        report.acknowledged_findings = acknowledged_findings(predicate)
    if verifier_key is None:
        report.notes.append(
            "no --verifier-key given: the cosignature and the attestation were checked only "
            f"under the bundle's own copy of the verifier's key ({VERIFIER_KEY}), which "
            "proves nothing by itself"
            if own_key is not None
            else "no --verifier-key given, and the bundle holds no verifier key: neither a "
            "cosignature nor an attestation was checked"
        )
    return report
