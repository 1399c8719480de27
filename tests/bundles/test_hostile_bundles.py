"""verify-bundle on files from strangers: every hostile zip is refused with a clean FAILED line
(exit 1), before anything is inflated where the layout gives it away, with memory bounded on
any input; a genuine bundle still verifies. Every file here is built by the test."""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import orjson
import pytest
from ledger.bundle import (
    BUNDLE_JSON,
    ENTRIES,
    INCLUSION_PROOFS,
    MANIFEST,
    SHA256SUMS,
    BundleError,
    BundleReport,
    verify_bundle,
)
from ledger.keys import SigningKey
from ledger.note import NoteVerifier
from ledger.zip_layout import MAX_MEMBERS

from tests.bundles.forge import (
    Genuine,
    RawMember,
    deflated,
    genuine_bundle,
    members_of,
    raw_zip,
    rebuilt,
    resigned,
)

GIB = 1 << 30
# verify-bundle with its imports peaks at some 45 MB on a small bundle. On any input it holds
# at most 64 MiB of small members more, a few 1 MiB chunks and one entry line; a bomb that got
# past the checks would take 1 GiB.
PEAK_RSS_BOUND_KB = 100 * 1024


@pytest.fixture(scope="module")
def genuine() -> Genuine:
    return genuine_bundle()


def refused(data: bytes, log: NoteVerifier) -> BundleError:
    with pytest.raises(BundleError) as caught:
        verify_bundle(io.BytesIO(data), log_key=log)
    return caught.value


def verified(data: bytes, log: NoteVerifier) -> BundleReport:
    return verify_bundle(io.BytesIO(data), log_key=log)


# Runs `audit-trail verify-bundle` as its child and reports the child's peak RSS. getrusage of
# the verifying process itself would not do: Linux carries the RSS peak of the process that
# spawned it across exec (here the whole test runner); this launcher is small.
LAUNCHER = """\
import json, resource, subprocess, sys, time
started = time.monotonic()
command = [sys.executable, "-m", "audit_trail", "verify-bundle", *sys.argv[1:]]
ran = subprocess.run(command, capture_output=True, text=True, check=False)
seconds = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(ran.stdout + ran.stderr)
print(json.dumps({"status": ran.returncode, "rss_kb": peak, "seconds": seconds}))
"""


def run_cli(path: Path, log: NoteVerifier, *options: str) -> tuple[int, str, dict[str, float]]:
    """`audit-trail verify-bundle` in a fresh process: (exit status, what it printed, and its
    peak RSS in KiB and run time in seconds)."""
    ran = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(path), "--log-key", log.verifier_key, *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    *printed, last = ran.stdout.splitlines()
    measured = json.loads(last)
    return int(measured["status"]), "\n".join(printed) + ran.stderr, measured


def test_a_genuine_bundle_verifies_and_its_manifest_states_each_size(genuine: Genuine) -> None:
    report = verified(genuine.data, genuine.log)
    assert (report.entries, report.links_checked) == (12, 11)
    files = members_of(genuine.data)
    envelope = orjson.loads(files[MANIFEST])
    statement = orjson.loads(base64.b64decode(envelope["payload"]))
    sizes = {s["name"]: s["annotations"]["size"] for s in statement["subject"]}
    assert sizes[ENTRIES] == len(files[ENTRIES]) and sizes[BUNDLE_JSON] == len(files[BUNDLE_JSON])
    # Laid out by hand, the same files verify: the checks are about layout, not about zipfile.
    assert verified(rebuilt(files), genuine.log).entries == 12


def test_a_bundle_as_earlier_exporters_wrote_it_still_verifies(genuine: Genuine) -> None:
    """Earlier exporters streamed entries and proofs with zip64 fields in their local headers
    (zipfile's force_zip64) and stated no sizes in the manifest."""
    files = members_of(genuine.data)
    unsized = resigned(files, genuine.key, sizes=False)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in unsized.items():
            if name in (ENTRIES, INCLUSION_PROOFS):
                with archive.open(name, "w", force_zip64=True) as member:
                    member.write(data)
            else:
                archive.writestr(name, data)
    assert verified(out.getvalue(), genuine.log).entries == 12


