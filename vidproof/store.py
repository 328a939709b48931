"""On-disk store: per camera, MPEG-TS media segments and an append-only evidence log.

Layout::

    STORE/<camera>/evidence.jsonl        one canonical JSON entry per line
    STORE/<camera>/segments/000001.ts    GOP-aligned segments, coded frames as received
    STORE/<camera>/crash/tail-000001.jsonl  unsigned entries moved aside after a crash

MPEG-TS is used for segments because its muxer writes every packet as it comes:
with ``flush_packets`` and an fsync, the coded frames of a checkpoint are on disk
before the checkpoint is written. A segment cut short by a crash stays readable.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av

from .canonical import CanonicalError, canonical_bytes, entry_hash, sha256_hex
from .errors import UsageError
from .model import GENESIS, Checkpoint, RecordError, check_camera_id, entry_from_json

EVIDENCE = "evidence.jsonl"
SEGMENTS = "segments"
CRASH = "crash"
SEGMENT_SUFFIX = ".ts"


def camera_dir(store: Path, camera_id: str) -> Path:
    return store / check_camera_id(camera_id)


def list_cameras(store: Path) -> list[str]:
    if not store.is_dir():
        return []
    return sorted(p.name for p in store.iterdir() if (p / EVIDENCE).is_file())


def list_segments(cam_dir: Path) -> list[Path]:
    seg_dir = cam_dir / SEGMENTS
    if not seg_dir.is_dir():
        return []
    return sorted(p for p in seg_dir.iterdir() if p.suffix == SEGMENT_SUFFIX)


RECORDER_JSON = "recorder.json"


def remember_recorder_key(store: Path, key: Path) -> None:
    """Note, in STORE/recorder.json, where the recorder's key is (the path, never the key)."""
    store.mkdir(parents=True, exist_ok=True)
    path = store / RECORDER_JSON
    where = str(key) if str(key).startswith("pkcs11:") else str(key.resolve())  # a token URI
    path.write_text(json.dumps({"key": where}, indent=1) + "\n")


