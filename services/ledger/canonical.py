"""RFC 8785 JSON Canonicalization Scheme (JCS) and a strict I-JSON (RFC 7493) parser.

`canonicalize` turns a JSON value into the unique byte string RFC 8785 defines for it. Its output
is byte-identical to the `rfc8785` package for every value that package accepts, and it raises
`CanonicalJSONError` for every value that package rejects (NaN and infinities, integers outside
the safe range, lone surrogates, non-string object keys, types that are not JSON).

`parse_json` reads JSON text that must be I-JSON, so that what we canonicalize, hash and sign is
exactly what the producer meant. It rejects:

- text that is not JSON, or not UTF-8 (RFC 8259 §8.1, RFC 7493 §2.1);
- duplicate object member names (RFC 7493 §2.3: parsers disagree on which one wins);
- the literals ``NaN``, ``Infinity`` and ``-Infinity`` and numbers that overflow a double, which
  JSON does not have (RFC 8259 §6) and JCS cannot serialise (RFC 8785 §3.2.2.3);
- lone surrogates, escaped (``"\\ud800"``) or raw, in member names and strings (RFC 7493 §2.1);
- integers outside ±(2^53 − 1). RFC 7493 §2.2 says such integers are not interoperable, and JCS
  would turn them into the nearest double, silently changing an audit record. We choose an
  error over rounding, as the `rfc8785` package does for Python ints; producers should send such
  numbers as strings. This covers integer literals (``9007199254740993``) and also doubles
  whose RFC 8785 form is an integer literal beyond that range (``1e20``, ``9007199254740992.0``,
  all integral doubles of magnitude 2^53 up to 1e21), so that every canonical document built
  from parsed values can itself be read back by `parse_json`. Other doubles are accepted
  whatever their magnitude: ``1.5e300`` and ``1e21`` canonicalize to ``1.5e+300`` and
  ``1e+21``;
- nesting deeper than `max_depth` containers (RFC 8259 §9 lets parsers limit nesting).

Noncharacters (U+FDD0, U+FFFF, ...) are accepted: they are valid Unicode scalar values that
round-trip through UTF-8, and the `rfc8785` package accepts them too.

Both functions have a fast path built on orjson and an exact pure-Python path. The fast path is
used only when cheap checks prove it gives the same answer; everything else (and every error,
so that the error can say where) goes through the exact path.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

import orjson

from ledger.errors import CanonicalJSONError

__all__ = ["MAX_SAFE_INTEGER", "canonicalize", "parse_json"]

MAX_SAFE_INTEGER: Final = 2**53 - 1

_ORJSON_DUMPS_OPTIONS: Final = (
    orjson.OPT_SORT_KEYS
    # orjson's 53-bit limit is exactly ±(2^53 − 1), the I-JSON safe range (RFC 7493 §2.2).
    | orjson.OPT_STRICT_INTEGER
    # Without a `default`, these make orjson raise for str/int/dict/list subclasses, dataclasses
    # and dates instead of serialising them its own way; the exact path decides about them.
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)

_SURROGATE: Final = re.compile("[\ud800-\udfff]")

# RFC 8785 §3.2.2.2: the two-character escapes where JSON has one, \u00xx (lowercase hex) for the
# other control characters, and nothing else escaped.
_STRING_ESCAPES: Final[dict[int, str]] = {
    **{code: f"\\u{code:04x}" for code in range(0x20)},
    ord("\b"): "\\b",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\f"): "\\f",
    ord("\r"): "\\r",
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


# Every digit becomes "0" and "{" becomes "[", so one translated copy of a JSON text shows digit
# runs and counts opening brackets.
_DIGITS_AS_ZERO_AND_BRACES_AS_BRACKETS: Final = bytes.maketrans(b"0123456789{", b"0000000000[")
_SIXTEEN_DIGITS_AND_A_POINT: Final = b"0" * 16 + b"."

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------


def _format_double(number: float) -> str:
    """Serialise a double as ECMAScript's Number.prototype.toString does (RFC 8785 §3.2.2.3).

    Python's repr yields the digits ECMA-262 (6th edition, §7.1.12.1) asks for: the fewest that
    round-trip and, among those, the closest to the exact value. Only the layout differs.
    """
    if not math.isfinite(number):
        raise CanonicalJSONError(f"{number!r} is not a JSON number (RFC 8785 §3.2.2.3)")
    if number == 0:
        return "0"  # -0 too: RFC 8785 §3.2.2.3 serialises minus zero as 0
    text = repr(number)
    if "e" not in text:
        # repr uses positional notation exactly for 1e-4 <= |x| < 1e16, a range in which
        # ECMAScript does too; it only adds ".0" to integral values.
        return text[:-2] if text.endswith(".0") else text
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent_text = text.partition("e")
    digits = mantissa.replace(".", "")
    # ECMA-262 names the digits s (k of them) and the decimal point position n:
    # the value is 0.s × 10^n, i.e. s × 10^(n − k).
    point = int(exponent_text) + 1
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    exponent = point - 1
    exponent_part = f"e+{exponent}" if exponent > 0 else f"e-{-exponent}"
    if count == 1:
        return sign + digits + exponent_part
    return sign + digits[0] + "." + digits[1:] + exponent_part


# Doubles on both sides of every boundary the fast paths rely on (see `_orjson_layout_is_known`).
_ORJSON_LAYOUT_SAMPLES: Final = """
    0.1 0.2 0.3 0.3333333333333333 0.6666666666666666 0.5 1.5 4.5 12.25 0.8134 -0.12 3.14159
    0.00001 0.00001234 0.000123 0.001 0.0123456789 15000.5 123456789.123 333333333.3333333
    333333333.33333325 333333333.33333343 1424953923781206.2 9007199254740.993
    4503599627370495.5 1797693134862315.7 -0.00005 0.9999999999999999 1.0000000000000002
    9.999999999999999e-6 1e-6 5e-324 1.0 -7.0 123.0 999999999999999.9 1e15 9007199254740991.0
    9007199254740992.0 9007199254740994.0 9999999999999998.0 1e16 -1e16 9.223372036854776e18
    1.8446744073709552e19 1e20 1e21 1.5e300 1.7976931348623157e308
