"""The one serializer that makes the bytes vidproof hashes and signs.

Canonical JSON in the manner of RFC 8785 (JCS), on the subset vidproof uses:
objects with ASCII keys, strings, signed 64-bit integers, booleans, null and
arrays. Floats are refused, so no number formatting rules are needed; integers
are written in plain decimal. This departs from RFC 8785 in one documented
point: integers beyond 2**53 (nanosecond UTC times) are written exactly, where
JCS would go through an IEEE double. Output: keys sorted, no whitespace, UTF-8, the JSON escapes of
RFC 8785 section 3.2.2.2 (Python's ``json`` with ``ensure_ascii=False`` emits
exactly those).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MAX_INT = 2**63 - 1
MIN_INT = -MAX_INT - 1
MAX_DEPTH = 16


class CanonicalError(ValueError):
    """A value cannot be encoded canonically."""


def _check(value: Any, depth: int = 0) -> bool:
    """Refuse what cannot be encoded; True when every object's keys are already in order."""
    if depth > MAX_DEPTH:
        raise CanonicalError("nesting too deep")
    kind = type(value)
    # Fast path for the exact built-in types evidence is made of: scalar members are
    # checked in the loop, without a call each. Anything else takes the general path.
    if depth < MAX_DEPTH and (kind is dict or kind is list):
        ordered = True
        if kind is dict:
            previous = ""
            for key in value:
                if type(key) is not str or not key.isascii():
                    _check_key(key)
                if key < previous:
                    ordered = False
                previous = key
            items = value.values()
        else:
            items = value
        for item in items:
            t = type(item)
            if t is str or t is bool or item is None:
                continue
            if t is int and MIN_INT <= item <= MAX_INT:
                continue
            if not _check(item, depth + 1):
                ordered = False
        return ordered
    _check_general(value, depth)
    return not isinstance(value, dict | list | tuple)  # containers here: sort to be safe


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key.isascii():
        raise CanonicalError(f"object key {key!r} is not an ASCII string")


def _check_general(value: Any, depth: int) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise CanonicalError(f"integer {value} outside the signed 64-bit range")
        return
    if isinstance(value, float):
        raise CanonicalError("floats are not allowed in signed data")
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_key(key)
            _check(item, depth + 1)
        return
    raise CanonicalError(f"type {type(value).__name__} cannot be encoded")


# The encoders, made once (``json.dumps`` with these options builds one per call). When
# every object's keys already come in order, as in the entries vidproof writes and in
# canonical lines read back, sorting them again changes nothing: it is skipped.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_ENCODER_IN_ORDER = json.JSONEncoder(
    sort_keys=False, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


# The hot path: frame entries, one per video frame, encoded by the recorder and again by
# the verifier (which checks that each line is its canonical encoding). An object with
# exactly the members of a frame entry (docs/FORMAT.md), in canonical order, each of the
# type the format gives it, is written through a template: the same bytes as the general
# encoder (tests/unit/test_hot_paths.py), several times faster. Anything else, including
# a frame entry with a value of another type, takes the general path, which encodes it
# or refuses it as before.
_FRAME_KEYS = ("cam_utc_ns", "camera", "ctx", "digest", "dts", "key", "params", "prev",
               "pts", "seq", "tb", "type", "utc_ns", "v")
_FRAME_KEYS_FP = (*_FRAME_KEYS[:5], "fp", *_FRAME_KEYS[5:])  # transcode mode: "fp"
_FRAME = ('{"cam_utc_ns":%s,"camera":"%s","ctx":"%s","digest":"%s","dts":%s,%s"key":%s,'
          '"params":"%s","prev":"%s","pts":%s,"seq":%s,"tb":[%s,%s],"type":"%s",'
          '"utc_ns":%s,"v":"%s"}')
_LITERALS = {True: "true", False: "false"}


