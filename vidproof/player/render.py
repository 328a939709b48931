"""Render ``player.html``: the template with the exporter's player data embedded.

The data, format ``vidproof-player/1``, a JSON object:

- ``clip``: file name of the video beside ``player.html``; ``camera_id``; ``location``:
  ``{label, lat, lon}``; ``timezone``: ``{name, offset_minutes}`` (the camera's zone and
  its offset at the first frame; the page follows the zone's rules where the browser
  knows them and agrees on that offset, else keeps the offset); ``fps`` (measured);
- ``frames``: one ``{seq, t, utc_ns, key}`` per frame in presentation order, ``t`` the
  presentation time in seconds in the clip (strictly increasing), ``utc_ns`` the capture
  time as a decimal string (it exceeds what a JavaScript number holds);
- ``sha256``: expected SHA-256 (lowercase hex) of the bundle's other files, by name;
- ``case``, ``exported_utc``, ``officer``: shown as given.

It goes into a ``<script type="application/json">`` element. Every ``<``, ``>`` and ``&``
inside it is written as a JSON ``\\u`` escape, so no value (a location label, a case name)
can close the element or open markup; the page reads it back with ``JSON.parse`` and only
ever puts values into the page as text.
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
from importlib import resources
from typing import Any

from ..errors import Error

PLAYER_FORMAT = "vidproof-player/1"

_TEMPLATE = "player.html"
_PLACEHOLDER = re.compile(r"\{\{(TITLE|DATA)\}\}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,20}")
# JSON escapes that keep the payload inert inside a <script> element.
_SCRIPT_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                "\u2028": "\\u2028", "\u2029": "\\u2029"}


class PlayerDataError(Error, ValueError):
    """The data handed to :func:`render_player` does not follow ``vidproof-player/1``."""


def render_player(data: dict[str, Any]) -> str:
    """Return the complete, self-contained player page with ``data`` embedded.

    ``data`` is checked against the ``vidproof-player/1`` contract (module docstring);
    ``utc_ns`` values given as integers are written as decimal strings.
    Raises :class:`PlayerDataError` when a field is missing or malformed.
    """
    checked = _checked(data)
    payload = json.dumps(checked, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    payload = "".join(_SCRIPT_SAFE.get(ch, ch) for ch in payload)
    title = html.escape(f"Video evidence · camera {checked['camera_id']} · case {checked['case']}")
    template = resources.files("vidproof.player").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    values = {"TITLE": title, "DATA": payload}
    page, count = _PLACEHOLDER.subn(lambda m: values[m.group(1)], template)
    if count != 2:  # the template is ours: this is a packaging fault, not bad data
        raise RuntimeError(f"player template has {count} placeholders, expected 2")
    return page


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PlayerDataError("player data must be a JSON object")
    d = copy.deepcopy(data)
    if d.get("format") != PLAYER_FORMAT:
        raise PlayerDataError(f"player data format is {d.get('format')!r}, "
                              f"expected {PLAYER_FORMAT!r}")
    clip = _text(d, "clip")
    if clip in (".", "..") or any(c in clip for c in "/\\\0"):
        raise PlayerDataError(f"clip {clip!r} must be a plain file name beside player.html")
    _text(d, "camera_id")
    for key in ("case", "exported_utc", "officer"):
        _text(d, key, allow_empty=True)
    loc = _obj(d, "location")
    _text(loc, "label", allow_empty=True, where="location")
    for key in ("lat", "lon"):
        value = loc.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PlayerDataError(f"location.{key} must be a string or a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise PlayerDataError(f"location.{key} must be finite")
    tz = _obj(d, "timezone")
    name = tz.get("name")
    if name is not None and not isinstance(name, str):
        raise PlayerDataError("timezone.name must be a string or null")
    offset = tz.get("offset_minutes")
    if isinstance(offset, bool) or not isinstance(offset, int) or not -1080 <= offset <= 1080:
        raise PlayerDataError("timezone.offset_minutes must be an integer within ±18 h")
    fps = d.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not (
            math.isfinite(fps) and fps > 0):
        raise PlayerDataError("fps must be a positive number")
    sums = _obj(d, "sha256")
    for fname, digest in sums.items():
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise PlayerDataError(f"sha256[{fname!r}] must be 64 lowercase hex digits")
    d["frames"] = _frames(d.get("frames"))
    return d


def _frames(frames: Any) -> list[dict[str, Any]]:
    if not isinstance(frames, list) or not frames:
        raise PlayerDataError("frames must be a non-empty list")
    previous_t = -math.inf
    out: list[dict[str, Any]] = []
    for i, f in enumerate(frames):
        if not isinstance(f, dict):
            raise PlayerDataError(f"frames[{i}] must be an object")
        seq, t, utc, key = f.get("seq"), f.get("t"), f.get("utc_ns"), f.get("key")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise PlayerDataError(f"frames[{i}].seq must be a non-negative integer")
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise PlayerDataError(f"frames[{i}].t must be a finite number of seconds")
        if t <= previous_t:
            raise PlayerDataError(f"frames[{i}].t = {t} is not after the frame before "
                                  f"({previous_t}): frames must be in presentation order")
        previous_t = t
        if isinstance(utc, int) and not isinstance(utc, bool) and utc >= 0:
            utc = str(utc)
        if not isinstance(utc, str) or not _DIGITS.fullmatch(utc):
            raise PlayerDataError(f"frames[{i}].utc_ns must be a decimal string of nanoseconds")
        if not isinstance(key, bool):
            raise PlayerDataError(f"frames[{i}].key must be true or false")
        out.append({**f, "utc_ns": utc})
    return out


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    value = d.get(key)
    if not isinstance(value, dict):
        raise PlayerDataError(f"{key} must be an object")
    return value


def _text(d: dict[str, Any], key: str, *, allow_empty: bool = False, where: str = "") -> str:
    value = d.get(key)
    name = f"{where}.{key}" if where else key
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        raise PlayerDataError(f"{name} must be a{'' if allow_empty else ' non-empty'} string")
    return value
