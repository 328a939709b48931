"""Tampering with an export bundle is detected, and the findings say what and where
(issue 3, "Done means" 2).

Each scenario takes a private copy of the unpacked bundle exported by
test_export.py, tampers with it the way an attacker would (clip.mp4 remuxed with
PyAV or stock ffmpeg, never re-encoded; evidence.json edited, links recomputed
where that is in an attacker's reach), then recomputes SHA256SUMS with stock
``sha256sum`` and zips the bundle again. ``vidproof verify BUNDLE.zip --trust PUB
--json`` must exit 1 with an error finding of the expected kind that names each
expected frame seq. Truncated and garbage bundles must exit 2 with one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import pytest
from conftest import Keys, ffmpeg, vidproof
from test_export import Exported, exported_60s, frames_of, show

from vidproof.canonical import canonical_bytes, entry_hash
from vidproof.keys import load_signer, public_pem

SUBS_OF_VIDEO = object()  # marker: keep each frame's subtitle with it


# --- clip.mp4 as packets ---------------------------------------------------------------

@dataclass(frozen=True)
class Pkt:
    data: bytes
    pts: int
    dts: int | None
    duration: int
    key: bool


@dataclass
class Clip:
    video: list[Pkt]  # decoding order
    subs: list[Pkt]  # presentation order, empty samples included


def read_clip(path: Path) -> Clip:
    clip = Clip([], [])
    with av.open(str(path)) as c:
        v, s = c.streams.video[0], c.streams.subtitles[0]
        for p in c.demux(v, s):
            if not p.size:
                continue
            assert p.pts is not None
            pkt = Pkt(bytes(p), p.pts, p.dts, p.duration or 0, p.is_keyframe)
            (clip.video if p.stream.index == v.index else clip.subs).append(pkt)
    return clip


def write_clip(path: Path, clip: Clip, template: Path) -> None:
    """Mux the packets, unchanged, into MP4 with the template's two streams."""
    tmp = path.with_name("tampered.mp4")
    with av.open(str(template)) as src, av.open(str(tmp), "w", format="mp4") as out:
        tv, ts = src.streams.video[0], src.streams.subtitles[0]
        ov = out.add_stream_from_template(tv)
        os_ = out.add_stream_from_template(ts, opaque=True)
        ov.time_base, os_.time_base = tv.time_base, ts.time_base
        queue: list[tuple[int, int, int, Pkt, Any, Any]] = [
            (p.dts if p.dts is not None else p.pts, 0, i, p, ov, tv.time_base)
            for i, p in enumerate(clip.video)]
        queue += [(p.pts, 1, i, p, os_, ts.time_base) for i, p in enumerate(clip.subs)]
        for _, _, _, p, stream, tb in sorted(queue, key=lambda q: q[:3]):
            pk = av.Packet(p.data)
            pk.pts, pk.dts, pk.duration, pk.time_base = p.pts, p.dts, p.duration, tb
            pk.is_keyframe, pk.stream = p.key, stream
            out.mux(pk)
    os.replace(tmp, path)


def sub_text(p: Pkt) -> str:
    n = int.from_bytes(p.data[:2], "big")
    return p.data[2:2 + n].decode("utf-8")


def sub_packet(p: Pkt, text: str) -> Pkt:
    data = text.encode("utf-8")
    return replace(p, data=len(data).to_bytes(2, "big") + data)


