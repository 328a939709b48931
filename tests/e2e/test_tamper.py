"""Tampering with a recorded store is detected, and the findings name the right frames.

Each scenario copies the pristine store, tampers with it the way an attacker
would (media edited with PyAV or stock ffmpeg without re-encoding, evidence
lines edited and re-serialised, the hash chain recomputed), and says which
finding kinds must name which frame sequence numbers. The test then runs the
real CLI: ``vidproof verify STORE --trust PUB --json`` must exit 1 and report
an error finding of one of those kinds whose frame range covers each seq.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from conftest import Keys, ffmpeg, record, vidproof

from vidproof.canonical import canonical_bytes

CAM = "cam1"
GENESIS = "0" * 64
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
        "-pix_fmt", "yuv420p",
        "-x264-params", "keyint=25:min-keyint=25:scenecut=0:repeat-headers=1"]


# --- media helpers -------------------------------------------------------------------

@dataclass(frozen=True)
class Pkt:
    data: bytes
    pts: int | None
    dts: int | None
    key: bool


def read_packets(path: Path) -> list[Pkt]:
    """Every coded frame of a segment, in decoding order, bytes as stored."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Pkt(bytes(p), p.pts, p.dts, p.is_keyframe) for p in c.demux(s) if p.size]


def write_ts(path: Path, packets: list[Pkt], template: Path) -> None:
    """Mux coded frames, unchanged, into MPEG-TS with the template's stream parameters."""
    tmp = path.with_name(path.name + ".tmp")
    with av.open(str(template)) as src:
        tmpl = src.streams.video[0]
        tb = tmpl.time_base
        with av.open(str(tmp), "w", format="mpegts") as out:
            st = out.add_stream_from_template(tmpl)
            st.time_base = tb
            for p in packets:
                pk = av.Packet(p.data)
                pk.pts, pk.dts, pk.time_base = p.pts, p.dts, tb
                pk.is_keyframe = p.key
                pk.stream = st
                out.mux(pk)
    os.replace(tmp, path)


def remux(path: Path, edit: Callable[[list[Pkt]], list[Pkt]]) -> None:
    """Demux a segment, apply ``edit`` to its packet list, remux with the same timestamps."""
    write_ts(path, edit(read_packets(path)), template=path)


