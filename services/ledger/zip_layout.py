"""The layout of a zip file from a stranger, checked before a byte of it is inflated.

A bundle is read by people who did not make it, so its zip structure is taken as hostile: the
central directory is read from the end-of-central-directory record (APPNOTE.TXT 4.3.16), every
entry in it is checked against the limits below, and the local headers are walked from offset 0
so that every byte of the file belongs to exactly one member, the central directory or its end
record. What this refuses, no zip reader ever sees: data prepended or appended (a second archive
hidden behind the first), local entries missing from the directory, overlapping members,
directory entries, unsafe or duplicate names, encryption, compression methods other than
deflate, and members that claim to inflate a thousandfold.

Members are then inflated by `inflate`, in bounded chunks, and must produce exactly their stated
size and CRC-32; nothing here holds more than one chunk of a member in memory.
"""

from __future__ import annotations

import struct
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from ledger.errors import VerificationError

MAX_MEMBERS: Final = 1000
MAX_NAME_BYTES: Final = 255
# Deflate can reach some 1,000:1 on zeros; a bundle's JSON and proofs stay far below 100:1. Small
# members are exempt: their ratio bounds nothing worth bounding.
MAX_RATIO: Final = 100
RATIO_EXEMPT_BYTES: Final = 1 << 20
DEFLATED: Final = 8
# APPNOTE 4.4.3: 2.0 for deflate, 4.5 for zip64; a later version means features we do not write.
MAX_VERSION_NEEDED: Final = 45
MAX_VERSION_MADE_BY: Final = 63
# Flag bits we accept (APPNOTE 4.4.4): 1-2 deflate level, 3 data descriptor, 11 UTF-8 name.
# Bit 0 (encrypted), 6 (strong encryption), 13 (masked headers) and the rest are refused.
ALLOWED_FLAGS: Final = 0b0000_1000_0000_1110
DATA_DESCRIPTOR_FLAG: Final = 0x08
UTF8_FLAG: Final = 0x800
ZIP64_EXTRA: Final = 0x0001
# Above this, Python's zipfile (the exporter's writer) switches to zip64 (zipfile.ZIP64_LIMIT).
ZIP64_THRESHOLD: Final = (1 << 31) - 1

