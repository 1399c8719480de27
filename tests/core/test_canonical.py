"""RFC 8785 canonicalisation and strict I-JSON parsing, against the RFC's vectors and `rfc8785`."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import hashlib
import itertools
import json
import math
import os
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.canonical import (
    MAX_SAFE_INTEGER,
    _format_double,
    _parse_exactly,
    canonicalize,
    parse_json,
)
from ledger.errors import CanonicalJSONError

from tests.core.conformance_vectors import load_vectors

JCS = load_vectors("jcs_vectors.json")
JSON_CASES = [case for case in JCS["cases"] if case["kind"] == "json"]
NUMBER_CASES = [case for case in JCS["cases"] if case["kind"] == "number"]


def double_from_hex(bits_hex: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits_hex))[0]
    return value


# --- RFC 8785 vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("case", JSON_CASES, ids=[case["name"] for case in JSON_CASES])
def test_reference_documents_canonicalize_to_the_published_bytes(case: dict[str, Any]) -> None:
    canonical = canonicalize(parse_json(case["input"]))
    assert canonical == case["expected"].encode("utf-8")
    assert canonical.hex() == case["expected_hex"]


@pytest.mark.parametrize("case", NUMBER_CASES, ids=[case["name"] for case in NUMBER_CASES])
def test_number_serialisation_samples(case: dict[str, Any]) -> None:
    number = double_from_hex(case["input_ieee754_hex"])
    if case["expect_error"]:
        with pytest.raises(CanonicalJSONError):
            canonicalize(number)
        with pytest.raises(CanonicalJSONError, match="not a JSON number") as raised:
            canonicalize({"n": [number]})
        assert raised.value.pointer == "/n/0"
        return
    assert canonicalize(number) == case["expected"].encode("ascii")
    assert canonicalize([number]) == b"[" + case["expected"].encode("ascii") + b"]"


def es6_corpus_patterns() -> Iterator[int]:
    """The IEEE 754 bit patterns of the ES6 number corpus, in order (see the vector file)."""
    corpus = JCS["es6_numgen"]
    yield from (int(bits_hex, 16) for bits_hex in corpus["static_u64_hex"])
    base = int(corpus["serial_base_hex"], 16)
    yield from range(base, base + corpus["serial_count"])
    block = bytes(32)
    while True:
        for (bits,) in struct.iter_unpack("<Q", block):
            number = struct.unpack("<d", struct.pack("<Q", bits))[0]
            if number != 0 and math.isfinite(number):
                yield bits
        block = hashlib.sha256(block).digest()


def es6_corpus_digest(line_count: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for bits in itertools.islice(es6_corpus_patterns(), line_count):
        number = struct.unpack("<d", struct.pack("<Q", bits))[0]
        # Through a list, so that the orjson fast path is what gets checked.
        serialised = canonicalize([number])[1:-1].decode("ascii")
        line = f"{bits:x},{serialised}\n".encode("ascii")
        digest.update(line)
        size += len(line)
    return size, digest.hexdigest()


def es6_checksum(line_count: int) -> dict[str, Any]:
    checksums: list[dict[str, Any]] = JCS["es6_numgen"]["checksums"]
    return next(checksum for checksum in checksums if checksum["lines"] == line_count)


@pytest.mark.parametrize("line_count", [1_000, 10_000])
def test_es6_number_corpus_prefix_matches_published_checksum(line_count: int) -> None:
    checksum = es6_checksum(line_count)
    assert es6_corpus_digest(line_count) == (checksum["bytes"], checksum["sha256"])


@pytest.mark.slow
def test_es6_number_corpus_long_run() -> None:
    """10^6 lines by default; LEDGER_ES6_LINES=10000000 (or 100000000) for the longer runs."""
    line_count = int(os.environ.get("LEDGER_ES6_LINES", "1000000"))
    checksum = es6_checksum(line_count)
    assert es6_corpus_digest(line_count) == (checksum["bytes"], checksum["sha256"])


# --- byte identity with the rfc8785 package -------------------------------------------------

# Characters where canonical forms tend to differ: controls, quotes and backslashes, DEL,
# U+2028/U+2029, U+E000..U+FFFF (which RFC 8785 sorts above surrogate pairs), astral-plane
# characters, and occasionally a lone surrogate.
tricky_characters = st.one_of(
    st.characters(max_codepoint=0x7F),
    st.sampled_from(["\u2028", "\u2029", "\u00e9", "\u20ac", "\ufb33", "\ufffd", "\uffff"]),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF, categories=["Co", "Cn", "So", "Lo"]),
    st.characters(min_codepoint=0x10000),
)
text_values = st.text(tricky_characters, max_size=8)
text_with_lone_surrogates = st.one_of(
    text_values,
    st.tuples(text_values, st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])).map("".join),
)
integers = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.integers(min_value=MAX_SAFE_INTEGER - 3, max_value=MAX_SAFE_INTEGER + 3),
    st.integers(min_value=-MAX_SAFE_INTEGER - 3, max_value=-MAX_SAFE_INTEGER + 3),
)
doubles = st.one_of(
    st.floats(),  # all of them, NaN, infinities, -0.0 and subnormals included
    st.floats(min_value=1e-8, max_value=1e23),
    st.floats(min_value=-1e-4, max_value=1e-4),
    st.sampled_from([1e21, 1e-7, 1e-6, 1e16, 2.0**53, 5e-324, -0.0, 1.7976931348623157e308]),
    st.integers(min_value=-(2**60), max_value=2**60).map(float),
)


def is_unsafe_integral(number: float) -> bool:
    """Doubles whose RFC 8785 form is an integer literal outside ±(2^53 − 1)."""
    return number.is_integer() and MAX_SAFE_INTEGER < abs(number) < 1e21


def json_values(keys: st.SearchStrategy[str], scalars: st.SearchStrategy[Any]) -> Any:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys, children, max_size=6),
        ),
        max_leaves=25,
    )


valid_values = json_values(
    text_values,
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
        doubles.filter(lambda number: math.isfinite(number) and not is_unsafe_integral(number)),
        text_values,
    ),
)
any_values = json_values(
    text_with_lone_surrogates,
    st.one_of(st.none(), st.booleans(), integers, doubles, text_with_lone_surrogates),
)


def assert_same_as_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises(CanonicalJSONError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_values)
def test_matches_rfc8785_on_random_values(value: Any) -> None:
    assert_same_as_rfc8785(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(text_values, st.integers(0, 9), min_size=2, max_size=8))
def test_member_order_is_by_utf16_code_units(members: dict[str, int]) -> None:
    assert_same_as_rfc8785(members)
    assert_same_as_rfc8785({"outer": [members]})


@settings(max_examples=200, deadline=None)
@given(valid_values)
def test_canonical_form_is_a_fixed_point_of_parse_and_canonicalize(value: Any) -> None:
    canonical = canonicalize(value)
    assert canonicalize(parse_json(canonical)) == canonical


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-5, max_value=1e16, exclude_max=True))
def test_orjson_layout_of_trusted_doubles_matches_ecmascript(magnitude: float) -> None:
    """The fast path hands non-integral doubles in [1e-5, 1e16) to orjson unchanged."""
    for number in (magnitude, -magnitude):
        assert canonicalize([number]) == b"[" + _format_double(number).encode() + b"]"
        assert canonicalize([number]) == rfc8785.dumps([number])


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        # U+E000..U+FFFF sort after the UTF-16 surrogates of astral characters (RFC 8785 §3.2.3)
        ({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}'),
        ({"\uffff": 1, "\U00010000": 2, "a": 3}, '{"a":3,"\U00010000":2,"\uffff":1}'),
        ({"x\ufb33": 1, "x\U0001d11e": 2}, '{"x\U0001d11e":2,"x\ufb33":1}'),
    ],
)
def test_keys_above_the_surrogate_range_sort_after_astral_keys(
    members: dict[str, int], expected: str
) -> None:
    assert canonicalize(members) == expected.encode("utf-8") == rfc8785.dumps(members)


class Colour(enum.Enum):
    RED = 1


class Size(enum.IntEnum):
    LARGE = 3


class Label(str):
    pass


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        (1, "two", 3.5),
        [Size.LARGE, Label("label")],
        {Label("key"): 1.0, "other": [True, None]},
        collections.OrderedDict([("b", 1), ("a", 2)]),
        {"nested": ({"deep": [1e-7, 1e21, 100.0]},)},
    ],
)
def test_subclasses_and_tuples_are_accepted_as_rfc8785_accepts_them(value: Any) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ({"a": [1, float("nan")]}, "/a/1"),
        ({"a": {"b": float("-inf")}}, "/a/b"),
        ([2**53], "/0"),
        ({"x/y": -(2**53)}, "/x~1y"),
        ({"m~n": 2**64}, "/m~0n"),
        ({"s": "ok\ud800"}, "/s"),
        ({"a": {"\udc00": 1}}, "/a"),
        ({"a": {1: "x"}}, "/a"),
        ({"a": {None: "x"}}, "/a"),
        ([Colour.RED], "/0"),
        ([uuid.UUID(int=7)], "/0"),
        ([b"bytes"], "/0"),
        ([{1, 2}], "/0"),
        ([datetime.date(2024, 1, 1)], "/0"),
        ([Point(1)], "/0"),
        ([orjson.Fragment(b"1")], "/0"),
    ],
)
def test_values_rfc8785_rejects_are_rejected_with_their_pointer(value: Any, pointer: str) -> None:
    with pytest.raises((rfc8785.CanonicalizationError, UnicodeEncodeError)):
        rfc8785.dumps(value)
    with pytest.raises(CanonicalJSONError) as raised:
        canonicalize(value)
    assert raised.value.pointer == pointer
    assert isinstance(raised.value, ValueError)


def test_cyclic_values_are_rejected() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(CanonicalJSONError, match="contains itself"):
        canonicalize(cyclic)


def test_integral_doubles_lose_their_fraction_and_minus_zero_its_sign() -> None:
    assert canonicalize({"a": 100.0, "b": -0.0, "c": [2.0**53, 1e16]}) == (
        b'{"a":100,"b":0,"c":[9007199254740992,10000000000000000]}'
    )


# --- parse_json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pointer", "message"),
    [
        ('{"a": 1, "a": 2}', "/a", "duplicate"),
        ('{"x": [{"k": 1, "j": {}, "k": 2}]}', "/x/0/k", "duplicate"),
        ('{"a\\u003a": 1, "a:": 2}', "/a:", "duplicate"),  # equal only after unescaping
        ('{"\\u00e9": 1, "é": 2}', "/é", "duplicate"),
        ("[1, NaN]", "/1", "NaN"),
        ('{"v": Infinity}', "/v", "Infinity"),
        ('{"v": -Infinity}', "/v", "Infinity"),
        ("[1e400]", "/0", "overflows"),
        ("[-1e400]", "/0", "overflows"),
        ('{"s": "\\ud800"}', "/s", "lone surrogate"),
        ('{"s": ["x\\udc00y"]}', "/s/0", "lone surrogate"),
        ('{"s": "\\ud800\\u0041"}', "/s", "lone surrogate"),
        ('{"\\udfff": 1}', "", "lone surrogate"),
        ("[9007199254740992]", "/0", "safe range"),
        ("[-9007199254740992]", "/0", "safe range"),
        ('{"n": 18446744073709551616}', "/n", "safe range"),
        ('{"n": -9223372036854775809}', "/n", "safe range"),
        ('{"n": 1' + "0" * 400 + "}", "/n", "safe range"),
        # doubles that RFC 8785 would write as integer literals beyond the safe range
        ('{"n": 1e20}', "/n", "safe range"),
        ('{"n": [1e16]}', "/n/0", "safe range"),
        ('{"n": -9007199254740992.0}', "/n", "safe range"),
        ('{"n": 9.999999999999999e20}', "/n", "safe range"),
        ('{"a": 1,}', "", "invalid JSON"),
        ("[1] [2]", "", "invalid JSON"),
        ("", "", "invalid JSON"),
        ("{'a': 1}", "", "invalid JSON"),
        ('"\u0001"', "", "invalid JSON"),
        ("\ufeff[1]", "", "invalid JSON"),
    ],
)
def test_parse_rejects_what_i_json_forbids(text: str, pointer: str, message: str) -> None:
    for data in (text, text.encode("utf-8")):
        with pytest.raises(CanonicalJSONError, match=message) as raised:
            parse_json(data)
        assert raised.value.pointer == pointer


@pytest.mark.parametrize(
    "data",
    [b'["\xff"]', b'{"a": "\xed\xa0\x80"}', b'"\xc3"', b'["\xc0\xaf"]'],
)
def test_parse_rejects_invalid_utf8_and_raw_surrogates(data: bytes) -> None:
    with pytest.raises(CanonicalJSONError, match="UTF-8"):
        parse_json(data)


def test_parse_rejects_raw_lone_surrogates_in_text() -> None:
    with pytest.raises(CanonicalJSONError, match="lone surrogate") as raised:
        parse_json('{"k": ["\ud800"]}')
    assert raised.value.pointer == "/k/0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1.5e300, -1.5e-300]", [1.5e300, -1.5e-300]),
        ("-0", 0),
        ("-0.0", -0.0),
        ("[9007199254740991, -9007199254740991]", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
        ("[1e21, -1e300, 9007199254740991.0]", [1e21, -1e300, float(MAX_SAFE_INTEGER)]),
        ('{"t": "12:30", "u": "https://example.com:8443/x"}', None),
        ('{"a": {"a": {"a": 1}}}', {"a": {"a": {"a": 1}}}),
        ('{"id": "1234567890123456789012"}', {"id": "1234567890123456789012"}),
        ('{"\\u00e9": "caf\\u00e9", "x": "\\ud83d\\ude00"}', {"é": "café", "x": "\U0001f600"}),
        ('  {"noncharacter": "\\uffff\\ufdd0"} ', {"noncharacter": "\uffff\ufdd0"}),
    ],
)
def test_parse_accepts_i_json(text: str, expected: Any) -> None:
    expected = json.loads(text) if expected is None else expected
    for data in (text, text.encode("utf-8")):
        parsed = parse_json(data)
        assert parsed == expected
        assert math.copysign(1, parsed) == math.copysign(1, expected) if parsed == 0 else True


def test_nesting_limit() -> None:
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    assert parse_json(nested(64)) is not None
    with pytest.raises(CanonicalJSONError, match="nesting deeper than 64") as raised:
        parse_json(nested(65))
    assert raised.value.pointer == "/0" * 64
    assert parse_json('{"a": [[1]]}', max_depth=3) == {"a": [[1]]}
    with pytest.raises(CanonicalJSONError, match="nesting deeper than 2"):
        parse_json('{"a": [[1]]}', max_depth=2)
    assert parse_json("7", max_depth=0) == 7
    assert parse_json('"[{[{"', max_depth=0) == "[{[{"  # brackets in strings do not nest
    assert parse_json('{"a": "[[[[", "b": ["{{{{"]}', max_depth=2)["a"] == "[[[["
    wide = "[" + ",".join(["[[1]]"] * 100) + "]"  # many brackets, little depth
    assert len(parse_json(wide, max_depth=3)) == 100
    with pytest.raises(CanonicalJSONError, match="nesting"):
        parse_json(nested(5000), max_depth=10_000)


def random_json_text() -> st.SearchStrategy[str]:
    """JSON texts, some with duplicate members, escaped colons or unsafe integers spliced in."""
    members = st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "a:", "t", "\\u003a", "a\\u003a", "\\u0061"]),
            st.one_of(
                st.sampled_from(
                    [
                        '"x:y"',
                        '"\\u003a"',
                        "1",
                        "9007199254740992",
                        "-9223372036854775809",
                        "18446744073709551616",
                        "1.5",
                        "[]",
                        '{"k": 1, "k": 2}',
                        '"1234567890123456789012"',
                        "1e20",
                        "9007199254740992.0",
                        "1234567890123456.5",
                        "1e21",
                        '"e+1"',
                    ]
                ),
                st.integers(-(2**65), 2**65).map(str),
            ),
        ),
        max_size=6,
    )

    def render(pairs: list[tuple[str, str]]) -> str:
        return "{" + ", ".join(f'"{key}": {value}' for key, value in pairs) + "}"

    objects = members.map(render)
    return st.one_of(
        objects, st.lists(objects, max_size=3).map(lambda items: f"[{','.join(items)}]")
    )


@settings(max_examples=300, deadline=None)
@given(random_json_text())
def test_fast_path_agrees_with_the_exact_parser(text: str) -> None:
    def outcome(parse: Any) -> Any:
        try:
            return ("ok", parse())
        except CanonicalJSONError as error:
            return ("error", error.pointer, error.message)

    exact = outcome(lambda: _parse_exactly(text, 64))
    assert outcome(lambda: parse_json(text)) == exact
    assert outcome(lambda: parse_json(text.encode("utf-8"))) == exact


@settings(max_examples=150, deadline=None)
@given(valid_values, st.integers(min_value=0, max_value=6))
def test_fast_path_agrees_with_the_exact_parser_on_nesting(value: Any, max_depth: int) -> None:
    text = json.dumps(value, ensure_ascii=False)

    def outcome(parse: Any) -> Any:
        try:
            return ("ok", canonicalize(parse()))
        except CanonicalJSONError as error:
            return ("error", error.pointer, error.message)

    assert outcome(lambda: parse_json(text, max_depth=max_depth)) == outcome(
        lambda: _parse_exactly(text, max_depth)
    )