def vcl_offset(data: bytes) -> int:
    """Offset of a byte inside the slice data of the first VCL NAL unit (Annex B)."""
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        end = data.find(b"\x00\x00\x01", start)
        end = len(data) if end < 0 else end
        if 1 <= data[start] & 0x1F <= 5 and end - start > 64:
            for i in range((start + end) // 2, end):
                if data[i] >= 0x10:  # flipping its low bit cannot make a start code
                    return i
        pos = end if end < len(data) else -1
    raise AssertionError("no VCL NAL unit found in the packet")


# --- evidence helpers ----------------------------------------------------------------

def read_log(cam_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (cam_dir / "evidence.jsonl").read_text().splitlines()]


def write_log(cam_dir: Path, entries: list[dict[str, Any]]) -> None:
    (cam_dir / "evidence.jsonl").write_bytes(b"".join(canonical_bytes(e) + b"\n"
                                                      for e in entries))


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


def rechain(entries: list[dict[str, Any]]) -> None:
    """What an attacker without the key can do: recompute every prev and ctx link."""
    head, ctx = GENESIS, GENESIS
    for e in entries:
        if e["type"] == "checkpoint":
            continue
        e["prev"] = head
        if e["type"] != "context":
            e["ctx"] = ctx
        head = entry_hash(e)
        if e["type"] == "context":
            ctx = head


def edit_log(cam_dir: Path, edit: Callable[[list[dict[str, Any]]], None],
             recompute_chain: bool = False) -> None:
    entries = read_log(cam_dir)
    edit(entries)
    if recompute_chain:
        rechain(entries)
    write_log(cam_dir, entries)


def by_seq(entries: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    return next(e for e in entries if e["type"] != "checkpoint" and e["seq"] == seq)


# --- the recordings ------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    name: str
    seqs: tuple[int, ...]  # frame seq of each packet, in order


@dataclass(frozen=True)
class Layout:
    """Which frame records belong to which packets of which segment."""

    segments: tuple[Segment, ...]
    checkpoints: tuple[dict[str, Any], ...]
    context_seq: int

    def seq(self, segment: int, index: int) -> int:
        return self.segments[segment].seqs[index]


@pytest.fixture(scope="session")
def layout(pristine_store: Path) -> Layout:
    cam_dir = pristine_store / CAM
    entries = read_log(cam_dir)
    frame_seqs = [e["seq"] for e in entries if e["type"] == "frame"]
    segments, used = [], 0
    for path in sorted((cam_dir / "segments").glob("*.ts")):
        n = len(read_packets(path))
        segments.append(Segment(path.name, tuple(frame_seqs[used:used + n])))
        used += n
    assert used == len(frame_seqs) == 200 and len(segments) >= 3
    ctx = next(e["seq"] for e in entries if e["type"] == "context")
    return Layout(tuple(segments), tuple(e for e in entries if e["type"] == "checkpoint"), ctx)


@pytest.fixture(scope="session")
def other_store(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """Footage that is not the pristine recording, signed with the same key: ``cam1`` at
    another time (the test pattern 60 s later) and another camera ``cam2`` (another scene)."""
    d = tmp_path_factory.mktemp("other")
    later, scene = d / "later.mp4", d / "scene.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-ss", "60", "-t", "4",
           *X264, later)
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=640x360:rate=25", "-t", "4", *X264, scene)
    store = d / "store"
    for src, cam in ((later, CAM), (scene, "cam2")):
        r = record(store, keys, source=str(src), camera=cam, duration=4, segment_seconds=2)
        assert r.code == 0, r.err
    return store


@dataclass(frozen=True)
class Ctx:
    store: Path
    layout: Layout
    other: Path
    keys: Keys
    other_keys: Keys

    @property
    def cam(self) -> Path:
        return self.store / CAM

    def segment(self, i: int) -> Path:
        return self.cam / "segments" / self.layout.segments[i].name


@dataclass(frozen=True)
class Expect:
    kinds: frozenset[str]
    seqs: tuple[int, ...]
    trust: Path | None = None
    not_kinds: frozenset[str] = field(default_factory=frozenset)


def expect(kinds: str, seqs: list[int] | tuple[int, ...], *, trust: Path | None = None,
           not_kinds: str = "") -> Expect:
    return Expect(frozenset(kinds.split()), tuple(seqs), trust, frozenset(not_kinds.split()))


# --- the scenarios -------------------------------------------------------------------

def byte_changed(t: Ctx) -> Expect:
    idx = 10

    def edit(pk: list[Pkt]) -> list[Pkt]:
        data = bytearray(pk[idx].data)
        data[vcl_offset(bytes(data))] ^= 0x01
        pk[idx] = Pkt(bytes(data), pk[idx].pts, pk[idx].dts, pk[idx].key)
        return pk

    remux(t.segment(1), edit)
    return expect("frame_modified", [t.layout.seq(1, idx)],
                  not_kinds="frame_missing frame_inserted frame_reordered frame_duplicated")


def byte_changed_raw(t: Ctx) -> Expect:
    """One byte flipped in the TS file itself, inside a coded frame's slice data."""
    idx = 20
    path = t.segment(2)
    raw = bytearray(path.read_bytes())
    frame = read_packets(path)[idx].data
    vcl = vcl_offset(frame)
    # The TS file splits a frame into 184-byte payloads between 4-byte packet headers:
    # find a 16-byte run of slice data that lies within one payload and occurs once in
    # the file, and flip a byte at its start.
    for start in range(vcl, vcl + 188):
        needle = frame[start:start + 16]
        if needle[0] >= 0x10 and raw.count(needle) == 1:
            break
    else:
        raise AssertionError("no unique run of slice data found in the TS file")
    raw[raw.find(needle)] ^= 0x01
    path.write_bytes(bytes(raw))
    return expect("frame_modified", [t.layout.seq(2, idx)],
                  not_kinds="frame_missing frame_inserted frame_reordered frame_duplicated")


def frame_removed(t: Ctx) -> Expect:
    """Stock ffmpeg drops one packet (no re-encoding)."""
    idx = 12
    path = t.segment(1)
    out = path.with_name("cut.ts")
    ffmpeg("-i", path, "-map", "0:v", "-c", "copy", "-bsf:v", f"noise=drop=eq(n\\,{idx})",
           "-f", "mpegts", out)
    os.replace(out, path)
    assert len(read_packets(path)) == len(t.layout.segments[1].seqs) - 1
    return expect("frame_missing", [t.layout.seq(1, idx)],
                  not_kinds="frame_modified frame_inserted frame_duplicated")


def keyframe_removed(t: Ctx) -> Expect:
    idx = 25
    remux(t.segment(1), lambda pk: [p for i, p in enumerate(pk) if i != idx])
    assert read_packets(t.segment(1))[idx - 1].key is False
    return expect("frame_missing", [t.layout.seq(1, idx)],
                  not_kinds="frame_modified frame_inserted frame_duplicated")


def frame_duplicated(t: Ctx) -> Expect:
    idx = 5

    def edit(pk: list[Pkt]) -> list[Pkt]:
        p, nxt = pk[idx], pk[idx + 1]
        assert p.pts is not None and nxt.pts is not None and p.dts is not None
        mid = (p.pts + nxt.pts) // 2
        return pk[:idx + 1] + [Pkt(p.data, mid, mid, p.key)] + pk[idx + 1:]

    remux(t.segment(1), edit)
    return expect("frame_duplicated", [t.layout.seq(1, idx)],
                  not_kinds="frame_modified frame_missing frame_inserted timestamp_modified")


def frame_inserted(t: Ctx) -> Expect:
    """A frame of another recording (another camera) slipped in between two frames."""
    idx = 7
    foreign = read_packets(next((t.other / "cam2" / "segments").glob("*.ts")))[3]

    def edit(pk: list[Pkt]) -> list[Pkt]:
        p, nxt = pk[idx], pk[idx + 1]
        assert p.pts is not None and nxt.pts is not None
        mid = (p.pts + nxt.pts) // 2
        return pk[:idx + 1] + [Pkt(foreign.data, mid, mid, False)] + pk[idx + 1:]

    remux(t.segment(1), edit)
    return expect("frame_inserted", [t.layout.seq(1, idx)],
                  not_kinds="frame_modified frame_missing frame_duplicated timestamp_modified")


def frames_swapped(t: Ctx) -> Expect:
    """Two consecutive frames trade places; each keeps the slot's timestamps."""
    idx = 14

    def edit(pk: list[Pkt]) -> list[Pkt]:
        a, b = pk[idx], pk[idx + 1]
        pk[idx], pk[idx + 1] = (Pkt(b.data, a.pts, a.dts, b.key), Pkt(a.data, b.pts, b.dts, a.key))
        return pk

    remux(t.segment(1), edit)
    return expect("frame_reordered", [t.layout.seq(1, idx), t.layout.seq(1, idx + 1)],
                  not_kinds="frame_modified frame_missing frame_inserted frame_duplicated")


def frames_swapped_far(t: Ctx) -> Expect:
    """Two frames a second apart trade places."""
    i, j = 3, 40

    def edit(pk: list[Pkt]) -> list[Pkt]:
        a, b = pk[i], pk[j]
        pk[i], pk[j] = Pkt(b.data, a.pts, a.dts, b.key), Pkt(a.data, b.pts, b.dts, a.key)
        return pk

    remux(t.segment(1), edit)
    return expect("frame_reordered", [t.layout.seq(1, i), t.layout.seq(1, j)],
                  not_kinds="frame_modified frame_missing frame_inserted frame_duplicated")


def segment_deleted(t: Ctx) -> Expect:
    t.segment(1).unlink()
    return expect("frame_missing", t.layout.segments[1].seqs,
                  not_kinds="frame_modified frame_inserted")


def segment_truncated(t: Ctx) -> Expect:
    path = t.segment(1)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size * 2 // 5)
    left = len(read_packets(path))
    assert 0 < left < len(t.layout.segments[1].seqs)
    return expect("frame_missing media_damaged frame_modified",
                  t.layout.segments[1].seqs[left:])


def segment_looped(t: Ctx) -> Expect:
    """Earlier footage of the same recording copied over a later segment."""
    shutil.copyfile(t.segment(0), t.segment(1))
    return expect("frame_missing frame_duplicated", t.layout.segments[1].seqs,
                  not_kinds="frame_modified")


def segment_from_other_camera(t: Ctx) -> Expect:
    shutil.copyfile(next((t.other / "cam2" / "segments").glob("*.ts")), t.segment(1))
    return expect("frame_modified frame_missing frame_inserted", t.layout.segments[1].seqs)


def segment_from_other_time(t: Ctx) -> Expect:
    later = sorted((t.other / CAM / "segments").glob("*.ts"))[-1]
    shutil.copyfile(later, t.segment(2))
    return expect("frame_modified frame_missing frame_inserted", t.layout.segments[2].seqs)


def frame_utc_changed(t: Ctx) -> Expect:
    seq = t.layout.seq(1, 30)

    def edit(entries: list[dict[str, Any]]) -> None:
        by_seq(entries, seq)["utc_ns"] += 3_600_000_000_000

    edit_log(t.cam, edit)
    return expect("record_modified", [seq])


def frame_pts_changed(t: Ctx) -> Expect:
    seq = t.layout.seq(0, 40)

    def edit(entries: list[dict[str, Any]]) -> None:
        by_seq(entries, seq)["pts"] += 3600

    edit_log(t.cam, edit)
    return expect("record_modified", [seq])


def frame_camera_changed(t: Ctx) -> Expect:
    seq = t.layout.seq(2, 5)

    def edit(entries: list[dict[str, Any]]) -> None:
        by_seq(entries, seq)["camera"] = "cam9"

    edit_log(t.cam, edit)
    return expect("wrong_camera record_modified records_missing", [seq])


def context_camera_changed(t: Ctx) -> Expect:
    def edit(entries: list[dict[str, Any]]) -> None:
        by_seq(entries, t.layout.context_seq)["context"]["camera_id"] = "cam9"

    edit_log(t.cam, edit)
    return expect("context_mismatch record_modified", [t.layout.context_seq])


def location_changed(t: Ctx) -> Expect:
    def edit(entries: list[dict[str, Any]]) -> None:
        loc = by_seq(entries, t.layout.context_seq)["context"]["location"]
        loc.update(label="1 Infinite Loop, Cupertino", lat="37.3318", lon="-122.0312")

    edit_log(t.cam, edit)
    return expect("record_modified", [t.layout.context_seq])


def frame_utc_changed_rechained(t: Ctx) -> Expect:
    seq = t.layout.seq(1, 30)

    def edit(entries: list[dict[str, Any]]) -> None:
        by_seq(entries, seq)["utc_ns"] += 3_600_000_000_000

    edit_log(t.cam, edit, recompute_chain=True)
    return expect("checkpoint_mismatch", [seq], not_kinds="record_modified")


def location_changed_rechained(t: Ctx) -> Expect:
    def edit(entries: list[dict[str, Any]]) -> None:
        loc = by_seq(entries, t.layout.context_seq)["context"]["location"]
        loc.update(label="1 Infinite Loop, Cupertino", lat="37.3318", lon="-122.0312")

    edit_log(t.cam, edit, recompute_chain=True)
    return expect("checkpoint_mismatch", [t.layout.context_seq, t.layout.seq(2, 49)],
                  not_kinds="record_modified context_mismatch")


def camera_renamed_rechained(t: Ctx) -> Expect:
    """The whole recording passed off as another camera's: directory, every camera field
    (checkpoints too) and the context renamed, the chain recomputed."""

    def edit(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            e["camera"] = "cam9"
        by_seq(entries, t.layout.context_seq)["context"]["camera_id"] = "cam9"

    edit_log(t.cam, edit, recompute_chain=True)
    t.cam.rename(t.store / "cam9")
    return expect("checkpoint_mismatch bad_signature",
                  [t.layout.context_seq, t.layout.seq(0, 0), t.layout.seq(2, 49)],
                  not_kinds="record_modified")


def checkpoint_signature_altered(t: Ctx) -> Expect:
    cps = t.layout.checkpoints
    k = len(cps) // 2
    target, before = cps[k], cps[k - 1]

    def edit(entries: list[dict[str, Any]]) -> None:
        cp = next(e for e in entries if e["type"] == "checkpoint" and e["seq"] == target["seq"])
        sig = bytearray(bytes.fromhex(cp["sig"]))
        sig[10] ^= 0x01
        cp["sig"] = sig.hex()

    edit_log(t.cam, edit)
    return expect("bad_signature", [before["seq"] + 1, target["seq"]],
                  not_kinds="checkpoint_mismatch record_modified")


def checkpoint_removed(t: Ctx) -> Expect:
    target = t.layout.checkpoints[4]

    def edit(entries: list[dict[str, Any]]) -> None:
        entries.remove(next(e for e in entries
                            if e["type"] == "checkpoint" and e["seq"] == target["seq"]))

    edit_log(t.cam, edit)
    return expect("checkpoint_chain", [target["seq"]])


def other_camera_key(t: Ctx) -> Expect:
    seqs = [s for seg in t.layout.segments for s in seg.seqs]
    return expect("untrusted_key", [t.layout.context_seq, seqs[0], seqs[-1]],
                  trust=t.other_keys.pub)


def gop_removed_with_records(t: Ctx) -> Expect:
    """A whole GOP cut from the media, and its frame records from the evidence."""
    seg = t.layout.segments[1]
    pk = read_packets(t.segment(1))
    keys = [i for i, p in enumerate(pk) if p.key]
    a, b = keys[1], keys[2]  # the second GOP of the segment: packets a..b-1
    gone = set(seg.seqs[a:b])
    remux(t.segment(1), lambda pk: pk[:a] + pk[b:])

    def edit(entries: list[dict[str, Any]]) -> None:
        entries[:] = [e for e in entries if e["type"] != "frame" or e["seq"] not in gone]

    edit_log(t.cam, edit)
    return expect("records_missing", sorted(gone))


SCENARIOS: dict[str, Callable[[Ctx], Expect]] = {f.__name__: f for f in (
    # media
    byte_changed, byte_changed_raw, frame_removed, keyframe_removed, frame_duplicated,
    frame_inserted, frames_swapped, frames_swapped_far, segment_deleted, segment_truncated,
    segment_looped, segment_from_other_camera, segment_from_other_time,
    # evidence
    frame_utc_changed, frame_pts_changed, frame_camera_changed, context_camera_changed,
    location_changed, frame_utc_changed_rechained, location_changed_rechained,
    camera_renamed_rechained, checkpoint_signature_altered, checkpoint_removed,
    other_camera_key,
    # both
    gop_removed_with_records,
)}


def _verify(store: Path, trust: Path) -> dict[str, Any]:
    r = vidproof("verify", store, "--trust", trust, "--json")
    assert r.code in (0, 1), f"exit {r.code}: {r.err}"
    assert "Traceback" not in r.err
    report: dict[str, Any] = r.json
    assert (r.code == 0) == (report["verdict"] == "authentic")
    return report


def _show(findings: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {f['severity']} {f['kind']} {f['first_frame']}..{f['last_frame']}: "
                     f"{f['message']}" for f in findings[:25])


def test_pristine_store_is_authentic(pristine_store: Path, keys: Keys, layout: Layout) -> None:
    report = _verify(pristine_store, keys.pub)
    bad = [f for f in report["findings"] if f["severity"] in ("error", "warning")]
    assert report["verdict"] == "authentic", _show(bad)
    assert not bad, _show(bad)
    assert report["frames"] == 200 and report["camera_ids"] == [CAM]


def test_remux_without_edit_stays_authentic(store: Path, keys: Keys, layout: Layout) -> None:
    """Control for the scenarios: the PyAV remux helper alone changes nothing that counts."""
    for seg in layout.segments:
        remux(store / CAM / "segments" / seg.name, lambda pk: pk)
    report = _verify(store, keys.pub)
    assert report["verdict"] == "authentic", _show(report["findings"])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_tampering_is_detected(name: str, store: Path, layout: Layout, other_store: Path,
                               keys: Keys, other_keys: Keys) -> None:
    exp = SCENARIOS[name](Ctx(store, layout, other_store, keys, other_keys))
    report = _verify(store, exp.trust or keys.pub)
    findings = report["findings"]
    assert report["verdict"] == "not_authentic", _show(findings)
    errors = [f for f in findings if f["severity"] == "error"]
    for seq in exp.seqs:
        assert any(f["kind"] in exp.kinds and f["first_frame"] is not None
                   and f["first_frame"] <= seq <= f["last_frame"] for f in errors), (
            f"no {'/'.join(sorted(exp.kinds))} error names seq {seq}:\n{_show(findings)}")
    wrong = [f for f in findings if f["kind"] in exp.not_kinds]
    assert not wrong, f"misclassified:\n{_show(wrong)}"