@pytest.fixture(scope="module")
def gigabyte_of_zeros() -> RawMember:
    """1 GiB of zeros deflated to some 1 MiB: the same full-flushed block 64 times, then an
    empty final block, with the CRC-32 of the whole."""
    chunk = bytes(16 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(64):
        crc = zlib.crc32(chunk, crc)
    return RawMember(
        ENTRIES.encode(), compressed=block * 64 + b"\x03\x00", stated_size=GIB, crc=crc
    )


def test_a_bomb_stating_its_size_is_refused_from_the_directory(
    genuine: Genuine, gigabyte_of_zeros: RawMember, tmp_path: Path
) -> None:
    files = {n: d for n, d in members_of(genuine.data).items() if n != ENTRIES}
    path = tmp_path / "bomb.zip"
    path.write_bytes(rebuilt(files, gigabyte_of_zeros))
    status, printed, measured = run_cli(path, genuine.log)
    assert status == 1 and "Traceback" not in printed, printed
    assert f"FAILED (zip): '{ENTRIES}' claims to inflate" in printed, printed
    assert measured["rss_kb"] < PEAK_RSS_BOUND_KB, measured
    assert measured["seconds"] < 10, measured


def test_a_bomb_lying_about_its_size_stops_at_its_stated_size(
    genuine: Genuine, gigabyte_of_zeros: RawMember, tmp_path: Path
) -> None:
    """The directory says 600 bytes, so the ratio allows it; the first chunk inflated past 600
    bytes stops it. Named as the manifest, it is the first member read."""
    files = {n: d for n, d in members_of(genuine.data).items() if n != MANIFEST}
    liar = RawMember(
        MANIFEST.encode(), compressed=gigabyte_of_zeros.compressed, stated_size=600, crc=0
    )
    path = tmp_path / "liar.zip"
    path.write_bytes(rebuilt(files, liar))
    status, printed, measured = run_cli(path, genuine.log)
    assert status == 1 and "Traceback" not in printed, printed
    assert "inflates to more than its stated 600 bytes" in printed, printed
    assert measured["rss_kb"] < PEAK_RSS_BOUND_KB, measured
    assert measured["seconds"] < 10, measured


@pytest.mark.parametrize("count", [MAX_MEMBERS + 1, 100_000])
def test_a_flood_of_members_is_refused_before_the_directory_is_read(
    genuine: Genuine, count: int
) -> None:
    empty = deflated(b"")
    flood = raw_zip([RawMember(f"f/{i}".encode(), compressed=empty) for i in range(count)])
    error = refused(flood, genuine.log)
    assert error.member == "(zip)" and f"holds {count} members" in error.message


def test_data_before_or_after_the_bundle_is_refused(genuine: Genuine) -> None:
    for data in (
        b"MZ" + bytes(62) + genuine.data,
        genuine.data + b"trailing",
        genuine.data[:-2] + b"\x05\x00hello",  # a zip comment
    ):
        assert refused(data, genuine.log).member == "(zip)"


def test_a_genuine_bundle_appended_to_a_forged_one_is_refused(genuine: Genuine) -> None:
    """Many zip readers take the last end record and read the genuine bundle; whoever looks
    at the file with another tool sees the forged one in front. verify-bundle accepts
    neither."""
    forged = genuine_bundle(key=SigningKey.generate())
    for data in (forged.data + genuine.data, genuine.data + forged.data):
        error = refused(data, genuine.log)
        assert error.member == "(zip)", error


def test_a_local_entry_missing_from_the_directory_is_refused(genuine: Genuine) -> None:
    files = members_of(genuine.data)
    hidden = RawMember(b"hidden.html", b"<script>", listed=False)
    at_end = rebuilt(files, hidden)
    unaccounted = "does not end where the next member or directory starts"
    assert unaccounted in refused(at_end, genuine.log).message
    members = [RawMember(name.encode(), data) for name, data in files.items()]
    in_between = raw_zip([members[0], hidden, *members[1:]])
    assert unaccounted in refused(in_between, genuine.log).message
    in_front = raw_zip([hidden, *members])
    assert "bytes not in any member before its first" in refused(in_front, genuine.log).message


BAD_ENTRIES = {
    "a directory entry": (RawMember(b"keys/"), "is a directory entry"),
    "compression method 99": (
        RawMember(b"x.txt", b"data", compressed=b"data", method=99),
        "compression method 99",
    ),
    "stored, not deflated": (
        RawMember(b"x.txt", b"data", compressed=b"data", method=0),
        "compression method 0",
    ),
    "the encrypted flag": (RawMember(b"x.txt", b"data", flags=0x1), "is encrypted"),
    "strong encryption": (RawMember(b"x.txt", b"data", flags=0x40), "is encrypted"),
    "version 9.9": (RawMember(b"x.txt", b"data", version=99), "needs zip version 9.9"),
    "a UTF-8 name that is not": (
        RawMember(b"\xff\xfe.txt", b"data", flags=0x800),
        "not valid UTF-8",
    ),
    "a non-ASCII name without the UTF-8 flag": (RawMember(b"caf\xe9", b"x"), "not valid UTF-8"),
    "a parent segment": (RawMember(b"keys/../../etc/cron.d/x", b"x"), "not a plain relative"),
    "an absolute path": (RawMember(b"/etc/passwd", b"x"), "not a plain relative"),
    "an empty segment": (RawMember(b"keys//log.vkey", b"x"), "not a plain relative"),
    "a backslash": (RawMember(b"..\\evil", b"x"), "backslash"),
    "a control character": (RawMember(b"report\x1b[2J.html", b"x"), "control character"),
    "a duplicate": (RawMember(SHA256SUMS.encode(), b"x"), "occurs twice"),
    "a duplicate but for case": (RawMember(b"sha256sums", b"x"), "occurs twice"),
}


@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_an_entry_the_exporter_never_writes_is_refused(genuine: Genuine, case: str) -> None:
    member, said = BAD_ENTRIES[case]
    error = refused(rebuilt(members_of(genuine.data), member), genuine.log)
    assert error.member == "(zip)" and said in error.message, error


def test_corrupt_deflate_data_is_named(genuine: Genuine) -> None:
    files = members_of(genuine.data)
    members = [
        RawMember(name.encode(), data, compressed=b"\xff" * 40 if name == ENTRIES else None)
        for name, data in files.items()
    ]
    error = refused(raw_zip(members), genuine.log)
    assert error.member == ENTRIES and "cannot be read" in error.message, error


@pytest.mark.parametrize(
    "change",
    [
        {"checkpoint": "size 12"},
        {"selection": ["range", 0, 12]},
        {"selection": {"kind": "decisions", "decision_ids": [["loan-1"]]}},
        {"consistency_from": ["3"]},
        {"override": {"failures": 3}},
        {"tenant": 7},
    ],
)
def test_a_log_signed_bundle_json_of_the_wrong_shape_fails_cleanly(
    genuine: Genuine, change: dict[str, object]
) -> None:
    files = members_of(genuine.data)
    info = {**orjson.loads(files[BUNDLE_JSON]), **change}
    forged = resigned({**files, BUNDLE_JSON: orjson.dumps(info)}, genuine.key)
    error = refused(rebuilt(forged), genuine.log)
    assert error.member == BUNDLE_JSON, error


def test_a_second_signature_on_the_manifest_is_refused(genuine: Genuine) -> None:
    files = members_of(genuine.data)
    envelope = orjson.loads(files[MANIFEST])
    other = orjson.loads(resigned(files, SigningKey.generate())[MANIFEST])
    for signatures in (
        envelope["signatures"] * 2,
        envelope["signatures"] + other["signatures"],
        other["signatures"] + envelope["signatures"],
    ):
        doubled = {**files, MANIFEST: orjson.dumps({**envelope, "signatures": signatures})}
        error = refused(rebuilt(doubled), genuine.log)
        assert error.member == MANIFEST and "2 signatures" in error.message


def test_a_member_not_in_the_manifest_is_refused_unread(genuine: Genuine) -> None:
    files = members_of(genuine.data)
    extra = RawMember(b"notes.txt", compressed=b"\xff" * 16, stated_size=10)  # not deflate
    error = refused(rebuilt(files, extra), genuine.log)
    assert error.member == "notes.txt" and "not in the signed manifest" in error.message


def test_a_member_larger_than_its_signed_size_is_refused_unread(genuine: Genuine) -> None:
    files = members_of(genuine.data)
    members = [
        RawMember(name.encode(), data + (b"{}\n" if name == ENTRIES else b""))
        for name, data in files.items()
    ]
    error = refused(raw_zip(members), genuine.log)
    assert error.member == ENTRIES and "the signed manifest says" in error.message


def test_a_time_export_holds_only_entries_received_in_its_window() -> None:
    key = SigningKey.generate()
    window = {
        "kind": "time",
        "since": "2026-01-01T00:00:02.000000Z",
        "until": "2026-01-01T00:00:06.000000Z",
        "start": 2,
        "end": 6,
    }
    assert verified(genuine_bundle(key=key, selection=window).data, genuine_bundle(key=key).log)
    # The log's index range says [2, 6), but entry 2 was received before `since`.
    later = {**window, "since": "2026-01-01T00:00:03.000000Z"}
    forged = genuine_bundle(key=key, selection=later)
    error = refused(forged.data, forged.log)
    assert (error.member, error.index, error.check) == (ENTRIES, 2, "selection"), error


def test_a_few_hundred_byte_flips_fail_cleanly_or_verify(genuine: Genuine) -> None:
    """A bit flipped anywhere (a fixed seed, so any failure reproduces): the bundle is refused
    with a BundleError, or verifies if the bit is one nothing reads (a file's time, say, which
    then disagrees between its two headers and is refused too). Any other exception would be a
    traceback on the regulator's screen."""
    flips = random.Random(20261202)
    outcomes = {"failed": 0, "verified": 0}
    for _ in range(400):
        damaged = bytearray(genuine.data)
        damaged[flips.randrange(len(damaged))] ^= 1 << flips.randrange(8)
        try:
            verified(bytes(damaged), genuine.log)
            outcomes["verified"] += 1
        except BundleError:
            outcomes["failed"] += 1
    assert outcomes["failed"] > 350, outcomes


def test_the_command_line_says_failed_and_never_prints_a_traceback(
    genuine: Genuine, tmp_path: Path
) -> None:
    forged = genuine_bundle(key=SigningKey.generate())
    for name, data in (
        ("appended.zip", forged.data + genuine.data),
        ("named.zip", rebuilt(members_of(genuine.data), RawMember(b"../x", b"x"))),
        ("empty.zip", b""),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        status, printed, _ = run_cli(path, genuine.log)
        assert status == 1 and "FAILED" in printed and "Traceback" not in printed, printed
    good = tmp_path / "good.zip"
    good.write_bytes(genuine.data)
    status, printed, _ = run_cli(good, genuine.log, "--extract", str(tmp_path / "read-me"))
    assert status == 2 and "NOT WITNESSED" in printed, printed  # no verifier key given
    assert f"EXTRACTED      to {tmp_path / 'read-me'}" in printed
    assert (tmp_path / "read-me" / ENTRIES).read_bytes() == members_of(genuine.data)[ENTRIES]


def test_extract_writes_the_verified_files_and_nothing_else(
    genuine: Genuine, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    verify_bundle(io.BytesIO(genuine.data), log_key=genuine.log, extract_to=target)
    written = {
        str(path.relative_to(target)): path.read_bytes()
        for path in target.rglob("*")
        if path.is_file()
    }
    assert written == members_of(genuine.data)
    # A bundle that fails leaves nothing behind: no target, no staging directory.
    failing = tmp_path / "failing"
    files = members_of(genuine.data)
    tampered = {**files, ENTRIES: files[ENTRIES].replace(b"loan-1", b"loan-9", 1)}
    # Refused by its digest, then (re-signed with the log's key) by the inclusion proof.
    for data in (rebuilt(tampered), rebuilt(resigned(tampered, genuine.key))):
        with pytest.raises(BundleError):
            verify_bundle(io.BytesIO(data), log_key=genuine.log, extract_to=failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_extract_only_into_a_new_or_empty_directory(genuine: Genuine, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    verify_bundle(io.BytesIO(genuine.data), log_key=genuine.log, extract_to=empty)
    assert (empty / ENTRIES).is_file() and (empty / INCLUSION_PROOFS).is_file()
    for target in (empty, tmp_path / "link"):
        if target.name == "link":
            target.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
            (tmp_path / "elsewhere").mkdir()
        with pytest.raises(BundleError) as caught:
            verify_bundle(io.BytesIO(genuine.data), log_key=genuine.log, extract_to=target)
        assert caught.value.member == "(extract)"
    assert not any((tmp_path / "elsewhere").iterdir())
