"""Evidence records: shape validation (docs/FORMAT.md section 4)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidproof.model import (
    GENESIS,
    Checkpoint,
    ContextRecord,
    EventRecord,
    FrameRecord,
    Location,
    RecordError,
    check_camera_id,
    entry_from_json,
    record_to_json,
)

GOOD_LOG = Path(__file__).resolve().parents[1] / "assets" / "store_good" / "cam1" / "evidence.jsonl"
H = "ab" * 32


def samples() -> dict[str, dict[str, Any]]:
    """One entry of each type, taken from the good test vector (a real recording)."""
    out: dict[str, dict[str, Any]] = {}
    for line in GOOD_LOG.read_bytes().splitlines():
        entry = json.loads(line)
        key = entry["type"] if entry["type"] != "event" else "event:" + entry["event"]
        out.setdefault(key, entry)
    return out


SAMPLES = samples()
ALL_KINDS = ["context", "event:recorder_start", "frame", "checkpoint", "event:recorder_stop"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_real_entries_round_trip(kind: str) -> None:
    entry = SAMPLES[kind]
    rec = entry_from_json(entry)
    assert record_to_json(rec) == entry
    assert type(rec) is {"context": ContextRecord, "frame": FrameRecord,
                         "checkpoint": Checkpoint}.get(kind, EventRecord)


@pytest.mark.parametrize(("kind", "field"), [
    (k, f) for k in ALL_KINDS for f in SAMPLES[k]])
def test_every_field_is_required(kind: str, field: str) -> None:
    entry = copy.deepcopy(SAMPLES[kind])
    del entry[field]
    with pytest.raises(RecordError):
        entry_from_json(entry)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_extra_field_refused(kind: str) -> None:
    entry = dict(SAMPLES[kind], note="added")
    with pytest.raises(RecordError, match="unexpected fields"):
        entry_from_json(entry)


WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("frame", "seq", "2"), ("frame", "seq", True), ("frame", "seq", 2.0), ("frame", "seq", -1),
    ("frame", "utc_ns", None), ("frame", "utc_ns", 1.5), ("frame", "pts", "0"),
    ("frame", "pts", False), ("frame", "dts", 0.0), ("frame", "cam_utc_ns", "now"),
    ("frame", "key", 1), ("frame", "key", "true"), ("frame", "tb", [1]),
    ("frame", "tb", [1, 0]), ("frame", "tb", [1, -90000]), ("frame", "tb", [True, 90000]),
    ("frame", "tb", "1/90000"), ("frame", "tb", [1, 90000, 1]), ("frame", "camera", 7),
    ("frame", "v", "vidproof/2"), ("frame", "type", "picture"), ("context", "context", []),
    ("event", "event", "camera_exploded"), ("event", "detail", "none"),
    ("event", "detail", None), ("checkpoint", "sig", 5), ("checkpoint", "sig", "AB" * 64),
    ("checkpoint", "sig", "ab " * 64), ("checkpoint", "sig", "abc"), ("checkpoint", "alg", None),
    ("checkpoint", "seq", None),
]


@pytest.mark.parametrize(("kind", "field", "value"), WRONG_TYPES)
def test_wrong_type_refused(kind: str, field: str, value: Any) -> None:
    key = "event:recorder_start" if kind == "event" else kind
    entry = dict(SAMPLES[key], **{field: value})
    with pytest.raises(RecordError):
        entry_from_json(entry)


@pytest.mark.parametrize(("kind", "field"), [
    ("frame", "prev"), ("frame", "ctx"), ("frame", "digest"), ("frame", "params"),
    ("event:recorder_start", "prev"), ("event:recorder_start", "ctx"), ("context", "prev"),
    ("checkpoint", "head"), ("checkpoint", "key"), ("checkpoint", "prev_checkpoint"),
])
@pytest.mark.parametrize("bad", [
    "AB" * 32,            # uppercase
    "ab" * 31,            # too short
    "ab" * 33,            # too long
    "zz" * 32,            # not hex
    "ab" * 32 + "\n",     # a trailing newline must not slip through
    " " + "ab" * 31 + "a",
    32,
])
def test_bad_hex_refused(kind: str, field: str, bad: Any) -> None:
    entry = dict(SAMPLES[kind], **{field: bad})
    with pytest.raises(RecordError):
        entry_from_json(entry)


def test_genesis_is_accepted_where_a_chain_starts() -> None:
    assert entry_from_json(dict(SAMPLES["context"], prev=GENESIS)).prev == GENESIS
    cp = entry_from_json(dict(SAMPLES["checkpoint"], prev_checkpoint=GENESIS))
    assert isinstance(cp, Checkpoint) and cp.prev_checkpoint == GENESIS


@pytest.mark.parametrize("camera", ["", "-cam", ".cam", "cam 1", "cam/1", "cam1\n", "c" * 65,
                                    "caméra", None, 1])
def test_bad_camera_id_refused(camera: Any) -> None:
    with pytest.raises(RecordError):
        check_camera_id(camera)
    with pytest.raises(RecordError):
        entry_from_json(dict(SAMPLES["frame"], camera=camera))


@pytest.mark.parametrize("camera", ["cam1", "C", "0", "front-door_2.cam", "c" * 64])
def test_good_camera_ids(camera: str) -> None:
    assert check_camera_id(camera) == camera
    assert entry_from_json(dict(SAMPLES["frame"], camera=camera)).camera == camera


@pytest.mark.parametrize(("path", "value"), [
    (("camera_id",), "bad id"),
    (("camera_id",), None),
    (("location",), "Paris"),
    (("location", "lat"), 48.8566),
    (("location", "label"), None),
    (("key",), None),
    (("key", "id"), "abc"),
    (("key", "alg"), 25519),
])
def test_context_content_validated(path: tuple[str, ...], value: Any) -> None:
    entry = copy.deepcopy(SAMPLES["context"])
    target = entry["context"]
    for p in path[:-1]:
        target = target[p]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(RecordError):
        entry_from_json(entry)


@pytest.mark.parametrize("value", [None, [], "entry", 3])
def test_not_an_object(value: Any) -> None:
    with pytest.raises(RecordError):
        entry_from_json(value)


def test_unknown_type_refused() -> None:
    with pytest.raises(RecordError, match="unknown entry type"):
        entry_from_json(dict(SAMPLES["frame"], type="segment"))


# --- Location ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "label", "lat", "lon"), [
    ("12 rue de Rivoli, Paris;48.8566,2.3522", "12 rue de Rivoli, Paris", "48.8566", "2.3522"),
    ("Gate; north side;-33.8688, 151.2093", "Gate; north side", "-33.8688", "151.2093"),
    ("  Pole  ;90,-180", "Pole", "90", "-180"),
    ("Null Island;0,0", "Null Island", "0", "0"),
    ("Hôtel de Ville;48.856614,2.3522219", "Hôtel de Ville", "48.856614", "2.3522219"),
])
def test_location_parse(text: str, label: str, lat: str, lon: str) -> None:
    loc = Location.parse(text)
    assert (loc.label, loc.lat, loc.lon) == (label, lat, lon)
    assert loc.to_json() == {"label": label, "lat": lat, "lon": lon}


@pytest.mark.parametrize("text", [
    "", "Paris", "Paris;", ";48.8,2.3", "   ;48.8,2.3", "Paris;48.8", "Paris;48.8;2.3",
    "Paris;91,0", "Paris;0,180.5", "Paris;north,east", "Paris;nan,0", "Paris;inf,0",
    "Paris;48.8 2.3",
])
def test_location_parse_refuses(text: str) -> None:
    with pytest.raises(RecordError):
        Location.parse(text)


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and "\x00" not in s),
       st.integers(-90_000, 90_000), st.integers(-180_000, 180_000))
def test_location_round_trip(label: str, lat: int, lon: int) -> None:
    lat_s, lon_s = f"{lat / 1000:.3f}", f"{lon / 1000:.3f}"
    loc = Location.parse(f"{label};{lat_s},{lon_s}")
    assert (loc.label, loc.lat, loc.lon) == (label.strip(), lat_s, lon_s)


@given(st.integers(0, 2**63 - 1), st.integers(-(2**63), 2**63 - 1), st.booleans(),
       st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
       st.integers(1, 2**31), st.integers(1, 2**31))
def test_frame_record_round_trip(seq: int, utc: int, key: bool, pts: int | None,
                                 num: int, den: int) -> None:
    rec = FrameRecord("cam1", seq, H, utc, H, pts, pts, (num, den), key, H, H, None)
    assert entry_from_json(json.loads(json.dumps(record_to_json(rec)))) == rec
