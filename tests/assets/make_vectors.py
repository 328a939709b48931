#!/usr/bin/env python3
"""Regenerate the vidproof test vectors in this directory (see README.md).

The coded frames come from ``clip.h264``, a 4-s, 64x64, 10-fps H.264 clip
(Annex B, one access unit per frame, a keyframe every 10 frames, SPS/PPS
repeated before each keyframe). It is checked in; ``--encode`` makes it again
with libx264 through PyAV. Everything else is rebuilt from it, deterministically,
with the vidproof library itself (chain, store writers, digest): fixed Ed25519
keys (the RFC 8032 section 7.1 test keys), fixed capture times, no host names.
Ed25519 signatures are deterministic, so the evidence files come out
byte-identical on every run.

Each ``store_<scenario>/`` is a store as ``vidproof record`` leaves it, tampered
with as its name says; ``expected.json`` gives the verdict, exit code and
findings that ``vidproof verify store_<scenario> --trust vector-key.pub`` must
report. The expectations are derived here from what each scenario did, not
from running the verifier.

Usage: python tests/assets/make_vectors.py [--out DIR] [--encode]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vidproof.canonical import canonical_bytes
from vidproof.chain import Chain
from vidproof.digest import FrameHasher
from vidproof.keys import Signer, public_pem
from vidproof.model import Location
from vidproof.store import (
    EVIDENCE,
    EvidenceWriter,
    SegmentWriter,
    camera_dir,
    next_segment_path,
    recover,
)

HERE = Path(__file__).resolve().parent
CLIP = "clip.h264"
PUBLIC_KEY = "vector-key.pub"
EXPECTED = "expected.json"

# RFC 8032 section 7.1, TEST 1 and TEST 2 secret keys: public, well-known test keys.
VECTOR_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
OTHER_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")

CAMERA = "cam1"
LOCATION = Location.parse("Place de l'Hôtel de Ville, Paris;48.8566,2.3522")
WIDTH, HEIGHT, FPS, GOP, CLIP_FRAMES = 64, 64, 10, 10, 40
TIME_BASE = Fraction(1, 90000)
TICKS = 90000 // FPS
BASE_UTC_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z: the first frame's capture time
FRAME_NS = 1_000_000_000 // FPS
SEGMENT_NS = 2_000_000_000  # as with --segment-seconds 2


@dataclass(frozen=True)
class Frame:
    index: int
    data: bytes
    key: bool

    @property
    def pts(self) -> int:
        return self.index * TICKS

    @property
    def utc_ns(self) -> int:
        return BASE_UTC_NS + self.index * FRAME_NS


# --- the clip ----------------------------------------------------------------------------------

def encode_clip(path: Path) -> None:
    """Encode FFmpeg's testsrc2 with libx264, single-threaded, like the built-in test camera."""
    graph = av.open(f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}", format="lavfi")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.framerate = Fraction(FPS)
    enc.gop_size = GOP
    enc.max_b_frames = 0
    enc.thread_count = 1
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "35",
                   "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:"
                                  "repeat-headers=1:threads=1"}
    packets: list[bytes] = []
    try:
        for count, frame in enumerate(graph.decode(video=0)):
            if count >= CLIP_FRAMES:
                break
            frame.pts, frame.time_base = count, Fraction(1, FPS)
            frame.pict_type = av.video.frame.PictureType.NONE
            packets += [bytes(p) for p in enc.encode(frame)]
        packets += [bytes(p) for p in enc.encode(None)]
    finally:
        graph.close()
    path.write_bytes(b"".join(packets))


def read_clip(path: Path) -> list[Frame]:
    with av.open(str(path), format="h264") as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        frames = [Frame(i, bytes(p), bool(p.is_keyframe)) for i, p in enumerate(packets)]
    if len(frames) != CLIP_FRAMES or [f.index for f in frames if f.key] != list(
            range(0, CLIP_FRAMES, GOP)):
        raise SystemExit(f"{path}: expected {CLIP_FRAMES} frames with a keyframe every {GOP}")
    return frames


# --- a recorder that mirrors vidproof.capture.worker.Recorder, with a fixed clock ----------------