def nal_units(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each NAL unit of a 4-byte length-prefixed MP4 sample."""
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append((pos + 4, n))
        pos += 4 + n
    assert pos == len(data), "not a length-prefixed sample"
    return out


def flip_vcl_byte(data: bytes) -> bytes:
    """One bit flipped in the middle of the first VCL NAL unit's slice data."""
    for off, n in nal_units(data):
        if 1 <= data[off] & 0x1F <= 5 and n > 32:
            b = bytearray(data)
            b[off + n // 2] ^= 0x01
            return bytes(b)
    raise AssertionError("no VCL NAL unit in the sample")


def annexb_to_sample(data: bytes) -> bytes:
    """An MPEG-TS (Annex B) frame as an MP4 sample: its NAL units, length-prefixed."""
    nals, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        nxt = data.find(b"\x00\x00\x01", pos + 3)
        nal = data[pos + 3:len(data) if nxt < 0 else nxt].rstrip(b"\x00")
        if nal and nal[0] & 0x1F != 9:  # no access-unit delimiter
            nals.append(nal)
        pos = nxt
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


# --- the bundle copy an attacker works on -----------------------------------------------

@dataclass
class Work:
    dir: Path
    exported: Exported
    other_keys: Keys

    @property
    def clip_path(self) -> Path:
        return self.dir / "clip.mp4"

    def evidence(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.dir / "evidence.json").read_text("utf-8"))
        return value

    def save_evidence(self, ev: dict[str, Any]) -> None:
        (self.dir / "evidence.json").write_text(json.dumps(ev, indent=1, ensure_ascii=False)
                                                + "\n", encoding="utf-8")

    def edit_evidence(self, edit: Callable[[dict[str, Any]], None]) -> None:
        ev = self.evidence()
        edit(ev)
        self.save_evidence(ev)

    def seqs(self) -> list[int]:
        """Frame seqs of the pristine clip, in the clip's (decoding) order."""
        return [f["seq"] for f in frames_of(self.exported.evidence["entries"])]

    def edit_clip(self, edit: Callable[[Clip], None]) -> None:
        clip = read_clip(self.clip_path)
        edit(clip)
        write_clip(self.clip_path, clip, self.exported.dir / "clip.mp4")

    def reseal(self) -> Path:
        """Recompute SHA256SUMS with stock sha256sum and zip the bundle again."""
        names = sorted(p.name for p in self.dir.iterdir() if p.name != "SHA256SUMS")
        p = subprocess.run(["sha256sum", *names], cwd=self.dir, capture_output=True,
                           text=True, check=True, timeout=60)
        (self.dir / "SHA256SUMS").write_text(p.stdout)
        out = self.dir.with_suffix(".zip")
        with zipfile.ZipFile(out, "w") as z:
            for f in sorted(self.dir.iterdir()):
                z.write(f, f.name)
        return out


@dataclass(frozen=True)
class Expect:
    kinds: frozenset[str]
    seqs: tuple[int, ...] = ()
    not_kinds: frozenset[str] = field(default_factory=frozenset)
    message: str = ""  # a word the finding's message must contain (findings without frames)


def expect(kinds: str, seqs: list[int] | tuple[int, ...] = (), *, not_kinds: str = "",
           message: str = "") -> Expect:
    return Expect(frozenset(kinds.split()), tuple(seqs), frozenset(not_kinds.split()), message)


MEDIA_KINDS = "frame_modified frame_missing frame_inserted frame_reordered frame_duplicated"


def drop_frames(clip: Clip, indexes: set[int]) -> None:
    """Remove frames, and the subtitles shown with them, as a tidy attacker would."""
    gone = {clip.video[i].pts for i in indexes}
    clip.video[:] = [p for i, p in enumerate(clip.video) if i not in indexes]
    clip.subs[:] = [s for s in clip.subs if s.pts not in gone]


def insert_frame(clip: Clip, after: int, data: bytes) -> None:
    """A frame slipped in between frames ``after`` and ``after + 1``, with a subtitle."""
    a, b = clip.video[after], clip.video[after + 1]
    mid = (a.pts + b.pts) // 2
    clip.video.insert(after + 1, Pkt(data, mid, mid, b.pts - mid, False))
    sub = next(s for s in clip.subs if s.pts == a.pts)
    clip.subs.append(replace(sub, pts=mid, dts=mid, duration=b.pts - mid))
    clip.subs.sort(key=lambda s: s.pts)


# --- scenarios: clip.mp4 -----------------------------------------------------------------

def frame_changed(w: Work) -> Expect:
    k = 60
    w.edit_clip(lambda c: c.video.__setitem__(
        k, replace(c.video[k], data=flip_vcl_byte(c.video[k].data))))
    return expect("frame_modified", [w.seqs()[k]],
                  not_kinds="frame_missing frame_inserted frame_reordered")


def keyframe_changed(w: Work) -> Expect:
    k = _gop_starts(w)[2]
    w.edit_clip(lambda c: c.video.__setitem__(
        k, replace(c.video[k], data=flip_vcl_byte(c.video[k].data))))
    assert w.seqs()[k] == frames_of(w.exported.evidence["entries"])[k]["seq"]
    return expect("frame_modified", [w.seqs()[k]],
                  not_kinds="frame_missing frame_inserted frame_reordered")


def frame_dropped(w: Work) -> Expect:
    k = 100
    w.edit_clip(lambda c: drop_frames(c, {k}))
    return expect("frame_missing", [w.seqs()[k]], not_kinds="frame_modified frame_inserted")


def frame_dropped_by_ffmpeg(w: Work) -> Expect:
    """Stock ffmpeg drops one packet (no re-encoding); the subtitles stay as they were."""
    k = 130
    out = w.dir.parent / "dropped.mp4"
    ffmpeg("-i", w.clip_path, "-map", "0", "-c", "copy", "-bsf:v",
           f"noise=drop=eq(n\\,{k})", out)
    os.replace(out, w.clip_path)
    return expect("frame_missing", [w.seqs()[k]], not_kinds="frame_modified frame_inserted")


def frame_duplicated(w: Work) -> Expect:
    k = 50
    w.edit_clip(lambda c: insert_frame(c, k, c.video[k].data))
    return expect("frame_duplicated", [w.seqs()[k]], not_kinds="frame_modified frame_missing")


def frame_from_elsewhere(w: Work) -> Expect:
    """A genuine, signed frame of the same camera from outside the exported window."""
    k = 70
    seg = sorted((w.exported.store / "cam1" / "segments").glob("*.ts"))[0]
    with av.open(str(seg)) as c:
        s = c.streams.video[0]
        foreign = [bytes(p) for p in c.demux(s) if p.size][12]
    w.edit_clip(lambda c: insert_frame(c, k, annexb_to_sample(foreign)))
    return expect("frame_inserted", [w.seqs()[k]], not_kinds="frame_modified frame_missing")


def frames_swapped(w: Work) -> Expect:
    k = 80

    def edit(c: Clip) -> None:
        a, b = c.video[k], c.video[k + 1]
        c.video[k], c.video[k + 1] = replace(a, data=b.data), replace(b, data=a.data)

    w.edit_clip(edit)
    return expect("frame_reordered", [w.seqs()[k], w.seqs()[k + 1]],
                  not_kinds="frame_modified frame_missing frame_inserted")


def timestamps_shifted(w: Work) -> Expect:
    """Ten frames shown 20 ms late (PyAV remux); their subtitles keep their times."""
    ks = range(120, 130)

    def edit(c: Clip) -> None:
        for k in ks:
            p = c.video[k]
            assert p.dts is not None
            c.video[k] = replace(p, pts=p.pts + 1800, dts=p.dts + 1800)

    w.edit_clip(edit)
    return expect("timestamp_modified", [w.seqs()[k] for k in ks], not_kinds=MEDIA_KINDS)


def timestamps_rewritten_by_ffmpeg(w: Work) -> Expect:
    """Stock ffmpeg's setts moves every frame from the 150th on by one second."""
    out = w.dir.parent / "setts.mp4"
    ffmpeg("-i", w.clip_path, "-map", "0", "-c", "copy", "-bsf:v",
           "setts=ts=if(gte(N\\,150)\\,TS+90000\\,TS)", out)
    os.replace(out, w.clip_path)
    seqs = w.seqs()
    return expect("timestamp_modified", [seqs[150], seqs[-1]], not_kinds=MEDIA_KINDS)


# --- scenarios: subtitles --------------------------------------------------------------

def subtitle_time_changed(w: Work) -> Expect:
    k = 90

    def edit(c: Clip) -> None:
        i = next(i for i, s in enumerate(c.subs) if s.pts == c.video[k].pts)
        text = sub_text(c.subs[i])
        hh = text[11:13]
        c.subs[i] = sub_packet(c.subs[i], text[:11] + f"{(int(hh) + 1) % 24:02d}" + text[13:])

    w.edit_clip(edit)
    return expect("subtitle_mismatch", [w.seqs()[k]], not_kinds=MEDIA_KINDS)


def subtitle_local_time_changed(w: Work) -> Expect:
    k = 91

    def edit(c: Clip) -> None:
        i = next(i for i, s in enumerate(c.subs) if s.pts == c.video[k].pts)
        text = sub_text(c.subs[i])
        j = text.index("local ") + 6
        hh = text[j:j + 2]
        c.subs[i] = sub_packet(c.subs[i], text[:j] + f"{(int(hh) + 1) % 24:02d}" + text[j + 2:])

    w.edit_clip(edit)
    return expect("subtitle_mismatch", [w.seqs()[k]], not_kinds=MEDIA_KINDS)


def subtitle_zone_shifted(w: Work) -> Expect:
    """Local time and offset both moved by one hour, consistently: only the signed list
    of offsets used by the export tells that the subtitle lies about the local zone."""
    k = 92

    def edit(c: Clip) -> None:
        i = next(i for i, s in enumerate(c.subs) if s.pts == c.video[k].pts)
        text = sub_text(c.subs[i])
        j = text.index("local ") + 6
        hh = int(text[j:j + 2])
        m = re.search(r" ([+-])(\d\d):(\d\d)\n", text)
        assert m is not None
        minutes = (int(m.group(2)) * 60 + int(m.group(3))) * (-1 if m.group(1) == "-" else 1)
        minutes += 60
        sign = "-" if minutes < 0 else "+"
        new = (text[:j] + f"{(hh + 1) % 24:02d}" + text[j + 2:m.start()]
               + f" {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}\n" + text[m.end():])
        c.subs[i] = sub_packet(c.subs[i], new)

    w.edit_clip(edit)
    return expect("subtitle_mismatch", [w.seqs()[k]], not_kinds=MEDIA_KINDS)


def subtitle_location_changed(w: Work) -> Expect:
    """Every subtitle now places the camera elsewhere; time and camera id are kept."""

    def edit(c: Clip) -> None:
        c.subs[:] = [sub_packet(s, sub_text(s).replace("12 rue de Rivoli", "3 quai d'Orsay"))
                     if sub_text(s) else s for s in c.subs]

    w.edit_clip(edit)
    seqs = w.seqs()
    return expect("subtitle_mismatch", [seqs[0], seqs[-1]], not_kinds=MEDIA_KINDS)


def subtitle_removed(w: Work) -> Expect:
    k = 33

    def edit(c: Clip) -> None:
        pts = c.video[k].pts
        c.subs[:] = [s for s in c.subs if s.pts != pts]

    w.edit_clip(edit)
    return expect("subtitle_mismatch subtitle_missing", [w.seqs()[k]], not_kinds=MEDIA_KINDS)


def subtitle_track_removed(w: Work) -> Expect:
    out = w.dir.parent / "nosubs.mp4"
    ffmpeg("-i", w.clip_path, "-map", "0:v", "-c", "copy", out)
    os.replace(out, w.clip_path)
    return expect("subtitles_missing", message="subtitle")


# --- scenarios: evidence.json ----------------------------------------------------------

def _frame(ev: dict[str, Any], k: int) -> dict[str, Any]:
    return frames_of(ev["entries"])[k]


def rechain(ev: dict[str, Any], ctx_map: dict[str, str] | None = None) -> None:
    """What an attacker without the key can do: recompute every prev and ctx link.
    ``ctx_map`` maps the hashes of edited contexts carried before the anchor."""
    head, ctx = ev["anchor"]["head"], None
    for e in ev["entries"]:
        e["prev"] = head
        if e["type"] != "context":
            e["ctx"] = ctx if ctx is not None else (ctx_map or {}).get(e["ctx"], e["ctx"])
        head = entry_hash(e)
        if e["type"] == "context":
            ctx = head


def frame_time_edited(w: Work) -> Expect:
    k = 40
    w.edit_evidence(lambda ev: _frame(ev, k).__setitem__("utc_ns", _frame(ev, k)["utc_ns"]
                                                         + 3_600_000_000_000))
    return expect("record_modified", [w.seqs()[k]])


def frame_time_edited_rechained(w: Work) -> Expect:
    k = 40

    def edit(ev: dict[str, Any]) -> None:
        _frame(ev, k)["utc_ns"] += 3_600_000_000_000
        rechain(ev)

    w.edit_evidence(edit)
    return expect("checkpoint_mismatch", [w.seqs()[k]], not_kinds="record_modified")


def frame_digest_edited(w: Work) -> Expect:
    k = 41

    def edit(ev: dict[str, Any]) -> None:
        _frame(ev, k)["digest"] = "ab" * 32
        rechain(ev)

    w.edit_evidence(edit)
    return expect("checkpoint_mismatch frame_modified", [w.seqs()[k]])


def frame_record_removed(w: Work) -> Expect:
    k = 42

    def edit(ev: dict[str, Any]) -> None:
        ev["entries"].remove(_frame(ev, k))

    w.edit_evidence(edit)
    return expect("records_missing", [w.seqs()[k]])


def context_location_edited(w: Work) -> Expect:
    def edit(ev: dict[str, Any]) -> None:
        loc = ev["contexts"][0]["context"]["location"]
        loc.update(label="3 quai d'Orsay, Paris", lat="48.8625", lon="2.3163")

    w.edit_evidence(edit)
    seqs = w.seqs()
    return expect("context_mismatch", [seqs[0], seqs[-1]])


def camera_renamed(w: Work) -> Expect:
    w.edit_evidence(lambda ev: ev.__setitem__("camera", "cam9"))
    seqs = w.seqs()
    return expect("wrong_camera", [seqs[0], seqs[-1]])


def camera_renamed_everywhere(w: Work) -> Expect:
    """The clip passed off as another camera's: every camera field renamed, links redone."""

    def edit(ev: dict[str, Any]) -> None:
        ev["camera"] = ev["export"]["camera"] = "cam9"
        for e in [ev["anchor"], *ev["contexts"], *ev["entries"], *ev["checkpoints"]]:
            e["camera"] = "cam9"
            if e["type"] == "context":
                e["context"]["camera_id"] = "cam9"
        ctx_map = {}
        for c in ev["contexts"]:
            pristine = dict(c, camera="cam1", context=dict(c["context"], camera_id="cam1"))
            ctx_map[entry_hash(pristine)] = entry_hash(c)
        rechain(ev, ctx_map)

    w.edit_evidence(edit)
    seqs = w.seqs()
    return expect("bad_signature checkpoint_mismatch", [seqs[0], seqs[-1]])


def anchor_head_edited(w: Work) -> Expect:
    w.edit_evidence(lambda ev: ev["anchor"].__setitem__("head", "cd" * 32))
    return expect("record_modified bad_signature anchor_invalid", [w.seqs()[0]])


def anchor_seq_edited(w: Work) -> Expect:
    """The starting checkpoint claims an earlier seq: its signature no longer holds."""
    a = w.exported.evidence["anchor"]["seq"]
    w.edit_evidence(lambda ev: ev["anchor"].__setitem__("seq", a - 1))
    return expect("bad_signature", [a - 1], message=f"checkpoint at seq {a - 1}")


def checkpoint_sig_edited(w: Work) -> Expect:
    ev0 = w.exported.evidence
    k = len(ev0["checkpoints"]) // 2
    target, before = ev0["checkpoints"][k], ev0["checkpoints"][k - 1]

    def edit(ev: dict[str, Any]) -> None:
        sig = bytearray(bytes.fromhex(ev["checkpoints"][k]["sig"]))
        sig[7] ^= 0x40
        ev["checkpoints"][k]["sig"] = sig.hex()

    w.edit_evidence(edit)
    return expect("bad_signature", [before["seq"] + 1, target["seq"]])


def checkpoint_removed(w: Work) -> Expect:
    """The finding names the entries the removed checkpoint and the next one covered."""
    k = 3
    cps = w.exported.evidence["checkpoints"]
    w.edit_evidence(lambda ev: ev["checkpoints"].pop(k))
    return expect("checkpoint_chain", [cps[k - 1]["seq"] + 1, cps[k]["seq"], cps[k + 1]["seq"]])


def _export_field(name: str, value: Any) -> Callable[[Work], Expect]:
    def scenario(w: Work) -> Expect:
        w.edit_evidence(lambda ev: ev["export"].__setitem__(name, value))
        return expect("bad_signature", message="export")

    scenario.__name__ = f"export_{name}_edited"
    return scenario


def public_key_swapped(w: Work) -> Expect:
    """Only the public key in evidence.json replaced by another."""
    other = w.other_keys.pub.read_text()
    w.edit_evidence(lambda ev: ev.__setitem__("public_key", other))
    return expect("untrusted_key public_key_mismatch", message="key")


def evidence_field_added(w: Work) -> Expect:
    w.edit_evidence(lambda ev: ev.__setitem__("note", "verified by the lab"))
    return expect("evidence_invalid", message="note")


def clip_name_edited(w: Work) -> Expect:
    w.edit_evidence(lambda ev: ev.__setitem__("clip", "other.mp4"))
    return expect("evidence_invalid", message="clip")


def resign_with(ev: dict[str, Any], key: Path) -> None:
    """Everything re-signed by another key, every link recomputed: a complete forgery."""
    signer = load_signer(key)

    def sign(obj: dict[str, Any]) -> None:
        obj["key"] = signer.key_id
        body = {k: v for k, v in obj.items() if k != "sig"}
        obj["sig"] = signer.sign(canonical_bytes(body)).hex()

    ctx_map = {}
    for c in ev["contexts"]:
        old = entry_hash(c)
        c["context"]["key"]["id"] = signer.key_id
        ctx_map[old] = entry_hash(c)
    for e in ev["entries"]:
        if e["type"] == "context":
            e["context"]["key"]["id"] = signer.key_id
    rechain(ev, ctx_map)
    sign(ev["anchor"])
    heads = {e["seq"]: entry_hash(e) for e in ev["entries"]}
    prev = entry_hash(ev["anchor"])
    for cp in ev["checkpoints"]:
        cp["head"], cp["prev_checkpoint"] = heads[cp["seq"]], prev
        sign(cp)
        prev = entry_hash(cp)
    ev["export"]["anchor"] = entry_hash(ev["anchor"])
    ev["export"]["end"] = prev
    sign(ev["export"])
    ev["public_key"] = public_pem(signer.public)


def resigned_by_other_key(w: Work) -> Expect:
    w.edit_evidence(lambda ev: resign_with(ev, w.other_keys.key))
    seqs = w.seqs()
    return expect("untrusted_key", [seqs[0], seqs[len(seqs) // 2], seqs[-1]])


# --- scenarios: frames removed at the start or the end ----------------------------------

def _gop_starts(w: Work) -> list[int]:
    return [i for i, f in enumerate(frames_of(w.exported.evidence["entries"])) if f["key"]]


def start_cut_from_clip(w: Work) -> Expect:
    cut = _gop_starts(w)[1]
    w.edit_clip(lambda c: drop_frames(c, set(range(cut))))
    return expect("frame_missing", w.seqs()[:cut], not_kinds="frame_modified frame_inserted")


def end_cut_from_clip(w: Work) -> Expect:
    cut = _gop_starts(w)[-1]
    n = len(w.seqs())
    w.edit_clip(lambda c: drop_frames(c, set(range(cut, n))))
    return expect("frame_missing", w.seqs()[cut:], not_kinds="frame_modified frame_inserted")


def start_cut_with_records(w: Work) -> Expect:
    """The first GOP removed from the clip and its records from the evidence."""
    cut = _gop_starts(w)[1]
    gone = set(w.seqs()[:cut])
    w.edit_clip(lambda c: drop_frames(c, set(range(cut))))

    def edit(ev: dict[str, Any]) -> None:
        ev["entries"] = [e for e in ev["entries"] if e["seq"] not in gone]
        ev["checkpoints"] = [c for c in ev["checkpoints"] if c["seq"] >= max(gone)]

    w.edit_evidence(edit)
    return expect("records_missing frame_missing", w.seqs()[:cut])


def start_cut_anchor_moved(w: Work) -> Expect:
    """The first GOP removed, its records dropped, and the checkpoint before the new first
    frame made the anchor: the chain from it is perfectly valid, only shorter."""
    cut = _gop_starts(w)[1]
    gone = set(w.seqs()[:cut])
    w.edit_clip(lambda c: drop_frames(c, set(range(cut))))

    def edit(ev: dict[str, Any]) -> None:
        first_kept = w.seqs()[cut]
        new_anchor = [c for c in ev["checkpoints"] if c["seq"] < first_kept][-1]
        ev["anchor"] = new_anchor
        ev["checkpoints"] = [c for c in ev["checkpoints"] if c["seq"] > new_anchor["seq"]]
        ev["entries"] = [e for e in ev["entries"]
                         if e["seq"] > new_anchor["seq"] and e["seq"] not in gone]

    w.edit_evidence(edit)
    return expect("frame_missing export_mismatch", w.seqs()[:cut])


def end_cut_with_records(w: Work) -> Expect:
    """The last GOP removed with its records and the checkpoints after the new last frame:
    the new last frame is signed by the checkpoint before the removed keyframe."""
    cut = _gop_starts(w)[-1]
    seqs = w.seqs()
    last_kept = seqs[cut - 1]
    w.edit_clip(lambda c: drop_frames(c, set(range(cut, len(seqs)))))

    def edit(ev: dict[str, Any]) -> None:
        ev["entries"] = [e for e in ev["entries"] if e["seq"] <= last_kept]
        ev["checkpoints"] = [c for c in ev["checkpoints"] if c["seq"] <= last_kept]
        assert ev["checkpoints"][-1]["seq"] == last_kept

    w.edit_evidence(edit)
    return expect("frame_missing export_mismatch", seqs[cut:])


# --- scenarios: the other files ----------------------------------------------------------

def report_edited(w: Work) -> Expect:
    """The certificate a judge reads now places the camera elsewhere."""
    page = w.dir / "report.html"
    text = page.read_text("utf-8")
    assert "12 rue de Rivoli" in text
    page.write_text(text.replace("12 rue de Rivoli", "3 quai d'Orsay"), encoding="utf-8")
    return expect("page_modified", message="report.html")


def player_edited(w: Work) -> Expect:
    page = w.dir / "player.html"
    page.write_text(page.read_text("utf-8").replace("</body>", "<!-- x --></body>"),
                    encoding="utf-8")
    return expect("page_modified", message="player.html")


def page_removed(w: Work) -> Expect:
    (w.dir / "player.html").unlink()
    return expect("file_missing", message="player.html")


def file_added(w: Work) -> Expect:
    (w.dir / "certificate.html").write_text("<p>Authentic, signed: the police lab.</p>")
    return expect("file_unexpected", message="certificate.html")


def clip_removed(w: Work) -> Expect:
    w.clip_path.unlink()
    seqs = w.seqs()
    return expect("frame_missing", [seqs[0], seqs[-1]])


def sums_file_removed(w: Work) -> Expect:
    return expect("sums_missing", message="SHA256SUMS")


SCENARIOS: dict[str, Callable[[Work], Expect]] = {f.__name__: f for f in (
    frame_changed, keyframe_changed, frame_dropped, frame_dropped_by_ffmpeg, frame_duplicated,
    frame_from_elsewhere, frames_swapped, timestamps_shifted, timestamps_rewritten_by_ffmpeg,
    subtitle_time_changed, subtitle_local_time_changed, subtitle_zone_shifted,
    subtitle_location_changed,
    subtitle_removed, subtitle_track_removed,
    frame_time_edited, frame_time_edited_rechained, frame_digest_edited, frame_record_removed,
    context_location_edited, camera_renamed, camera_renamed_everywhere, anchor_head_edited,
    anchor_seq_edited, checkpoint_sig_edited, checkpoint_removed,
    _export_field("case", "PV-2026-9999"), _export_field("officer", "Someone Else"),
    _export_field("utc_ns", 1), _export_field("first_seq", 0),
    public_key_swapped, evidence_field_added, clip_name_edited, resigned_by_other_key,
    start_cut_from_clip, end_cut_from_clip, start_cut_with_records, start_cut_anchor_moved,
    end_cut_with_records, report_edited, player_edited, page_removed, file_added, clip_removed,
    sums_file_removed,
)}


# --- the tests -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Exported:
    return exported_60s(tmp_path_factory, keys)


@pytest.fixture
def work(exported: Exported, other_keys: Keys, tmp_path: Path) -> Work:
    d = tmp_path / "bundle"
    shutil.copytree(exported.dir, d)
    return Work(d, exported, other_keys)


def verify(path: Path, trust: Path) -> tuple[int, dict[str, Any]]:
    r = vidproof("verify", path, "--trust", trust, "--json")
    assert r.code in (0, 1), f"exit {r.code}: {r.err}"
    assert "Traceback" not in r.err
    report: dict[str, Any] = r.json
    assert (r.code == 0) == (report["verdict"] == "authentic")
    return r.code, report


def test_resealed_bundle_is_authentic(work: Work) -> None:
    """Control: evidence.json rewritten by the attacker's JSON tools, SHA256SUMS
    recomputed and the bundle zipped again: nothing that counts has changed."""
    work.edit_evidence(lambda ev: None)
    code, report = verify(work.reseal(), work.exported.keys.pub)
    assert code == 0, show(report["findings"])


def test_remuxed_clip_differs_only_by_its_signed_file_digest(work: Work) -> None:
    """Control for the clip scenarios: the PyAV remux helper alone keeps every frame,
    timestamp and subtitle; only the file's SHA-256, signed at export, tells."""
    work.edit_clip(lambda c: None)
    code, report = verify(work.reseal(), work.exported.keys.pub)
    bad = [f for f in report["findings"] if f["severity"] != "info"]
    assert code == 1
    assert [f["kind"] for f in bad] == ["export_mismatch"], show(bad)
    assert "clip.mp4" in bad[0]["message"]


def test_complete_forgery_is_consistent_under_its_own_key(work: Work) -> None:
    """Control for resigned_by_other_key: the forgery only fails for its key."""
    work.edit_evidence(lambda ev: resign_with(ev, work.other_keys.key))
    code, report = verify(work.reseal(), work.other_keys.pub)
    assert code == 0, show(report["findings"])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_tampered_bundle_is_not_authentic(name: str, work: Work) -> None:
    exp = SCENARIOS[name](work)
    if name == "sums_file_removed":
        work.reseal()
        (work.dir / "SHA256SUMS").unlink()
        bundle = work.dir.with_suffix(".zip")
        bundle.unlink()
        with zipfile.ZipFile(bundle, "w") as z:
            for f in sorted(work.dir.iterdir()):
                z.write(f, f.name)
    else:
        bundle = work.reseal()
        check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=work.dir,
                               capture_output=True, timeout=60)
        assert check.returncode == 0  # the attacker's bundle passes sha256sum -c
    code, report = verify(bundle, work.exported.keys.pub)
    findings = report["findings"]
    assert code == 1, show(findings)
    errors = [f for f in findings if f["severity"] in ("error", "warning")]
    relevant = [f for f in errors if f["kind"] in exp.kinds]
    assert relevant, f"no {'/'.join(sorted(exp.kinds))} finding:\n{show(findings)}"
    for seq in exp.seqs:
        assert any(f["first_frame"] is not None and f["first_frame"] <= seq <= f["last_frame"]
                   for f in relevant), (
            f"no {'/'.join(sorted(exp.kinds))} finding names seq {seq}:\n{show(findings)}")
    if exp.message:
        assert any(exp.message.lower() in f["message"].lower() for f in relevant), show(findings)
    wrong = [f for f in findings if f["kind"] in exp.not_kinds]
    assert not wrong, f"misclassified:\n{show(wrong)}"


# --- unreadable bundles: exit 2, one line -----------------------------------------------

def _truncated(exported: Exported, d: Path) -> Path:
    data = exported.zip.read_bytes()
    (d / "half.zip").write_bytes(data[:len(data) // 2])
    return d / "half.zip"


def _tail_cut(exported: Exported, d: Path) -> Path:
    data = exported.zip.read_bytes()
    (d / "cut.zip").write_bytes(data[:-10])
    return d / "cut.zip"


def _garbage(exported: Exported, d: Path) -> Path:
    (d / "garbage.zip").write_bytes(os.urandom(50_000))
    return d / "garbage.zip"


def _empty(exported: Exported, d: Path) -> Path:
    (d / "empty.zip").write_bytes(b"")
    return d / "empty.zip"


def _member_damaged(exported: Exported, d: Path) -> Path:
    """Central directory intact, a stored member's bytes overwritten (CRC mismatch)."""
    data = bytearray(exported.zip.read_bytes())
    with zipfile.ZipFile(exported.zip) as z:
        info = z.getinfo("clip.mp4")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 5000:start + 5100] = bytes(100)
    (d / "damaged.zip").write_bytes(bytes(data))
    return d / "damaged.zip"


def _not_a_bundle_zip(exported: Exported, d: Path) -> Path:
    with zipfile.ZipFile(d / "other.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    return d / "other.zip"


def _garbage_evidence(exported: Exported, d: Path) -> Path:
    b = d / "bundle"
    shutil.copytree(exported.dir, b)
    (b / "evidence.json").write_bytes(os.urandom(3000))
    return b


@pytest.mark.parametrize("make", [_truncated, _tail_cut, _garbage, _empty, _member_damaged,
                                  _not_a_bundle_zip, _garbage_evidence],
                         ids=lambda f: f.__name__.strip("_"))
def test_unreadable_bundle_exits_2_with_one_line(make: Callable[[Exported, Path], Path],
                                                 exported: Exported, tmp_path: Path) -> None:
    path = make(exported, tmp_path)
    r = vidproof("verify", path, "--trust", exported.keys.pub)
    assert r.code == 2, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("vidproof: error:"), r.err
    assert r.out == ""