"""


def _orjson_layout_is_known() -> bool:
    """Check, once, the facts about orjson's float output that the fast paths rely on.

    orjson writes the shortest round-trip digits: positionally with a ".0" suffix for integral
    values when 1e-5 <= |x| < 1e16, otherwise with an exponent marked "e+" or "e-". For the
    non-integral values in that range this is ECMAScript's layout, so `canonicalize` passes
    them through; and an integral double of 2^53 or more shows up either with "e+" or as 16
    digits and ".0", which `parse_json` looks for. This is observed behaviour, not a documented
    contract, so if a future orjson differs both fast paths are switched off.
    """
    for literal in _ORJSON_LAYOUT_SAMPLES.split():
        number = float(literal)
        written = orjson.dumps(number)
        if not 1e-5 <= abs(number) < 1e16:
            if (b"e+" if abs(number) >= 1e16 else b"e-") not in written:
                return False
        elif number.is_integer():
            if written != _format_double(number).encode("ascii") + b".0":
                return False
        elif written != _format_double(number).encode("ascii"):
            return False
    return True


_ORJSON_LAYOUT_KNOWN: Final = _orjson_layout_is_known()
# Non-integral doubles in this range are written by orjson exactly as RFC 8785 writes them.
_TRUSTED_LOW, _TRUSTED_HIGH = (1e-5, 1e16) if _ORJSON_LAYOUT_KNOWN else (math.inf, math.inf)


class _NotPlainJSON(Exception):
    """Raised inside the fast path for a value it leaves to the exact path."""


def _canonical_number(number: float) -> Any:
    """What orjson must be given in place of `number` to write its RFC 8785 form."""
    if not math.isfinite(number):
        raise _NotPlainJSON  # orjson would write NaN and the infinities as null
    if _TRUSTED_LOW <= abs(number) < _TRUSTED_HIGH and not number.is_integer():
        return number
    if number.is_integer() and abs(number) <= MAX_SAFE_INTEGER:
        return int(number)  # also turns -0.0 into 0
    return orjson.Fragment(_format_double(number).encode("ascii"))


# ---------------------------------------------------------------------------------------------
# canonicalize
# ---------------------------------------------------------------------------------------------


def _with_canonical_numbers(container: Any) -> Any:
    """`container` (a dict, list or tuple orjson has serialised, so finite and acyclic) with
    every double replaced by what makes orjson write its RFC 8785 form.

    Containers are copied only where something changed, so the usual event, whose doubles
    orjson already writes canonically, comes back as the very same object.
    """
    is_dict = type(container) is dict
    changed: Any = None
    for key, item in container.items() if is_dict else enumerate(container):
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if _TRUSTED_LOW <= abs(item) < _TRUSTED_HIGH and not item.is_integer():
                continue
            replacement = _canonical_number(item)
        elif kind is dict or kind is list or kind is tuple:
            replacement = _with_canonical_numbers(item)
            if replacement is item:
                continue
        else:
            # Enums, UUIDs, Fragments...: orjson would serialise them, RFC 8785 has no such
            # types; the exact path rejects or converts them as the `rfc8785` package does.
            raise _NotPlainJSON
        if changed is None:
            changed = dict(container) if is_dict else list(container)
        changed[key] = replacement
    return container if changed is None else changed


def _may_misorder_keys(encoded: bytes) -> bool:
    """Whether orjson's key order might differ from RFC 8785's.

    RFC 8785 §3.2.3 sorts member names by UTF-16 code units, orjson by code points. The orders
    differ only between characters U+E000..U+FFFF and supplementary-plane characters (whose
    UTF-16 surrogates sort below U+E000), i.e. UTF-8 lead bytes 0xEE/0xEF versus 0xF0..0xF4.
    Any such pair anywhere in the output sends the value to the exact path.
    """
    if b"\xee" not in encoded and b"\xef" not in encoded:
        return False
    return any(lead in encoded for lead in (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4"))


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value.

    JSON values are None, bool, int (within ±(2^53 − 1)), finite float, str, list or tuple, and
    dict with str keys (and subclasses of these, as the `rfc8785` package allows).
    """
    try:
        encoded = orjson.dumps(value, option=_ORJSON_DUMPS_OPTIONS)
        root = (value,)  # so that a scalar root is handled like any member
        canonical_root = _with_canonical_numbers(root)
    except (TypeError, _NotPlainJSON):  # orjson.JSONEncodeError is a TypeError
        return _canonicalize_exactly(value)
    if _may_misorder_keys(encoded):
        return _canonicalize_exactly(value)
    if canonical_root is root:
        return encoded
    return orjson.dumps(canonical_root[0], option=_ORJSON_DUMPS_OPTIONS)


