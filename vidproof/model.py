"""Frozen, self-validating evidence records.

Every entry of an evidence log is one JSON object. Chain entries (context,
frame, event) carry ``seq`` and ``prev``; checkpoints sign a chain head. The
JSON shape of each is documented in docs/FORMAT.md; ``from_json`` refuses
anything else, so a record cannot exist in an invalid state.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

FORMAT = "vidproof/1"
GENESIS = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SIG_HEX = re.compile(r"^(?:[0-9a-f]{2})+$")
_CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EVENT_KINDS = frozenset(
    {"recorder_start", "recorder_stop", "camera_lost", "camera_back", "source_duplicates",
     "clock_jump", "clock_offset",
     "key_rotation",  # the old key introduces the new one (docs/FORMAT.md section 10.3)
     "retention_purge"}  # segments destroyed after the retention period (docs/FORMAT.md 15)
)
FINGERPRINT_BYTES = 256  # frame records' optional "fp": base64 of a version-1 fingerprint


class RecordError(ValueError):
    """An evidence entry does not have the documented shape."""


def check_camera_id(camera_id: str) -> str:
    if not isinstance(camera_id, str) or not _CAMERA_ID.fullmatch(camera_id):
        raise RecordError(
            f"camera id {camera_id!r} is invalid: expected 1-64 characters from "
            "A-Z a-z 0-9 . _ - starting with a letter or digit"
        )
    return camera_id


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise RecordError(f"{where}: field {key!r} is missing")
    value = obj[key]
    if isinstance(value, bool) and kind is int:
        raise RecordError(f"{where}: field {key!r} must be an integer, got a boolean")
    if not isinstance(value, kind):
        raise RecordError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _hex64(obj: dict[str, Any], key: str, where: str) -> str:
    value: str = _get(obj, key, str, where)
    if not _HEX64.fullmatch(value):
        raise RecordError(f"{where}: field {key!r} is not a lowercase hex SHA-256")
    return value


def _sig_hex(obj: dict[str, Any], where: str) -> str:
    # One spelling only: bytes.fromhex would also take upper case and spaces, so the
    # line could change while its signature still verifies.
    value: str = _get(obj, "sig", str, where)
    if not _SIG_HEX.fullmatch(value):
        raise RecordError(f"{where}: field 'sig' is not lowercase hex")
    return value


def _opt_int(obj: dict[str, Any], key: str, where: str) -> int | None:
    if key not in obj:
        raise RecordError(f"{where}: field {key!r} is missing")
    value = obj[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{where}: field {key!r} must be an integer or null")
    return value


def _exact_keys(obj: dict[str, Any], keys: set[str], where: str) -> None:
    extra = set(obj) - keys
    if extra:
        raise RecordError(f"{where}: unexpected fields {sorted(extra)}")


@dataclass(frozen=True, slots=True)
class Location:
    label: str
    lat: str
    lon: str

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse ``"LABEL;LAT,LON"``; coordinates are kept as the decimal text given."""
        label, sep, coords = text.rpartition(";")
        if not sep or not label.strip():
            raise RecordError(f"location {text!r} is invalid: expected \"LABEL;LAT,LON\"")
        lat, comma, lon = coords.partition(",")
        try:
            flat, flon = float(lat), float(lon)
        except ValueError:
            flat = flon = float("nan")
        if not comma or not (-90 <= flat <= 90 and -180 <= flon <= 180):
            raise RecordError(
                f"location {text!r} is invalid: expected \"LABEL;LAT,LON\" with "
                "latitude in [-90, 90] and longitude in [-180, 180]"
            )
        return cls(label.strip(), lat.strip(), lon.strip())

    def to_json(self) -> dict[str, str]:
        return {"label": self.label, "lat": self.lat, "lon": self.lon}

    def __str__(self) -> str:
        return f"{self.label} ({self.lat}, {self.lon})"


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """Fields every chain entry has."""

    camera: str
    seq: int
    prev: str
    utc_ns: int


@dataclass(frozen=True, slots=True)
class ContextRecord(ChainEntry):
    context: dict[str, Any] = field(default_factory=dict)
    type: str = "context"

    @property
    def location(self) -> Location:
        loc = self.context["location"]
        return Location(loc["label"], loc["lat"], loc["lon"])

    @property
    def key_id(self) -> str:
        key_id: str = self.context["key"]["id"]
        return key_id


@dataclass(frozen=True, slots=True)
class FrameRecord(ChainEntry):
    ctx: str = GENESIS
    pts: int | None = None
    dts: int | None = None
    tb: tuple[int, int] = (1, 90000)
    key: bool = False
    digest: str = GENESIS
    params: str = GENESIS
    cam_utc_ns: int | None = None
    type: str = "frame"
    fp: str | None = None  # optional: the picture's fingerprint, base64 (transcode mode)