def context(signer: Signer) -> dict[str, Any]:
    return {
        "camera_id": CAMERA,
        "location": LOCATION.to_json(),
        "mode": "passthrough",
        "source": CLIP,
        "stream": {"codec": "h264", "width": WIDTH, "height": HEIGHT,
                   "time_base": [TIME_BASE.numerator, TIME_BASE.denominator],
                   "fps": [FPS, 1]},
        "clock": {"kind": "media",
                  "description": "capture time = recording start + stream timestamp"},
        "key": {"alg": signer.alg, "id": signer.key_id},
        "recorder": {"software": "tests/assets/make_vectors.py", "host": "test-vectors"},
    }


Writer = Callable[[Frame], list[Frame]]


class VectorRecorder:
    """One recorder run over a list of frames, written the way the capture worker writes.

    ``media`` maps each frame to what is actually written to the segment (the
    tamper hook); the evidence always records the frame as captured.
    """

    def __init__(self, store: Path, signer: Signer, start_utc: int,
                 media: Writer = lambda f: [f]) -> None:
        self.cam_dir = camera_dir(store, CAMERA)
        self.cam_dir.mkdir(parents=True, exist_ok=True)
        self.state = recover(self.cam_dir)
        self.evidence = EvidenceWriter(self.cam_dir / EVIDENCE)
        self.signer = signer
        self.chain = Chain(CAMERA, signer, self.evidence, self.state, self._sync_media)
        self.media = media
        self.segment: SegmentWriter | None = None
        self.segment_start = 0
        self.hasher = FrameHasher("h264", None)
        self.seq: dict[int, int] = {}  # frame index -> seq
        self.segments: list[str] = []
        self._connect(start_utc)
        detail: dict[str, Any] = {"previous_run": self.state.previous_run}
        if self.state.unsigned_file:
            detail.update(unsigned_entries=self.state.unsigned_entries,
                          unsigned_file=self.state.unsigned_file,
                          unsigned_sha256=self.state.unsigned_sha256)
        if self.state.open_segment:
            detail["interrupted_segment"] = self.state.open_segment
        self.start_seq = self.chain.seq
        self.chain.event("recorder_start", start_utc, detail)
        self.chain.checkpoint(start_utc)

    def _sync_media(self) -> None:
        if self.segment is not None:
            self.segment.sync()

    def _close_segment(self) -> None:
        if self.segment is not None:
            self.segment.close()
            self.segment = None

    def _connect(self, utc: int) -> None:
        self.chain.checkpoint(utc)
        self._close_segment()
        self.hasher = FrameHasher("h264", None)
        self.chain.context(context(self.signer), utc)

    def frame(self, f: Frame) -> None:
        if self.chain.due(f.utc_ns, f.key):
            self.chain.checkpoint(f.utc_ns)
        if f.key and (self.segment is None or f.utc_ns - self.segment_start >= SEGMENT_NS):
            self._close_segment()
            path = next_segment_path(self.cam_dir)
            self.segment = SegmentWriter(path, None, "h264", TIME_BASE)
            self.segments.append(path.name)
            self.segment_start = f.utc_ns
        assert self.segment is not None, "a run starts on a keyframe"
        fd = self.hasher.digest(f.data)
        for w in self.media(f):
            self.segment.write(w.data, f.pts, f.pts, TIME_BASE, w.key)
        self.seq[f.index] = self.chain.frame(
            utc_ns=f.utc_ns, pts=f.pts, dts=f.pts, tb=(TIME_BASE.numerator, TIME_BASE.denominator),
            key=f.key, digest=fd.digest, params=fd.params, cam_utc_ns=None)

    def camera_lost(self, utc: int, reason: str) -> int:
        self.chain.checkpoint(utc)
        self._close_segment()
        seq = self.chain.seq
        self.chain.event("camera_lost", utc, {"reason": reason})
        self.chain.checkpoint(utc)
        return seq

    def camera_back(self, utc: int, lost_utc: int) -> int:
        self._connect(utc)
        seq = self.chain.seq
        self.chain.event("camera_back", utc, {"lost_utc_ns": lost_utc, "gap_ns": utc - lost_utc,
                                              "skipped_before_keyframe": 0})
        self.chain.checkpoint(utc)
        return seq

    def stop(self, utc: int, frames: int) -> None:
        self.chain.event("recorder_stop", utc, {"reason": "source ended", "frames": frames})
        self.chain.checkpoint(utc)
        self._close_segment()
        self.evidence.close()

    def crash(self) -> None:
        """Stop without signing what came after the last checkpoint (as a SIGKILL would)."""
        self._close_segment()
        self.evidence.close()