def _canonicalize_exactly(value: Any) -> bytes:
    parts: list[str] = []
    try:
        _write_exactly(value, "", parts)
    except RecursionError:
        raise CanonicalJSONError("value is nested too deeply, or contains itself") from None
    return "".join(parts).encode("utf-8")


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901 §3


def _write_string(text: str, pointer: str, parts: list[str]) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise CanonicalJSONError("string contains a lone surrogate", pointer=pointer)
    parts.append('"')
    parts.append(text.translate(_STRING_ESCAPES))
    parts.append('"')


def _write_exactly(value: Any, pointer: str, parts: list[str]) -> None:
    """The RFC 8785 §3.2 serialisation, accepting the types the `rfc8785` package accepts."""
    if value is None:
        parts.append("null")
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, int):
        number = int(value)
        if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            raise CanonicalJSONError(
                f"integer {number} is outside the I-JSON safe range ±(2^53 - 1)", pointer=pointer
            )
        parts.append(str(number))
    elif isinstance(value, str):
        _write_string(value, pointer, parts)
    elif isinstance(value, float):
        try:
            parts.append(_format_double(float(value)))
        except CanonicalJSONError as error:
            raise CanonicalJSONError(error.message, pointer=pointer) from None
    elif isinstance(value, (list, tuple)):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write_exactly(item, f"{pointer}/{index}", parts)
        parts.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalJSONError(f"object key {key!r} is not a string", pointer=pointer)
            if not key.isascii() and _SURROGATE.search(key):
                raise CanonicalJSONError(
                    f"object key {key!a} contains a lone surrogate", pointer=pointer
                )
        parts.append("{")
        # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
        members = sorted(value.items(), key=lambda member: member[0].encode("utf-16-be"))
        for index, (key, item) in enumerate(members):
            if index:
                parts.append(",")
            _write_string(key, pointer, parts)
            parts.append(":")
            _write_exactly(item, f"{pointer}/{_pointer_token(key)}", parts)
        parts.append("}")
    else:
        raise CanonicalJSONError(f"{type(value).__name__} is not a JSON type", pointer=pointer)


