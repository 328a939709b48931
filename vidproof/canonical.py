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
from typing import Any

MAX_INT = 2**63 - 1
MAX_DEPTH = 16


class CanonicalError(ValueError):
    """A value cannot be encoded canonically."""


def _check(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise CanonicalError("nesting too deep")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -MAX_INT - 1 <= value <= MAX_INT:
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
            if not isinstance(key, str) or not key.isascii():
                raise CanonicalError(f"object key {key!r} is not an ASCII string")
            _check(item, depth + 1)
        return
    raise CanonicalError(f"type {type(value).__name__} cannot be encoded")


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes."""
    _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical encoding of ``value``."""
    return sha256_hex(canonical_bytes(value))