def record(store: Path, signer: Signer, frames: list[Frame],
           media: Writer = lambda f: [f]) -> VectorRecorder:
    rec = VectorRecorder(store, signer, frames[0].utc_ns, media)
    for f in frames:
        rec.frame(f)
    rec.stop(frames[-1].utc_ns + FRAME_NS, len(frames))
    return rec


# --- scenarios -------------------------------------------------------------------------------------

def iso(ns: int) -> str:
    """ISO 8601 UTC with milliseconds, as the verifier's JSON report writes times."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000 // 1_000_000:03d}Z"


@dataclass
class Scenario:
    description: str
    frames: list[Frame]  # the frames whose records are in the evidence
    findings: list[dict[str, Any]] = field(default_factory=list)
    trust: str = PUBLIC_KEY

    def expect(self, kind: str, severity: str, first: int | None,
               last: int | None = None) -> None:
        self.findings.append({"kind": kind, "severity": severity, "first_frame": first,
                              "last_frame": first if last is None else last})

    def to_json(self) -> dict[str, Any]:
        blocking = any(f["severity"] in ("error", "warning") for f in self.findings)
        findings = sorted(self.findings, key=lambda f: (
            f["kind"], -1 if f["first_frame"] is None else f["first_frame"],
            -1 if f["last_frame"] is None else f["last_frame"]))
        return {"description": self.description, "trust": self.trust,
                "verdict": "not_authentic" if blocking else "authentic",
                "exit_code": 1 if blocking else 0, "camera_ids": [CAMERA],
                "frames": len(self.frames), "first_utc": iso(self.frames[0].utc_ns),
                "last_utc": iso(self.frames[-1].utc_ns), "findings": findings}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _write_lines(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(canonical_bytes(e) + b"\n" for e in entries))


def _checkpoints(path: Path) -> list[dict[str, Any]]:
    return [e for e in _lines(path) if e["type"] == "checkpoint"]


def _flip_in_file(path: Path, frame: Frame) -> None:
    """Change one byte of a frame's slice data where it sits in the segment file."""
    data = path.read_bytes()
    needle = frame.data[-24:-8]  # inside the slice NAL unit, near its end
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        raise SystemExit(f"cannot locate frame {frame.index} uniquely in {path}")
    pos = at + 8
    flipped = data[pos] ^ 0x10
    if flipped in (0, 1, 3):  # keep the Annex B framing intact
        flipped = data[pos] ^ 0x20
    path.write_bytes(data[:pos] + bytes([flipped]) + data[pos + 1:])