# ---------------------------------------------------------------------------------------------
# parse_json
# ---------------------------------------------------------------------------------------------


def parse_json(data: bytes | str, *, max_depth: int = 64) -> Any:
    """Parse I-JSON text into Python values, rejecting what the module docstring lists.

    Objects become dicts, arrays lists, integer literals ints and other numbers floats. The root
    scalar has depth 0, and each enclosing array or object adds one.
    """
    if not _ORJSON_LAYOUT_KNOWN:  # pragma: no cover
        return _parse_exactly(data, max_depth)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _parse_exactly(data, max_depth)  # raises, saying where
    if _passes_fast_checks(data, value, max_depth):
        return value
    return _parse_exactly(data, max_depth)


def _passes_fast_checks(data: bytes | str, value: Any, max_depth: int) -> bool:
    """Prove cheaply that orjson's reading of `data` is one `parse_json` accepts.

    orjson already rejects invalid UTF-8, NaN/Infinity, overflowing numbers and lone surrogates.
    It does not limit integers to the safe range, reads integer literals beyond 64 bits as
    doubles, limits nesting only at 1024, and keeps the last of duplicate member names. Each of
    these is ruled out below from orjson's re-encoding of the value, without walking it in
    Python; when one cannot be ruled out the exact path decides.
    """
    try:
        reencoded = orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        return False  # an integer outside ±(2^53 - 1)
    text = data.encode("utf-8") if isinstance(data, str) else data
    # Duplicates: outside strings, JSON text has exactly one colon per object member, and
    # orjson escapes no colon inside strings. So unless the input escapes a colon (\u003a), it
    # has as many colons as orjson's re-encoding exactly when no member was dropped.
    escapes_a_colon = b"\\" in text and b"\\u003" in text
    if escapes_a_colon or text.count(b":") != reencoded.count(b":"):
        return False
    # Integral doubles of magnitude 2^53 and more, integer literals beyond 64 bits among them,
    # are written by orjson with an exponent "e+" or as 16 digits and ".0" (checked at import).
    if b"e+" in reencoded:
        return False
    masked = reencoded.translate(_DIGITS_AS_ZERO_AND_BRACES_AS_BRACKETS)
    if _SIXTEEN_DIGITS_AND_A_POINT in masked:
        return False
    # Nesting can be no deeper than the number of opening brackets; walk only when it could be.
    return masked.count(b"[") <= max_depth or not _nested_deeper_than(value, max_depth)


