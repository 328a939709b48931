"""Canonical JSON: the bytes that are hashed and signed (docs/FORMAT.md section 2)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidproof.canonical import MAX_DEPTH, CanonicalError, canonical_bytes, entry_hash

# Known RFC 8785 (JCS) input/output pairs on the subset vidproof encodes. Floats are
# outside that subset: where an example had one, its integer-valued number is given as
# an integer (JCS writes 56.0 as 56, which is what the expected output shows).
JCS_EXAMPLES = [
    # RFC 8785 section 3.2.4, without its "numbers" member (floats).
    ('{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
     ' "literals": [null, true, false]}',
     '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'),
    # cyberphone/json-canonicalization testdata: structures.json (56.0 -> 56).
    ('{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56},\n  "10": { },\n  "": "empty",\n'
     '  "a": { },\n  "111": [ { } ],\n  "A": { }\n}',
     '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}'),
    # ... arrays.json
    ('[\n  56,\n  {\n    "d": true,\n    "10": null,\n    "1": [ ]\n  }\n]',
     '[56,{"1":[],"10":null,"d":true}]'),
    # ... unicode.json: no Unicode normalization
    ('{\n  "Unnormalized Unicode":"\\u1e0d\\u0307"\n}\n',
     '{"Unnormalized Unicode":"\u1e0d\u0307"}'),
]


@pytest.mark.parametrize(("source", "expected"), JCS_EXAMPLES)
def test_matches_rfc8785_on_supported_subset(source: str, expected: str) -> None:
    assert canonical_bytes(json.loads(source)) == expected.encode("utf-8")


def test_rfc8785_string_example_bytes() -> None:
    # The string of RFC 8785 section 3.2.4: U+20AC as raw UTF-8, U+000F as \u000f.
    out = canonical_bytes("\u20ac$\u000f\nA'B\"\\\\\"/")
    assert out == b'"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'


def test_keys_sorted_at_every_level_and_no_whitespace() -> None:
    value = {"b": 1, "a": {"z": [3, {"y": None, "x": True}], "c": "s"}, "A": False}
    assert canonical_bytes(value) == (
        b'{"A":false,"a":{"c":"s","z":[3,{"x":true,"y":null}]},"b":1}')


def test_insertion_order_does_not_matter() -> None:
    assert canonical_bytes({"a": 1, "b": 2}) == canonical_bytes({"b": 2, "a": 1})


@pytest.mark.parametrize("value", [1.0, 0.5, float("nan"), float("inf"), {"a": [1, 2.5]},
                                   [{"deep": {"er": -0.0}}]])
def test_floats_refused(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


@pytest.mark.parametrize(("text", "encoded"), [
    ("\n\r\t\b\f", b'"\\n\\r\\t\\b\\f"'),
    ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),  # lowercase hex, 4 digits
    ('"\\', b'"\\"\\\\"'),
    ("/", b'"/"'),                                   # solidus not escaped
    ("\x7f", b'"\x7f"'),                             # DEL is not a control escape in JCS
    ("é€\U0001f600", "\"é€\U0001f600\"".encode()),  # raw UTF-8, never \\u escapes
    ("\u2028\u2029", '"\u2028\u2029"'.encode()),
])
def test_string_escapes(text: str, encoded: bytes) -> None:
    assert canonical_bytes(text) == encoded


def test_lone_surrogate_refused() -> None:
    # json.loads accepts "\ud800"; it has no UTF-8 encoding and must not crash the caller.
    with pytest.raises(CanonicalError):
        canonical_bytes(json.loads('{"a":"\\ud800"}'))


def test_signed_64_bit_range() -> None:
    assert canonical_bytes(2**63 - 1) == b"9223372036854775807"
    assert canonical_bytes(-(2**63)) == b"-9223372036854775808"
    for bad in (2**63, -(2**63) - 1, [2**64]):
        with pytest.raises(CanonicalError):
            canonical_bytes(bad)


def test_integers_beyond_2_53_written_exactly() -> None:
    # The documented departure from RFC 8785: no round trip through an IEEE double.
    ns = 1_704_067_200_000_000_001
    assert canonical_bytes({"utc_ns": ns}) == b'{"utc_ns":1704067200000000001}'
    assert canonical_bytes(2**53 + 1) == b"9007199254740993"


def test_booleans_are_not_integers() -> None:
    assert canonical_bytes([True, False, 1, 0]) == b"[true,false,1,0]"


@pytest.mark.parametrize("key", ["clé", 1, None, ("a",)])
def test_keys_must_be_ascii_strings(key: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes({key: 1})


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object()])
def test_other_types_refused(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


def test_nesting_limit() -> None:
    ok: object = 1
    for _ in range(MAX_DEPTH):
        ok = [ok]
    canonical_bytes(ok)
    with pytest.raises(CanonicalError):
        canonical_bytes([ok])


def test_entry_hash_is_sha256_of_canonical_bytes() -> None:
    import hashlib

    value = {"b": [1, "x"], "a": None}
    assert entry_hash(value) == hashlib.sha256(b'{"a":null,"b":[1,"x"]}').hexdigest()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), inner, max_size=4),
    max_leaves=20,
)  # st.text() draws no surrogates: every value here has a UTF-8 encoding


@given(json_values)
def test_round_trip_and_idempotence(value: object) -> None:
    data = canonical_bytes(value)
    parsed = json.loads(data.decode("utf-8"))
    assert parsed == value
    assert canonical_bytes(parsed) == data
    assert b"\n" not in data  # one line: newlines inside strings are escaped


@given(st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=6),
                       st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=8))
def test_reordering_keys_never_changes_bytes(d: dict[str, int]) -> None:
    reordered = dict(reversed(list(d.items())))
    assert canonical_bytes(reordered) == canonical_bytes(d)