def recorder_key_path(store: Path) -> Path | None:
    try:
        key = json.loads((store / RECORDER_JSON).read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(key) if isinstance(key, str) else None


def lock_camera(cam_dir: Path) -> BinaryIO:
    """Take the camera's recorder lock: one chain has one writer. The lock lasts as long
    as the returned file stays open (and is released by the kernel if the process dies)."""
    f = open(cam_dir / ".recorder.lock", "a+b")  # noqa: SIM115 - the caller keeps it open
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise UsageError(f"camera {cam_dir.name} is already being recorded into "
                         f"{cam_dir.parent} by another process; one camera has one "
                         "recorder") from None
    return f


def lines_backwards(path: Path) -> Iterator[bytes]:
    """The complete lines of a file, last first."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        pos, tail = f.tell(), b""
        while pos > 0:
            step = min(pos, 1 << 16)
            pos -= step
            f.seek(pos)
            lines = (f.read(step) + tail).split(b"\n")
            tail = lines[0]
            yield from (ln for ln in reversed(lines[1:]) if ln)
        if tail:
            yield tail


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (files created, renamed, removed) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EvidenceWriter:
    """Appends canonical JSON lines; ``sync`` makes them durable."""

    def __init__(self, path: Path) -> None:
        existed = path.exists()
        self.path = path
        self._file = open(path, "ab")  # noqa: SIM115 - lives as long as the writer
        if not existed:
            fsync_dir(path.parent)

    def append(self, entry: dict[str, Any]) -> str:
        data = canonical_bytes(entry)
        self._file.write(data + b"\n")
        return sha256_hex(data)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        self._file.close()


class SegmentWriter:
    """Muxes coded packets, unchanged, into one MPEG-TS segment.

    FFmpeg writes the file through its own I/O (no Python call per write); ``sync``
    fsyncs the file through a descriptor of our own, opened when the segment is created
    (exclusively: a segment is never overwritten). fsync acts on the file, whichever
    descriptor. With ``flush_each`` (the default), each packet reaches the kernel as it
    is muxed (``flush_packets``). Without it, FFmpeg's I/O buffer is flushed only after
    a packet written with ``flush=True``: the recorder writes so the packet it muxes
    before each checkpoint, and ``sync`` refuses to run while packets are still only in
    that buffer (an fsync would not cover them).
    """

    def __init__(self, path: Path, template: av.video.stream.VideoStream | None,
                 codec: str, time_base: Fraction, *, flush_each: bool = True) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            # An absolute path: FFmpeg would read "name:" at the start of a relative
            # one as a protocol.
            self._out = av.open(os.path.abspath(path), "w", format="mpegts",
                                options={"flush_packets": "1"} if flush_each else {})
            self._stream: Any = (self._out.add_stream_from_template(template)
                                 if template is not None else self._out.add_mux_stream(codec))
            self._stream.time_base = time_base
        except BaseException:
            os.close(self._fd)
            raise
        self.frames = 0
        self.first_utc_ns: int | None = None
        self._last_dts: int | None = None
        self._unflushed = False  # packets muxed since FFmpeg's I/O buffer was last flushed
        self._flush_each = flush_each
        fsync_dir(path.parent)

    def write(self, data: bytes | memoryview, pts: int | None, dts: int | None,
              time_base: Fraction, keyframe: bool, *, flush: bool = False,
              packet: Any = None) -> None:
        """Mux one access unit. ``packet``: the demuxed packet that holds ``data`` and
        these timestamps, time base and keyframe flag, muxed as it is rather than copied
        into a new one. ``flush``: FFmpeg's I/O buffer is flushed to the file after this
        packet (see the class)."""
        last = self._last_dts
        if dts is not None and last is not None and dts <= last:
            # The muxer refuses a decoding time that does not increase (some cameras
            # repeat timestamps). The segment gets the next tick; the frame record
            # keeps the timestamps the camera sent.
            dts = last + 1
            if pts is not None and pts < dts:
                pts = dts
            if packet is not None:
                packet.pts, packet.dts = pts, dts
        if dts is not None:
            self._last_dts = dts
        if packet is None:
            packet = av.Packet(bytes(data))  # (no copy of bytes)
            packet.pts, packet.dts, packet.time_base = pts, dts, time_base
            packet.is_keyframe = keyframe
        packet.stream = self._stream
        if flush and not self._flush_each:
            out = self._out
            out.flags |= _FLUSH_PACKETS  # read by FFmpeg after it writes this packet
            try:
                out.mux(packet)
            finally:
                out.flags &= ~_FLUSH_PACKETS
            self._unflushed = False
        else:
            self._out.mux(packet)
            self._unflushed = not self._flush_each
        self.frames += 1

    def sync(self) -> None:
        if self._unflushed:
            raise RuntimeError(f"{self.path.name}: packets muxed since the last flush are "
                               "not in the file yet; write the last one with flush=True "
                               "before sync() (or close the segment)")
        os.fsync(self._fd)

    def close(self) -> None:
        try:
            self._out.close()  # flushes FFmpeg's I/O buffer
            self._unflushed = False
        finally:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)


_FLUSH_PACKETS = 0x0200  # AVFMT_FLAG_FLUSH_PACKETS (av.container.Flags.flush_packets)


def next_segment_path(cam_dir: Path) -> Path:
    seg_dir = cam_dir / SEGMENTS
    seg_dir.mkdir(parents=True, exist_ok=True)
    existing = list_segments(cam_dir)
    index = int(existing[-1].stem) + 1 if existing else 1
    return seg_dir / f"{index:06d}{SEGMENT_SUFFIX}"


@dataclass(frozen=True)
class ChainState:
    """Where a camera's chain stands after its last checkpoint."""

    next_seq: int
    head: str
    last_checkpoint: str
    previous_run: str  # "none", "clean" or "interrupted"
    unsigned_entries: int = 0
    unsigned_file: str | None = None
    unsigned_sha256: str | None = None
    open_segment: str | None = None


def _iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (offset after line, line) for complete lines; a torn last line is skipped."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield offset, line


def _is_checkpoint(entry: dict[str, Any]) -> bool:
    try:
        return isinstance(entry_from_json(entry), Checkpoint) and bool(entry_hash(entry))
    except (RecordError, CanonicalError):
        return False


def recover(cam_dir: Path) -> ChainState:
    """Find the chain head signed by the last checkpoint; move any unsigned tail aside.

    Entries after the last checkpoint were never signed. They are moved, bytes
    unchanged, to ``crash/tail-N.jsonl`` (nothing is deleted), and the evidence
    log is cut back to its last checkpoint so the chain continues from there.
    """
    log = cam_dir / EVIDENCE
    if not log.exists() or log.stat().st_size == 0:
        return ChainState(0, GENESIS, GENESIS, "none")
    cut = 0
    checkpoint: dict[str, Any] | None = None
    last_signed_event: str | None = None
    pending_event: str | None = None
    for offset, line in _iter_lines(log):
        # A damaged line is the verifier's business: recovery looks past it, so that
        # the signed entries after it are never moved aside.
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            entry = None
        if not isinstance(entry, dict):
            pending_event = None
        elif entry.get("type") == "checkpoint":
            if _is_checkpoint(entry):
                checkpoint, cut = entry, offset
                last_signed_event = pending_event
        elif entry.get("type") == "timestamp":
            # Timestamp tokens are written right after a checkpoint line (vidproof/timestamp/
            # tsa.py): they stay with the signed part, and are not an unsigned tail.
            if checkpoint is not None and cut == offset - len(line):
                cut = offset
        elif entry.get("type") == "event":
            pending_event = entry.get("event")
        else:
            pending_event = None
    size = log.stat().st_size
    tail_file = tail_sha = None
    unsigned = 0
    if size > cut:
        with open(log, "rb") as f:
            f.seek(cut)
            tail = f.read()
        unsigned = tail.count(b"\n") + (0 if tail.endswith(b"\n") else 1)
        crash_dir = cam_dir / CRASH
        crash_dir.mkdir(exist_ok=True)
        index = 1 + max((int(p.stem[5:]) for p in crash_dir.glob("tail-*.jsonl")
                         if p.stem[5:].isdigit()), default=0)
        tail_path = crash_dir / f"tail-{index:06d}.jsonl"
        with open(tail_path, "xb") as f:
            f.write(tail)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(crash_dir)
        with open(log, "r+b") as f:
            f.truncate(cut)
            os.fsync(f.fileno())
        tail_file, tail_sha = f"{CRASH}/{tail_path.name}", sha256_hex(tail)
    segments = list_segments(cam_dir)
    if checkpoint is None:
        # Nothing was ever signed: start a fresh chain, keeping the old entries aside.
        return ChainState(0, GENESIS, GENESIS, "interrupted", unsigned, tail_file, tail_sha,
                          segments[-1].name if segments else None)
    clean = last_signed_event == "recorder_stop" and unsigned == 0
    return ChainState(
        next_seq=int(checkpoint["seq"]) + 1,
        head=str(checkpoint["head"]),
        last_checkpoint=entry_hash(checkpoint),
        previous_run="clean" if clean else "interrupted",
        unsigned_entries=unsigned,
        unsigned_file=tail_file,
        unsigned_sha256=tail_sha,
        open_segment=None if clean or not segments else segments[-1].name,
    )