def _nested_deeper_than(value: Any, max_depth: int) -> bool:
    """Whether a parsed value nests more than `max_depth` arrays and objects deep.

    A subtree is no deeper than the opening brackets in its encoding, which orjson counts fast;
    only subtrees where that bound is too high are entered. A batch of events thus costs one
    re-encoding per event, not a walk over every member.
    """
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, max_depth)]
    while stack:
        container, allowed = stack.pop()
        if allowed < 1:
            return True
        for child in container.values() if type(container) is dict else container:
            if type(child) is dict or type(child) is list:
                encoded = orjson.dumps(child)
                if encoded.count(b"[") + encoded.count(b"{") > allowed - 1:
                    stack.append((child, allowed - 1))
    return False


class _Rejected:
    """Stands in for a value the JSON decoder hooks refuse, until the walk can say where it is."""

    __slots__ = ("member", "reason")

    def __init__(self, reason: str, member: str | None = None) -> None:
        self.reason = reason
        self.member = member


def _object_from_members(members: list[tuple[str, Any]]) -> Any:
    obj = dict(members)
    if len(obj) == len(members):
        return obj
    seen: set[str] = set()
    for key, _ in members:
        if key in seen:
            return _Rejected(f"duplicate object key {key!a} (RFC 7493 §2.3)", member=key)
        seen.add(key)
    raise AssertionError("unreachable: a shorter dict implies a repeated key")


def _reject_constant(name: str) -> _Rejected:
    return _Rejected(f"{name} is not a JSON number (RFC 8259 §6)")


def _checked_integer(literal: str) -> int | _Rejected:
    # 2^53 - 1 has 16 digits; longer literals (JSON forbids leading zeros) are out of range, and
    # are not converted at all, since int() of a huge literal is slow or refused.
    if len(literal.lstrip("-")) <= 16:
        number = int(literal)
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return number
    shown = literal if len(literal) <= 40 else f"{literal[:20]}...({len(literal)} digits)"
    return _Rejected(f"integer {shown} is outside the I-JSON safe range ±(2^53 - 1)")


def _checked_float(literal: str) -> float | _Rejected:
    number = float(literal)
    if not math.isfinite(number):
        return _Rejected(f"number {literal[:40]} overflows a double")
    if number.is_integer() and MAX_SAFE_INTEGER < abs(number) < 1e21:
        # RFC 8785 §3.2.2.3 writes this double as an integer literal beyond the safe range.
        return _Rejected(
            f"number {literal[:40]} is an integer outside the I-JSON safe range ±(2^53 - 1)"
        )
    return number


def _parse_exactly(data: bytes | str, max_depth: int) -> Any:
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise CanonicalJSONError(f"invalid UTF-8 at byte {error.start}") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_from_members,
            parse_constant=_reject_constant,
            parse_int=_checked_integer,
            parse_float=_checked_float,
        )
    except json.JSONDecodeError as error:
        raise CanonicalJSONError(
            f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise CanonicalJSONError(f"nesting deeper than {max_depth}") from None
    _check_parsed(value, max_depth)
    return value


def _check_parsed(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, pointer, depth = stack.pop()
        if isinstance(item, _Rejected):
            if item.member is not None:
                pointer = f"{pointer}/{_pointer_token(item.member)}"
            raise CanonicalJSONError(item.reason, pointer=pointer)
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise CanonicalJSONError("string contains a lone surrogate", pointer=pointer)
        elif isinstance(item, (dict, list)):
            if depth + 1 > max_depth:
                raise CanonicalJSONError(f"nesting deeper than {max_depth}", pointer=pointer)
            children: list[tuple[Any, str, int]] = []
            if isinstance(item, dict):
                for key, member in item.items():
                    if not key.isascii() and _SURROGATE.search(key):
                        raise CanonicalJSONError(
                            f"object key {key!a} contains a lone surrogate", pointer=pointer
                        )
                    children.append((member, f"{pointer}/{_pointer_token(key)}", depth + 1))
            else:
                children = [
                    (member, f"{pointer}/{index}", depth + 1) for index, member in enumerate(item)
                ]
            stack.extend(reversed(children))  # so that the first problem in the text is reported