@dataclass(frozen=True, slots=True)
class EventRecord(ChainEntry):
    ctx: str = GENESIS
    event: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    type: str = "event"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    camera: str
    seq: int
    head: str
    prev_checkpoint: str
    utc_ns: int
    key: str
    sig: str
    alg: str = "Ed25519"
    type: str = "checkpoint"

    def signed_part(self) -> dict[str, Any]:
        body = checkpoint_to_json(self)
        del body["sig"]
        return body


@dataclass(frozen=True, slots=True)
class TimestampEntry:
    """An RFC 3161 time-stamp token over a checkpoint (docs/FORMAT.md section 13). Not a
    chain entry and not signed by the recorder: the token is signed by the TSA."""

    camera: str
    seq: int  # the checkpoint's seq
    checkpoint: str  # the checkpoint's entry hash: the token's message imprint
    utc_ns: int  # when the recorder received the token (its own clock)
    token: str  # base64 of the DER token (a CMS ContentInfo)
    type: str = "timestamp"


Record = ContextRecord | FrameRecord | EventRecord
Entry = Record | Checkpoint | TimestampEntry
MAX_TOKEN_BASE64 = 87_384  # base64 of a 64 KiB token


def record_to_json(rec: Entry) -> dict[str, Any]:
    base: dict[str, Any] = {"v": FORMAT, "type": rec.type, "camera": rec.camera, "seq": rec.seq}
    if isinstance(rec, Checkpoint):
        return checkpoint_to_json(rec)
    if isinstance(rec, TimestampEntry):
        return {"v": FORMAT, "type": rec.type, "camera": rec.camera, "seq": rec.seq,
                "checkpoint": rec.checkpoint, "utc_ns": rec.utc_ns, "token": rec.token}
    base.update(prev=rec.prev, utc_ns=rec.utc_ns)
    if isinstance(rec, ContextRecord):
        base["context"] = rec.context
    elif isinstance(rec, FrameRecord):
        base.update(
            ctx=rec.ctx, pts=rec.pts, dts=rec.dts, tb=list(rec.tb), key=rec.key,
            digest=rec.digest, params=rec.params, cam_utc_ns=rec.cam_utc_ns,
        )
        if rec.fp is not None:
            base["fp"] = rec.fp
    else:
        base.update(ctx=rec.ctx, event=rec.event, detail=rec.detail)
    return base


def checkpoint_to_json(cp: Checkpoint) -> dict[str, Any]:
    return {
        "v": FORMAT, "type": "checkpoint", "camera": cp.camera, "seq": cp.seq, "head": cp.head,
        "prev_checkpoint": cp.prev_checkpoint, "utc_ns": cp.utc_ns, "key": cp.key,
        "alg": cp.alg, "sig": cp.sig,
    }


_COMMON = {"v", "type", "camera", "seq"}
_KEYS = {
    "context": _COMMON | {"prev", "utc_ns", "context"},
    "frame": _COMMON | {"prev", "utc_ns", "ctx", "pts", "dts", "tb", "key", "digest",
                        "params", "cam_utc_ns"},
    "event": _COMMON | {"prev", "utc_ns", "ctx", "event", "detail"},
    "checkpoint": _COMMON | {"head", "prev_checkpoint", "utc_ns", "key", "alg", "sig"},
    "timestamp": _COMMON | {"checkpoint", "utc_ns", "token"},
}
_OPTIONAL = {"frame": {"fp"}}


def _fingerprint(obj: dict[str, Any], where: str) -> str | None:
    """The optional ``fp`` member: exactly the padded base64 of 256 bytes (one spelling)."""
    if "fp" not in obj:
        return None
    value = obj["fp"]
    try:
        if not isinstance(value, str) or len(value) != 344:
            raise ValueError
        raw = base64.b64decode(value, validate=True)
        if len(raw) != FINGERPRINT_BYTES or base64.b64encode(raw).decode("ascii") != value:
            raise ValueError
    except (ValueError, binascii.Error):
        raise RecordError(f"{where}: field 'fp' is not the base64 of a "
                          f"{FINGERPRINT_BYTES}-byte fingerprint") from None
    return value


def _token(obj: dict[str, Any], where: str) -> str:
    """A timestamp entry's ``token``: padded standard base64, one spelling only."""
    value = _get(obj, "token", str, where)
    try:
        if not value or len(value) > MAX_TOKEN_BASE64:
            raise ValueError
        if base64.b64encode(base64.b64decode(value, validate=True)).decode("ascii") != value:
            raise ValueError
    except (ValueError, binascii.Error):
        raise RecordError(f"{where}: field 'token' is not base64 of at most 64 KiB") from None
    return str(value)


def _check_context(ctx: dict[str, Any], where: str) -> None:
    cam = _get(ctx, "camera_id", str, where + " context")
    check_camera_id(cam)
    loc = _get(ctx, "location", dict, where + " context")
    for k in ("label", "lat", "lon"):
        _get(loc, k, str, where + " context.location")
    key = _get(ctx, "key", dict, where + " context")
    _hex64(key, "id", where + " context.key")
    _get(key, "alg", str, where + " context.key")