def build(out: Path, frames: list[Frame]) -> dict[str, Any]:
    signer = Signer(Ed25519PrivateKey.from_private_bytes(VECTOR_SEED))
    other = Signer(Ed25519PrivateKey.from_private_bytes(OTHER_SEED))
    run = frames[:30]  # three GOPs
    scenarios: dict[str, Scenario] = {}

    def store(name: str) -> Path:
        path = out / f"store_{name}"
        if path.exists():
            shutil.rmtree(path)
        return path

    # good: 30 frames, 3 GOPs, 2 segments.
    rec = record(store("good"), signer, run)
    scenarios["good"] = Scenario("30 frames (3 GOPs) in 2 segments, untouched.", run)

    # camera_gap: the camera drops out after frame 9 and is back at frame 20; signed events.
    kept = run[:10] + run[20:]
    s = Scenario("The camera is lost after frame 9 and back 1 s later, at frame 20; the gap is "
                 "explained by signed camera_lost and camera_back events (and a new context "
                 "record), so the store is authentic.", kept)
    rec = VectorRecorder(store("camera_gap"), signer, run[0].utc_ns)
    for f in run[:10]:
        rec.frame(f)
    lost_utc = run[9].utc_ns + FRAME_NS
    s.expect("camera_lost", "info", rec.camera_lost(lost_utc, "stream ended"))
    s.expect("camera_back", "info", rec.camera_back(run[20].utc_ns, lost_utc))
    for f in run[20:]:
        rec.frame(f)
    rec.stop(run[-1].utc_ns + FRAME_NS, len(kept))
    scenarios["camera_gap"] = s

    # byte_flipped: one byte of frame 14's slice data changed in the segment file.
    rec = record(store("byte_flipped"), signer, run)
    _flip_in_file(rec.cam_dir / "segments" / rec.segments[0], run[14])
    s = Scenario("One byte of frame 14's slice data changed in segments/000001.ts.", run)
    s.expect("frame_modified", "error", rec.seq[14])
    scenarios["byte_flipped"] = s

    # frame_dropped: frame 14 recorded and signed, but missing from the media.
    rec = record(store("frame_dropped"), signer, run, lambda f: [] if f.index == 14 else [f])
    s = Scenario("Frame 14 is signed in the evidence but was removed from the media.", run)
    s.expect("frame_missing", "error", rec.seq[14])
    scenarios["frame_dropped"] = s

    # frames_swapped: the coded data of frames 14 and 15 exchanged in the media.
    swap = {14: run[15], 15: run[14]}
    rec = record(store("frames_swapped"), signer, run, lambda f: [swap.get(f.index, f)])
    s = Scenario("The coded pictures of frames 14 and 15 are exchanged in the media, each "
                 "segment packet keeping its timestamp: frame 15's picture is found before "
                 "frame 14's (frame_reordered over both), and frame 14's picture is shown at "
                 "frame 15's time (timestamp_modified).", run)
    s.expect("frame_reordered", "error", rec.seq[14], rec.seq[15])
    s.expect("timestamp_modified", "error", rec.seq[14])
    scenarios["frames_swapped"] = s

    # segment_deleted: the second segment (frames 20..29) removed.
    rec = record(store("segment_deleted"), signer, run)
    (rec.cam_dir / "segments" / rec.segments[1]).unlink()
    s = Scenario("segments/000002.ts (frames 20..29) deleted.", run)
    s.expect("frame_missing", "error", rec.seq[20], rec.seq[29])
    scenarios["segment_deleted"] = s

    # record_edited: frame 14's capture time moved by 1 s in the evidence (re-serialized).
    rec = record(store("record_edited"), signer, run)
    log = rec.cam_dir / EVIDENCE
    entries = _lines(log)
    for e in entries:
        if e["type"] == "frame" and e["seq"] == rec.seq[14]:
            e["utc_ns"] += 1_000_000_000
    _write_lines(log, entries)
    s = Scenario("The capture time (utc_ns) of frame 14's record moved by 1 s; the line is "
                 "re-serialized canonically, hashes and signatures are left as they were.", run)
    s.expect("record_modified", "error", rec.seq[14], rec.seq[15])
    scenarios["record_edited"] = s

    # key_repeated: frame 14's line given a second "utc_ns" key, ahead of the real one.
    rec = record(store("key_repeated"), signer, run)
    log = rec.cam_dir / EVIDENCE
    lines = log.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines)
              if json.loads(line)["type"] == "frame" and json.loads(line)["seq"] == rec.seq[14])
    lines[at] = b'{"utc_ns":1704067260000000000,' + lines[at][1:]
    log.write_bytes(b"".join(lines))
    s = Scenario("A second \"utc_ns\" key (one minute later) put at the start of frame 14's "
                 "line. Parsers disagree on which value counts; the line is no longer the "
                 "canonical encoding of its value, so it is refused as malformed: frame 14 "
                 "then has no record, and its picture is not in the evidence.",
                 [f for f in run if f.index != 14])
    s.expect("malformed_entry", "error", None)
    s.expect("records_missing", "error", rec.seq[14])
    s.expect("frame_inserted", "error", rec.seq[13])
    scenarios["key_repeated"] = s

    # context_edited: the location label of the context record changed.
    rec = record(store("context_edited"), signer, run)
    log = rec.cam_dir / EVIDENCE
    entries = _lines(log)
    entries[0]["context"]["location"]["label"] = "Elsewhere"
    _write_lines(log, entries)
    s = Scenario("The location label in the context record (seq 0) changed: the next entry no "
                 "longer commits to it, and every later entry refers (ctx) to a context that "
                 "is not the one in force.", run)
    s.expect("record_modified", "error", 0, 1)
    refs = [e["seq"] for e in entries if e["type"] in ("frame", "event")]
    s.expect("context_mismatch", "error", refs[0], refs[-1])  # seq 1..32, one run
    scenarios["context_edited"] = s

    # bad_signature: one hex digit of the second checkpoint's signature changed.
    rec = record(store("bad_signature"), signer, run)
    log = rec.cam_dir / EVIDENCE
    entries = _lines(log)
    cps = [e for e in entries if e["type"] == "checkpoint"]
    target = cps[1]
    target["sig"] = ("1" if target["sig"][0] != "1" else "2") + target["sig"][1:]
    _write_lines(log, entries)
    s = Scenario("The first hex digit of the second checkpoint's signature changed. The "
                 "next checkpoint's prev_checkpoint no longer matches it either.", run)
    # A checkpoint finding names the entries that checkpoint newly covers.
    s.expect("bad_signature", "error", cps[0]["seq"] + 1, target["seq"])
    s.expect("checkpoint_chain", "error", target["seq"] + 1, cps[2]["seq"])
    scenarios["bad_signature"] = s

    # unsigned_tail: the recorder dies after frame 24, before signing frames 20..24.
    rec = VectorRecorder(store("unsigned_tail"), signer, run[0].utc_ns)
    for f in run[:25]:
        rec.frame(f)
    rec.crash()
    s = Scenario("The recorder was killed after writing frame 24: the records of frames "
                 "20..24 follow the last checkpoint and are unsigned (no restart yet).",
                 run[:25])
    s.expect("unsigned_tail", "warning", rec.seq[20], rec.seq[24])
    scenarios["unsigned_tail"] = s

    # crash_restart: as unsigned_tail, then the recorder restarts and records frames 30..39.
    path = store("crash_restart")
    rec = VectorRecorder(path, signer, run[0].utc_ns)
    for f in run[:25]:
        rec.frame(f)
    rec.crash()
    rec2 = VectorRecorder(path, signer, frames[30].utc_ns)
    for f in frames[30:]:
        rec2.frame(f)
    rec2.stop(frames[-1].utc_ns + FRAME_NS, 10)
    s = Scenario("The unsigned_tail recording, restarted: the unsigned entries were moved to "
                 "crash/tail-000001.jsonl, the chain continues from the last checkpoint with a "
                 "recorder_start event (previous_run interrupted) and frames 30..39 in a new "
                 "segment. Frames 20..24 stay in segments/000002.ts without signed records: "
                 "they are reported as unsigned (after frame 19, the last signed frame).",
                 run[:20] + frames[30:])
    s.expect("recorder_restart", "info", rec2.start_seq)
    s.expect("unsigned_frames", "warning", rec.seq[19])  # one finding for the 5 frames
    scenarios["crash_restart"] = s

    # wrong_key: a good recording, signed by another device key than vector-key.pub.
    rec = record(store("wrong_key"), other, run)
    s = Scenario("An untouched recording signed by another key (RFC 8032 TEST 2) than "
                 "vector-key.pub: no checkpoint is trusted, so nothing is signed.", run)
    # One finding per checkpoint, each over the entries it newly covers; adjacent ranges
    # of one kind are reported as one: seq 0 to the last entry.
    assert _checkpoints(rec.cam_dir / EVIDENCE)[-1]["seq"] == rec.chain.seq - 1
    s.expect("untrusted_key", "error", 0, rec.chain.seq - 1)
    scenarios["wrong_key"] = s

    for stale in out.glob("store_*"):
        if stale.is_dir() and stale.name.removeprefix("store_") not in scenarios:
            shutil.rmtree(stale)
    (out / PUBLIC_KEY).write_text(public_pem(signer.public))
    expected = {name: sc.to_json() for name, sc in scenarios.items()}
    (out / EXPECTED).write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    return expected


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    p.add_argument("--clip", type=Path, default=HERE / CLIP, help="the coded frames to use")
    p.add_argument("--encode", action="store_true",
                   help=f"re-encode {CLIP} with libx264 first (changes every digest)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.encode:
        encode_clip(args.clip)
    expected = build(args.out, read_clip(args.clip))
    print(f"wrote {len(expected)} vector stores to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