_EOCD = struct.Struct("<IHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_EOCD_SIGNATURE: Final = 0x06054B50
_ZIP64_LOCATOR_SIGNATURE: Final = 0x07064B50
_ZIP64_EOCD_SIGNATURE: Final = 0x06064B50
_CENTRAL_SIGNATURE: Final = 0x02014B50
_LOCAL_SIGNATURE: Final = 0x04034B50
_DESCRIPTOR_SIGNATURE: Final = 0x08074B50
_READ_BYTES: Final = 1 << 16
INFLATE_CHUNK: Final = 1 << 20


class ZipLayoutError(VerificationError):
    """The file is not a zip laid out as a bundle's must be, or a member does not inflate."""


@dataclass(frozen=True, slots=True)
class ZipMember:
    """One member as the central directory states it, its local header checked against it."""

    name: str
    header_offset: int
    data_offset: int
    compressed_size: int
    size: int
    crc32: int


def read_layout(file: BinaryIO) -> list[ZipMember]:
    """The members of a zip file, in file order, once its whole layout has been checked."""
    file_size = file.seek(0, 2)
    count, directory_offset, directory_size, directory_end = _end_records(file, file_size)
    if count > MAX_MEMBERS:
        raise ZipLayoutError(f"holds {count} members, more than {MAX_MEMBERS}")
    if directory_offset + directory_size != directory_end:
        raise ZipLayoutError("the central directory does not end where its end record starts")
    most = count * (_CENTRAL.size + MAX_NAME_BYTES + 2 * 28)
    if directory_size > most:
        raise ZipLayoutError(f"the central directory is {directory_size} bytes for {count} members")
    directory = _read_at(file, directory_offset, directory_size)
    members = _central_directory(directory, count)
    members.sort(key=lambda entry: entry.header_offset)
    checked: list[ZipMember] = []
    position = 0
    for number, entry in enumerate(members):
        if entry.header_offset != position:
            gap = "before its first member" if number == 0 else f"before {entry.name!r}"
            raise ZipLayoutError(
                f"{entry.header_offset - position:+d} bytes not in any member {gap}"
            )
        following = (
            members[number + 1].header_offset if number + 1 < len(members) else directory_offset
        )
        member, position = _local_entry(file, entry, following)
        checked.append(member)
    if position != directory_offset:
        raise ZipLayoutError("bytes between the last member and the central directory")
    return checked


def inflate(file: BinaryIO, member: ZipMember, *, chunk: int = INFLATE_CHUNK) -> Iterator[bytes]:
    """The member's bytes, inflated chunk by chunk (none longer than ``chunk``); its stated size
    and CRC-32 are checked as it goes and at its end."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    crc, produced = 0, 0
    position, remaining = member.data_offset, member.compressed_size
    what = f"{member.name!r}"
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail
            if not data and remaining:
                data = _read_at(file, position, min(remaining, _READ_BYTES))
                position += len(data)
                remaining -= len(data)
            out = inflater.decompress(data, chunk)
            if not out and not data:
                break  # no input left, and nothing held back
            produced += len(out)
            if produced > member.size:
                raise ZipLayoutError(f"{what} inflates to more than its stated {member.size} bytes")
            if out:
                crc = zlib.crc32(out, crc)
                yield out
    except zlib.error as error:
        raise ZipLayoutError(f"{what} is not a valid deflate stream ({error})") from None
    if inflater.eof and (remaining or inflater.unused_data):
        raise ZipLayoutError(f"{what} has bytes after the end of its deflate stream")
    if not inflater.eof:
        raise ZipLayoutError(f"{what}: its deflate stream is cut short")
    if produced != member.size:
        raise ZipLayoutError(f"{what} inflates to {produced} bytes, not its stated {member.size}")
    if crc != member.crc32:
        raise ZipLayoutError(f"{what} fails its CRC-32")


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    file.seek(offset)
    data = file.read(size)
    if len(data) != size:
        raise ZipLayoutError(f"ends before byte {offset + size}")
    return data


def _end_records(file: BinaryIO, file_size: int) -> tuple[int, int, int, int]:
    """(members, central directory offset and size, where the directory must end). The end
    record is the last 22 bytes: a comment, like any other appended byte, is refused."""
    if file_size < _EOCD.size:
        raise ZipLayoutError("is too short to be a zip file")
    end = file_size - _EOCD.size
    signature, disk, directory_disk, on_disk, count, size, offset, comment = _EOCD.unpack(
        _read_at(file, end, _EOCD.size)
    )
    if signature != _EOCD_SIGNATURE:
        raise ZipLayoutError("does not end with an end-of-central-directory record")
    if comment:
        raise ZipLayoutError("has a comment or bytes after its end-of-central-directory record")
    if disk or directory_disk or on_disk != count:
        raise ZipLayoutError("is a multi-disk archive")
    locator_at = end - _ZIP64_LOCATOR.size
    if locator_at >= _ZIP64_EOCD.size:
        locator = _ZIP64_LOCATOR.unpack(_read_at(file, locator_at, _ZIP64_LOCATOR.size))
        if locator[0] == _ZIP64_LOCATOR_SIGNATURE:
            return _zip64_end_records(file, locator, locator_at)
    if count == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF:
        raise ZipLayoutError("its end record points to a zip64 record that is not there")
    return count, offset, size, end


def _zip64_end_records(
    file: BinaryIO, locator: tuple[int, ...], locator_at: int
) -> tuple[int, int, int, int]:
    _, disk, record_at, disks = locator
    record_end = record_at + _ZIP64_EOCD.size
    if disk or disks != 1 or record_end != locator_at:
        raise ZipLayoutError("its zip64 end record is not right before its locator")
    fields = _ZIP64_EOCD.unpack(_read_at(file, record_at, _ZIP64_EOCD.size))
    signature, record_size, _, needed, disk, directory_disk, on_disk, count, size, offset = fields
    if signature != _ZIP64_EOCD_SIGNATURE or record_size != _ZIP64_EOCD.size - 12:
        raise ZipLayoutError("its zip64 end record is malformed")
    if needed > MAX_VERSION_NEEDED or disk or directory_disk or on_disk != count:
        raise ZipLayoutError("its zip64 end record is malformed")
    if count <= 0xFFFF and max(offset, size) <= ZIP64_THRESHOLD:
        raise ZipLayoutError("has a zip64 end record it does not need")
    return count, offset, size, record_at


@dataclass(frozen=True, slots=True)
class _Central:
    name: str
    raw_name: bytes
    version_needed: int
    flags: int
    method: int
    time: int
    date: int
    crc32: int
    compressed_size: int
    size: int
    header_offset: int


def _central_directory(directory: bytes, count: int) -> list[_Central]:
    entries: list[_Central] = []
    seen: set[str] = set()
    position = 0
    for _ in range(count):
        if position + _CENTRAL.size > len(directory):
            raise ZipLayoutError("its central directory is cut short")
        fields = _CENTRAL.unpack_from(directory, position)
        (signature, made_by, needed, flags, method, time, date, crc, compressed, size) = fields[:10]
        name_length, extra_length, comment_length, disk, _, _, offset = fields[10:]
        if signature != _CENTRAL_SIGNATURE:
            raise ZipLayoutError("its central directory holds something other than entries")
        start = position + _CENTRAL.size
        position = start + name_length + extra_length + comment_length
        if position > len(directory):
            raise ZipLayoutError("its central directory is cut short")
        raw_name = directory[start : start + name_length]
        name = _member_name(raw_name, flags)
        if name.casefold() in seen:
            raise ZipLayoutError(f"{name!r} occurs twice")
        seen.add(name.casefold())
        _check_entry(name, made_by=made_by, needed=needed, flags=flags, method=method)
        if comment_length or disk:
            raise ZipLayoutError(f"{name!r} has a comment or starts on another disk")
        extra = directory[start + name_length : start + name_length + extra_length]
        wide = [v for v in (size, compressed, offset) if v == 0xFFFFFFFF]
        values = _zip64_values(extra, len(wide), what=name)
        size, compressed, offset = _widened((size, compressed, offset), values)
        if values and max(values) <= ZIP64_THRESHOLD:
            raise ZipLayoutError(f"{name!r} has zip64 sizes it does not need")
        if size > RATIO_EXEMPT_BYTES and size > MAX_RATIO * compressed:
            raise ZipLayoutError(
                f"{name!r} claims to inflate {compressed} bytes to {size}, more than "
                f"{MAX_RATIO} times"
            )
        entries.append(
            _Central(
                name, raw_name, needed, flags, method, time, date, crc, compressed, size, offset
            )
        )
    if position != len(directory):
        raise ZipLayoutError("its central directory holds more than its entries")
    return entries


def _member_name(raw: bytes, flags: int) -> str:
    """A relative path of plain segments; anything a file system could read otherwise is out."""
    if not raw or len(raw) > MAX_NAME_BYTES:
        raise ZipLayoutError(f"a member name is empty or longer than {MAX_NAME_BYTES} bytes")
    try:
        name = raw.decode("utf-8" if flags & UTF8_FLAG else "ascii")
    except UnicodeDecodeError:
        raise ZipLayoutError(f"a member name is not valid UTF-8: {raw[:60]!r}") from None
    if name.endswith("/"):
        raise ZipLayoutError(f"{name!r} is a directory entry")
    if any(unicodedata.category(c)[0] == "C" for c in name) or "\\" in name or ":" in name:
        raise ZipLayoutError(f"{name!r} holds a control character, a backslash or a colon")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise ZipLayoutError(f"{name!r} is not a plain relative path")
    return name


def _check_entry(name: str, *, made_by: int, needed: int, flags: int, method: int) -> None:
    if flags & 0x01 or flags & 0x40 or flags & 0x2000:
        raise ZipLayoutError(f"{name!r} is encrypted")
    if flags & ~ALLOWED_FLAGS:
        raise ZipLayoutError(f"{name!r} has general purpose flags {flags:#06x}")
    if method != DEFLATED:
        raise ZipLayoutError(f"{name!r} uses compression method {method}, not deflate (8)")
    if needed > MAX_VERSION_NEEDED or made_by & 0xFF > MAX_VERSION_MADE_BY:
        raise ZipLayoutError(f"{name!r} needs zip version {needed / 10:.1f}, beyond 4.5")


def _zip64_values(extra: bytes, wanted: int, *, what: str) -> tuple[int, ...]:
    """The 64-bit values of a zip64 extra field (APPNOTE 4.5.3), the only extra field allowed;
    exactly ``wanted`` of them, one for each 32-bit field set to 0xFFFFFFFF."""
    values: tuple[int, ...] = ()
    position = 0
    while position < len(extra):
        if position + 4 > len(extra):
            raise ZipLayoutError(f"{what!r} has a malformed extra field")
        kind, length = struct.unpack_from("<HH", extra, position)
        data = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if kind != ZIP64_EXTRA or values or len(data) != length or length % 8:
            raise ZipLayoutError(f"{what!r} has an extra field other than one zip64 field")
        values = struct.unpack(f"<{length // 8}Q", data)
    if len(values) != wanted:
        raise ZipLayoutError(f"{what!r} has zip64 values that do not match its header")
    return values


def _widened(narrow: tuple[int, ...], values: tuple[int, ...]) -> tuple[int, ...]:
    """The 32-bit fields, each 0xFFFFFFFF replaced by the next zip64 value in order."""
    wide = iter(values)
    return tuple(next(wide) if v == 0xFFFFFFFF else v for v in narrow)


def _local_entry(file: BinaryIO, entry: _Central, following: int) -> tuple[ZipMember, int]:
    """The member at ``entry.header_offset``, its local header agreeing with the directory; and
    where it ends (after its data and any data descriptor), which must be ``following``."""
    name = entry.name
    fields = _LOCAL.unpack(_read_at(file, entry.header_offset, _LOCAL.size))
    signature, needed, flags, method, time, date, crc, compressed, size, name_length, extra = fields
    if signature != _LOCAL_SIGNATURE:
        raise ZipLayoutError(f"{name!r}: no local header where the central directory says")
    if (needed, flags, method, time, date) != (
        entry.version_needed,
        entry.flags,
        entry.method,
        entry.time,
        entry.date,
    ):
        raise ZipLayoutError(f"{name!r}: its local header disagrees with the central directory")
    start = entry.header_offset + _LOCAL.size
    names_and_extra = _read_at(file, start, name_length + extra)
    if names_and_extra[:name_length] != entry.raw_name:
        raise ZipLayoutError(f"{name!r}: its local header names another file")
    values = _zip64_values(
        names_and_extra[name_length:],
        sum(v == 0xFFFFFFFF for v in (size, compressed)),
        what=name,
    )
    described = flags & DATA_DESCRIPTOR_FLAG
    # A writer that streams a member writes its sizes after its data (bit 3), or, knowing
    # nothing of the size beforehand, reserves zip64 fields in the local header: Python's
    # zipfile does the latter with force_zip64, as earlier versions of the exporter did.
    local = (crc, *_widened((size, compressed), values))
    if (not described and local != (entry.crc32, entry.size, entry.compressed_size)) or (
        described and any(local)
    ):
        raise ZipLayoutError(f"{name!r}: its local header disagrees with the central directory")
    data_offset = start + name_length + extra
    end = data_offset + entry.compressed_size
    if described:
        end = _data_descriptor(file, entry, end, following)
    if end != following:
        raise ZipLayoutError(f"{name!r} does not end where the next member or directory starts")
    member = ZipMember(
        name=name,
        header_offset=entry.header_offset,
        data_offset=data_offset,
        compressed_size=entry.compressed_size,
        size=entry.size,
        crc32=entry.crc32,
    )
    return member, end


def _data_descriptor(file: BinaryIO, entry: _Central, at: int, following: int) -> int:
    """Where the member's data descriptor (APPNOTE 4.3.9) ends; it must repeat the directory's
    CRC-32 and sizes, with or without its optional signature, in 32 or 64 bits."""
    length = following - at
    if length not in (12, 16, 20, 24):
        raise ZipLayoutError(f"{entry.name!r} does not end where the next member starts")
    data = _read_at(file, at, length)
    signed = length in (16, 24) and int.from_bytes(data[:4], "little") == _DESCRIPTOR_SIGNATURE
    body = data[4:] if signed else data
    if len(body) == 12:
        crc, compressed, size = struct.unpack("<III", body)
    elif len(body) == 20:
        crc, compressed, size = struct.unpack("<IQQ", body)
    else:
        raise ZipLayoutError(f"{entry.name!r} has a malformed data descriptor")
    if (crc, compressed, size) != (entry.crc32, entry.compressed_size, entry.size):
        raise ZipLayoutError(f"{entry.name!r}: its data descriptor disagrees with the directory")
    return following