def _frame_bytes(value: dict[str, Any]) -> bytes | None:
    """``value`` encoded by the frame template, or None when it is not a plain frame entry."""
    keys = tuple(value)
    strings: tuple[Any, ...]
    if keys == _FRAME_KEYS:
        (cam, camera, ctx, digest, dts, key, params, prev, pts, seq, tb, kind, utc,
         v) = value.values()
        strings = (camera, ctx, digest, params, prev, kind, v)
        fp_member = ""
    elif keys == _FRAME_KEYS_FP:
        (cam, camera, ctx, digest, dts, fp, key, params, prev, pts, seq, tb, kind, utc,
         v) = value.values()
        strings = (camera, ctx, digest, params, prev, kind, v, fp)
        fp_member = f'"fp":"{fp}",'
    else:
        return None
    # Strings are written as they are: each must need no escape (ASCII, printable, no
    # quote, no backslash). Integers are ints (not bool) in the signed 64-bit range.
    for text in strings:
        if type(text) is not str:
            return None
    text = "".join(strings)
    if not text.isascii() or not text.isprintable() or '"' in text or "\\" in text:
        return None
    if type(key) is not bool or type(tb) is not list or len(tb) != 2:
        return None
    num, den = tb
    for n in (seq, utc, num, den):
        if type(n) is not int or not MIN_INT <= n <= MAX_INT:
            return None
    for n in (cam, dts, pts):
        if n is not None and (type(n) is not int or not MIN_INT <= n <= MAX_INT):
            return None
    return (_FRAME % (
        "null" if cam is None else cam, camera, ctx, digest, "null" if dts is None else dts,
        fp_member, _LITERALS[key], params, prev, "null" if pts is None else pts, seq, num,
        den, kind, utc, v)).encode("ascii")


# The verifier's side of the hot path: a line that has exactly the shape of a canonical
# frame entry (members in order, no whitespace, integers without leading zeros, strings
# that need no escape) is parsed by one regular expression instead of by json.loads and
# then encoded again to check its form. Any other line takes the general path.
_INT = rb"(0|-?[1-9][0-9]*)"
_INT_OR_NULL = rb"(null|0|-?[1-9][0-9]*)"
_HEX = rb'"([0-9a-f]{64})"'
_FRAME_LINE_PATTERN = (
    rb'\{"cam_utc_ns":' + _INT_OR_NULL + rb',"camera":"([A-Za-z0-9._-]+)","ctx":' + _HEX
    + rb',"digest":' + _HEX + rb',"dts":' + _INT_OR_NULL
    + rb',(?:"fp":"([A-Za-z0-9+/=]*)",)?"key":(true|false),"params":' + _HEX + rb',"prev":'
    + _HEX + rb',"pts":' + _INT_OR_NULL + rb',"seq":' + _INT + rb',"tb":\[' + _INT + rb","
    + _INT + rb'\],"type":"(frame)","utc_ns":' + _INT + rb',"v":"([A-Za-z0-9/._-]+)"\}\n')
_frame_line: re.Pattern[bytes] | None = None  # compiled on first use: only verifiers use it


def parse_frame_line(line: bytes) -> dict[str, Any] | None:
    """The value of an evidence line that is a frame entry in canonical form (with its
    newline): what ``json.loads`` gives, for a line that ``canonical_bytes`` of that value
    (plus the newline) reproduces byte for byte. None for any other line."""
    global _frame_line
    if _frame_line is None:
        _frame_line = re.compile(_FRAME_LINE_PATTERN)
    m = _frame_line.fullmatch(line)
    if m is None:
        return None
    (cam_b, camera, ctx, digest, dts_b, fp, key, params, prev, pts_b, seq_b, num_b, den_b,
     kind, utc_b, v) = m.groups()
    cam = None if cam_b == b"null" else int(cam_b)
    dts = None if dts_b == b"null" else int(dts_b)
    pts = None if pts_b == b"null" else int(pts_b)
    seq, num, den, utc = int(seq_b), int(num_b), int(den_b), int(utc_b)
    lo, hi = MIN_INT, MAX_INT
    if not (lo <= seq <= hi and lo <= num <= hi and lo <= den <= hi and lo <= utc <= hi
            and (cam is None or lo <= cam <= hi) and (dts is None or lo <= dts <= hi)
            and (pts is None or lo <= pts <= hi)):
        return None  # the general path refuses it, and says why
    if fp is None:
        return {"cam_utc_ns": cam, "camera": camera.decode(), "ctx": ctx.decode(),
                "digest": digest.decode(), "dts": dts, "key": key == b"true",
                "params": params.decode(), "prev": prev.decode(), "pts": pts, "seq": seq,
                "tb": [num, den], "type": kind.decode(), "utc_ns": utc, "v": v.decode()}
    return {"cam_utc_ns": cam, "camera": camera.decode(), "ctx": ctx.decode(),
            "digest": digest.decode(), "dts": dts, "fp": fp.decode(), "key": key == b"true",
            "params": params.decode(), "prev": prev.decode(), "pts": pts, "seq": seq,
            "tb": [num, den], "type": kind.decode(), "utc_ns": utc, "v": v.decode()}


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes."""
    if type(value) is dict and 14 <= len(value) <= 15:
        frame = _frame_bytes(value)
        if frame is not None:
            return frame
    text = (_ENCODER_IN_ORDER if _check(value) else _ENCODER).encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalError("a string holds a lone surrogate, which UTF-8 cannot encode") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical encoding of ``value``."""
    return sha256_hex(canonical_bytes(value))