_HEX256 = re.compile(r"[0-9a-f]{256}")
_CAMERA_IDS_SEEN: set[str] = set()  # valid camera ids met by _frame_entry (a few)


def _frame_entry(obj: dict[str, Any]) -> FrameRecord | None:
    """The hot path of :func:`entry_from_json`: a frame entry without ``fp`` (every frame
    of a passthrough recording), checked as the general path checks it, in fewer steps.
    None when anything differs: the general path then decides, and names the problem."""
    if len(obj) != 14:
        return None
    try:  # 14 members, these 14 among them: exactly the members of a frame entry
        camera, seq, prev, utc_ns, ctx = (obj["camera"], obj["seq"], obj["prev"],
                                          obj["utc_ns"], obj["ctx"])
        pts, dts, tb, key, digest = obj["pts"], obj["dts"], obj["tb"], obj["key"], obj["digest"]
        params, cam_utc_ns, v = obj["params"], obj["cam_utc_ns"], obj["v"]
    except KeyError:
        return None
    if v != FORMAT or type(seq) is not int or seq < 0 or type(utc_ns) is not int:
        return None
    if type(key) is not bool or type(tb) is not list or len(tb) != 2:
        return None
    num, den = tb
    if type(num) is not int or type(den) is not int or num <= 0 or den <= 0:
        return None
    for n in (pts, dts, cam_utc_ns):
        if n is not None and type(n) is not int:
            return None
    hexes = (prev, ctx, digest, params)
    for h in hexes:
        if type(h) is not str or len(h) != 64:
            return None
    if not _HEX256.fullmatch("".join(hexes)):
        return None
    if type(camera) is not str:  # before the set lookup: a list is unhashable
        return None
    if camera not in _CAMERA_IDS_SEEN:
        if not _CAMERA_ID.fullmatch(camera):
            return None
        if len(_CAMERA_IDS_SEEN) < 64:
            _CAMERA_IDS_SEEN.add(camera)
    return FrameRecord(camera, seq, prev, utc_ns, ctx, pts, dts, (num, den), key, digest,
                       params, cam_utc_ns)


def entry_from_json(obj: Any) -> Entry:
    """Validate one parsed evidence line and build its record."""
    if type(obj) is dict and obj.get("type") == "frame":
        frame = _frame_entry(obj)
        if frame is not None:
            return frame
    if not isinstance(obj, dict):
        raise RecordError("evidence entry is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _KEYS:  # a list or object is unhashable
        raise RecordError(f"unknown entry type {kind!r}")
    where = f"{kind} entry"
    if obj.get("v") != FORMAT:
        raise RecordError(f"{where}: format {obj.get('v')!r} is not {FORMAT!r}")
    _exact_keys(obj, _KEYS[kind] | _OPTIONAL.get(kind, set()), where)
    camera = check_camera_id(_get(obj, "camera", str, where))
    seq = _get(obj, "seq", int, where)
    if seq < 0:
        raise RecordError(f"{where}: negative seq")
    where = f"{kind} entry seq {seq}"
    utc_ns = _get(obj, "utc_ns", int, where)
    if kind == "timestamp":
        return TimestampEntry(camera, seq, _hex64(obj, "checkpoint", where), utc_ns,
                              _token(obj, where))
    if kind == "checkpoint":
        prev_cp = _get(obj, "prev_checkpoint", str, where)
        if prev_cp != GENESIS:
            _hex64(obj, "prev_checkpoint", where)
        return Checkpoint(
            camera, seq, _hex64(obj, "head", where), prev_cp, utc_ns,
            _hex64(obj, "key", where), _sig_hex(obj, where), _get(obj, "alg", str, where),
        )
    prev = _hex64(obj, "prev", where)
    if kind == "context":
        ctx = _get(obj, "context", dict, where)
        _check_context(ctx, where)
        return ContextRecord(camera, seq, prev, utc_ns, ctx)
    ctx_hash = _hex64(obj, "ctx", where)
    if kind == "event":
        event = _get(obj, "event", str, where)
        if event not in EVENT_KINDS:
            raise RecordError(f"{where}: unknown event {event!r}")
        return EventRecord(camera, seq, prev, utc_ns, ctx_hash, event,
                           _get(obj, "detail", dict, where))
    tb = _get(obj, "tb", list, where)
    if len(tb) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                               for x in tb):
        raise RecordError(f"{where}: field 'tb' must be [num, den] with positive integers")
    return FrameRecord(
        camera, seq, prev, utc_ns, ctx_hash, _opt_int(obj, "pts", where),
        _opt_int(obj, "dts", where), (tb[0], tb[1]), _get(obj, "key", bool, where),
        _hex64(obj, "digest", where), _hex64(obj, "params", where),
        _opt_int(obj, "cam_utc_ns", where), fp=_fingerprint(obj, where),
    )
