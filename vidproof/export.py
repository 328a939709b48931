"""Certified clip export: a GOP-aligned cut, never re-encoded, into a flat bundle.

The bundle (DESIGN.md section 3) holds ``clip.mp4`` (the recorded coded frames and
a mov_text subtitle track with each frame's date, time, camera and location),
``evidence.json`` (everything needed to verify offline), ``report.html`` (and
``report.pdf`` when Chromium is there to print it), ``player.html`` and
``SHA256SUMS``.

The cut starts at a keyframe and ends at a checkpoint: the checkpoint just
before the first keyframe (the *anchor*) and the first checkpoint at or after the
last frame (the *end*) are both in the evidence, so no frame at either end can be
removed unnoticed. Export only reads the store, so recording goes on meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from . import __version__
from .canonical import canonical_bytes, entry_hash, sha256_hex
from .digest import NO_PROBE_DECODE, SUPPORTED_CODECS, BitstreamError, FrameHasher
from .errors import UsageError
from .journal import Journal
from .keys import Signer, public_pem
from .model import FORMAT, RecordError, check_camera_id, entry_from_json
from .retention import read_index
from .store import EVIDENCE, list_segments
from .timefmt import iso_ns

BUNDLE_FORMAT = "vidproof-bundle/1"
CLIP, EVIDENCE_JSON, REPORT_HTML, REPORT_PDF = "clip.mp4", "evidence.json", "report.html", "report.pdf"
PLAYER_HTML, SUMS = "player.html", "SHA256SUMS"
PAGES = (REPORT_HTML, REPORT_PDF, PLAYER_HTML)  # signed by the export record
_TEMPLATE = Path(__file__).parent / "data" / "movtext-template.mp4"


def parse_time(text: str, what: str) -> datetime:
    """Parse an ISO 8601 date-time; a time without offset is refused (ambiguous)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an ISO 8601 date-time; expected e.g. "
                         "2026-11-26T14:00:00Z") from None
    if value.tzinfo is None:
        raise UsageError(f"{what} {text!r} has no UTC offset; add Z or +01:00")
    return value


def to_ns(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@dataclass
class _Camera:
    """A camera's evidence, parsed: chain entries by seq, and checkpoints in order."""

    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    timestamps: list[dict[str, Any]] = field(default_factory=list)  # RFC 3161 tokens


def _load_camera(cam_dir: Path) -> _Camera:
    """Every line of the camera's evidence, parsed (the reference; see
    :func:`_load_window` for what an export reads of a long recording)."""
    cam = _Camera()
    with open(cam_dir / EVIDENCE, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # being written by the recorder right now
            _add_line(cam, raw, n, cam_dir)
    return cam


def _add_line(cam: _Camera, raw: bytes, where: int | str, cam_dir: Path) -> None:
    try:
        obj = json.loads(raw)
        entry = entry_from_json(obj)
    except (ValueError, RecordError) as exc:
        raise UsageError(f"{cam_dir / EVIDENCE} line {where} is damaged ({exc}); "
                         "run vidproof verify on the store") from None
    if obj["type"] == "timestamp":
        cam.timestamps.append(obj)
    elif obj["type"] == "checkpoint":
        cam.checkpoints.append(obj)
    else:
        cam.entries[entry.seq] = obj
        if obj["type"] == "context":
            cam.contexts[entry_hash(obj)] = obj


# --- reading a long recording without parsing all of it -----------------------------------
#
# A day of one camera is about half a million evidence lines. An export reads: the lines
# of the segments around the requested range (the segment index, segments/index.jsonl,
# gives their seqs; the lines are found by bisection on seq, which only grows along the
# log); and, wherever they are, the few lines it needs from the whole history: contexts,
# key rotations (with the checkpoints that sign them), retention purges and time-stamp
# tokens, found by searching the bytes: one pass for '":{', which only the lines with an
# object inside (contexts, events) hold, and one for time-stamp tokens when a context
# says the camera had a TSA (canonical JSON escapes every quote inside a string, so
# these byte strings only occur as JSON syntax). When the index
# is missing, the wall clock jumped (a clock_jump event: times then do not grow with
# seq) or what was read does not reach past both ends of the range, the whole log is
# parsed instead (_load_camera): slower, never different.

WINDOW_MARGIN_NS = 60 * 10**9  # segments this far around the range are read too
_NESTED = b'":{'  # an object in an object: contexts and events; frames, checkpoints and
_CONTEXT = b',"context":{'  # time-stamp tokens have none (docs/FORMAT.md)
_EVENTS = (b'"event":"key_rotation"', b'"event":"retention_purge"')  # the events needed
_CLOCK_JUMP = b'"event":"clock_jump"'
_TOKEN = b'"type":"timestamp"'  # searched for when a context says the camera had a TSA
_TSA = b'"timestamping":'
_CHECKPOINT = b'"type":"checkpoint"'


def _line_bounds(data: Any, pos: int, limit: int) -> tuple[int, int]:
    """The line holding byte ``pos``: (start, end after its newline)."""
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos, limit)
    return start, (limit if end < 0 else end + 1)


def _checkpoint_from(data: Any, pos: int, limit: int) -> tuple[int, int]:
    """(start, end) of the first checkpoint line at or after line start ``pos``;
    (limit, limit) when there is none."""
    while pos < limit:
        end = _line_bounds(data, pos, limit)[1]
        if _CHECKPOINT in data[pos:end]:
            return pos, end
        pos = end
    return limit, limit


def _seq_from(data: Any, pos: int, limit: int) -> tuple[int, int]:
    """(offset of the first chain entry or checkpoint line at or after ``pos``, its seq);
    time-stamp lines (whose seq is an earlier checkpoint's) are stepped over."""
    while pos < limit:
        end = data.find(b"\n", pos, limit)
        end = limit if end < 0 else end + 1
        obj = json.loads(data[pos:end])
        if obj.get("type") != "timestamp":
            return pos, int(obj["seq"])
        pos = end
    return limit, 1 << 62


def _bisect_seq(data: Any, seq: int, limit: int) -> int:
    """Offset of the first line (chain entry or checkpoint) whose seq is >= ``seq``."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi) // 2
        start = data.rfind(b"\n", 0, mid) + 1
        at, found = _seq_from(data, start, limit)
        if found < seq:
            lo = max(data.find(b"\n", at, limit) + 1, mid + 1) if at < limit else limit
        else:
            hi = start
    return _seq_from(data, lo, limit)[0] if lo < limit else limit


def _camera_and_selection(cam_dir: Path, start_ns: int, end_ns: int
                          ) -> tuple[_Camera, Selection]:
    """The evidence an export needs, read around the range when it can be, and what it
    selects; the whole log when the window cannot answer (the same selection)."""
    cam = _load_window(cam_dir, start_ns, end_ns)
    if cam is not None:
        try:
            return cam, select(cam, start_ns, end_ns)
        except UsageError:
            pass  # what the window lacks, the whole log may have; or it says why not
    cam = _load_camera(cam_dir)
    return cam, select(cam, start_ns, end_ns)


def _load_window(cam_dir: Path, start_ns: int, end_ns: int) -> _Camera | None:
    """The evidence an export of ``start_ns..end_ns`` needs, or None (then parse all)."""
    from .retention import read_index

    near: list[tuple[int, int | None]] = []  # (first seq, last seq or None: still open)
    for sp in read_index(cam_dir).values():
        if sp.first_seq is None or sp.first_utc_ns is None:
            continue
        if sp.first_utc_ns <= end_ns + WINDOW_MARGIN_NS and (
                sp.last_utc_ns is None or sp.last_utc_ns >= start_ns - WINDOW_MARGIN_NS):
            near.append((sp.first_seq, sp.last_seq if sp.last_utc_ns is not None else None))
    if not near:
        return None
    first_seq = min(a for a, _ in near)
    last_seq = None if any(b is None for _, b in near) else max(b for _, b in near if b)
    import mmap

    with open(cam_dir / EVIDENCE, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            limit = data.rfind(b"\n") + 1  # complete lines only
            if limit == 0:
                return None
            cam = _Camera()
            try:
                lo = _bisect_seq(data, first_seq - 1, limit)  # (the anchor checkpoint too)
                hi = limit if last_seq is None else _bisect_seq(data, last_seq + 1, limit)
                # Past the last segment's frames: up to and with its closing checkpoint.
                hi = _checkpoint_from(data, hi, limit)[1]
                for i, raw in enumerate(data[lo:hi].split(b"\n")[:-1], start=1):
                    _add_line(cam, raw, f"{i} after byte {lo}", cam_dir)
                seen = set(cam.entries)
                specials: list[tuple[int, bytes]] = []
                stamped = False
                pos = data.find(_NESTED, 0, limit)
                while pos >= 0:
                    a, b = _line_bounds(data, pos, limit)
                    line = data[a:b]
                    if _CONTEXT in line:
                        stamped = stamped or _TSA in line
                    elif _CLOCK_JUMP in line:
                        return None  # times do not grow with seq: read it all
                    elif not any(e in line for e in _EVENTS):
                        line = b""
                    if line and not lo <= a < hi:
                        specials.append((a, line))
                    pos = data.find(_NESTED, b, limit)
                pos = data.find(_TOKEN, 0, limit) if stamped else -1
                while pos >= 0:
                    a, b = _line_bounds(data, pos, limit)
                    if not lo <= a < hi:
                        specials.append((a, data[a:b]))
                    pos = data.find(_TOKEN, b, limit)
                for a, raw in sorted(set(specials)):
                    _add_line(cam, raw, f"at byte {a}", cam_dir)
                    if _EVENTS[0] in raw:
                        # The checkpoint whose head the rotation is: the next checkpoint line.
                        start, end = _checkpoint_from(data, a + len(raw), limit)
                        if start < limit:
                            _add_line(cam, data[start:end], f"at byte {start}", cam_dir)
            except (ValueError, KeyError, TypeError):
                return None  # a damaged line where we looked: the full read says where
            frames = [cam.entries[s] for s in sorted(seen) if cam.entries[s]["type"] == "frame"]
            # What was read must reach past both ends of the range, or the log's ends:
            # the first frame line of the log, or its last line.
            first_frame = data.find(b'"type":"frame"', 0, limit)
            if not frames or (first_frame < lo and frames[0]["utc_ns"] > start_ns) or (
                    hi < limit and frames[-1]["utc_ns"] < end_ns):
                return None
            # The first token over a checkpoint after the window (timestamps_for_clip):
            # the checkpoints up to it are read too.
            top = max((c["seq"] for c in cam.checkpoints), default=-1)
            later = sorted(t["seq"] for t in cam.timestamps if t["seq"] > top)
            if later and hi < limit:
                stop = _bisect_seq(data, later[0] + 1, limit)
                for raw in data[hi:stop].split(b"\n")[:-1]:
                    if _CHECKPOINT in raw:
                        _add_line(cam, raw, "after the window", cam_dir)
            # (a rotation's checkpoint may have been read twice)
            unique = {(c["seq"], c["head"]): c for c in cam.checkpoints}
            cam.checkpoints = sorted(unique.values(), key=lambda c: c["seq"])
            return cam


@dataclass(frozen=True)
class Selection:
    anchor: dict[str, Any]
    end: dict[str, Any]
    entries: list[dict[str, Any]]  # chain entries anchor.seq+1 .. end.seq
    frames: list[dict[str, Any]]
    contexts: list[dict[str, Any]]  # contexts in force that precede the anchor
    trimmed: bool  # the requested end was not signed yet; cut at the last checkpoint
    # Every recorded frame's seq by its digest (the last, where pictures repeat): places
    # segments that begin before the selection (see _first_segment).
    seq_of_digest: dict[str, int] = field(default_factory=dict)


def select(cam: _Camera, start_ns: int, end_ns: int) -> Selection:
    frames = [e for _, e in sorted(cam.entries.items()) if e["type"] == "frame"]
    wanted = [i for i, f in enumerate(frames) if start_ns <= f["utc_ns"] <= end_ns]
    if not wanted:
        raise UsageError("no recorded footage in that time range")
    first = wanted[0]
    while first > 0 and not frames[first]["key"]:
        first -= 1
    if not frames[first]["key"]:
        raise UsageError("no keyframe at or before the start of the range: cannot cut there "
                         "without re-encoding")
    first_seq, last_seq = frames[first]["seq"], frames[wanted[-1]]["seq"]
    anchors = [c for c in cam.checkpoints if c["seq"] < first_seq]
    if not anchors:
        raise UsageError("no signed checkpoint precedes the range")
    anchor = anchors[-1]
    ends = [c for c in cam.checkpoints if c["seq"] >= last_seq]
    trimmed = not ends
    if trimmed:
        signed = [c for c in cam.checkpoints if c["seq"] >= first_seq]
        if not signed:
            raise UsageError("the footage in that range is not signed yet; retry in a few seconds")
        end = signed[-1]
    else:
        end = ends[0]
    seqs = range(anchor["seq"] + 1, end["seq"] + 1)
    missing = [s for s in seqs if s not in cam.entries]
    if missing:
        raise UsageError(f"evidence entries seq {missing[0]}.. are missing from the store; "
                         "run vidproof verify on the store")
    entries = [cam.entries[s] for s in seqs]
    chosen = [e for e in entries if e["type"] == "frame"]
    if not chosen:
        raise UsageError("no signed frame in that time range")
    in_range = {entry_hash(e) for e in entries if e["type"] == "context"}
    needed = {e["ctx"] for e in entries if e["type"] != "context"} - in_range
    contexts = [cam.contexts[h] for h in sorted(needed) if h in cam.contexts]
    return Selection(anchor, end, entries, chosen, contexts, trimmed,
                     {f["digest"]: f["seq"] for f in frames})


def timestamps_for_clip(cam: _Camera, sel: Selection) -> dict[str, Any]:
    """The RFC 3161 tokens that cover the clip (docs/FORMAT.md section 13.5), for
    evidence.json: the tokens over its checkpoints (after the anchor, up to the end one)
    and, when the end checkpoint has none, the first token after it together with the
    checkpoint lines from the end up to the one it covers (``timestamp_checkpoints``),
    which link that token to the clip. Nothing when there is no token."""
    pos = {entry_hash(c): i for i, c in enumerate(cam.checkpoints)}
    anchor_i, end_i = pos.get(entry_hash(sel.anchor)), pos.get(entry_hash(sel.end))
    if anchor_i is None or end_i is None:
        return {}
    by_pos: dict[int, list[dict[str, Any]]] = {}
    for t in cam.timestamps:
        i = pos.get(t["checkpoint"])
        if i is not None:
            by_pos.setdefault(i, []).append(t)
    chosen = [t for i in range(anchor_i + 1, end_i + 1) for t in by_pos.get(i, [])]
    linked: list[dict[str, Any]] = []
    if end_i not in by_pos:
        later = next((i for i in sorted(by_pos) if i > end_i), None)
        if later is not None:
            linked = cam.checkpoints[end_i + 1:later + 1]
            chosen.append(by_pos[later][0])
    if not chosen:
        return {}
    return {"timestamps": chosen, "timestamp_checkpoints": linked}


def _segment_first_digest(path: Path) -> str | None:
    try:
        with av.open(os.path.abspath(path), options=NO_PROBE_DECODE) as c:  # only demuxed
            stream = c.streams.video[0]
            hasher = FrameHasher.of_stream(stream)
            for p in c.demux(stream):
                if p.size:
                    return hasher.digest(memoryview(p)).digest
    except (av.FFmpegError, OSError, IndexError, BitstreamError):
        return None
    return None


@dataclass
class _Packet:
    data: bytes
    pts: int | None
    dts: int | None
    time_base: Fraction
    keyframe: bool


def _segment_shift(seg_pts: int | None, frame: dict[str, Any], tb: Fraction) -> int:
    """How far a segment's timestamps are from the signed ones, in the segment's time base.

    The MPEG-TS muxer moves a segment's timestamps when its first decoding time is
    negative (B-frames), or missing (some MKV sources): segments then disagree with each
    other, and their packets cannot be joined as they are. The signed records' pts, put
    in the segment's time base, give each segment's offset."""
    pts, rec_tb = frame.get("pts"), frame.get("tb")
    if seg_pts is None or not isinstance(pts, int) or not tb or not isinstance(rec_tb, list):
        return 0
    return seg_pts - round(pts * Fraction(rec_tb[0], rec_tb[1]) / tb)


def _first_segment(cam_dir: Path, segments: list[Path], sel: Selection) -> int:
    """The index of the segment that holds the selection's first frame, or the last one
    before it: segments that end before the selection are skipped. The segment index
    (``segments/index.jsonl``, unsigned: a hint) names it, and the digest of that
    segment's first frame confirms it; without an index, or where the two disagree,
    the first frame of every segment is digested."""
    first_seq = sel.frames[0]["seq"]
    digest_seq = sel.seq_of_digest  # a repeated picture: its last seq (start no later)

    def starts_before(i: int) -> bool:
        d = _segment_first_digest(segments[i])
        return d is not None and d in digest_seq and digest_seq[d] <= first_seq

    spans = read_index(cam_dir)
    hinted = [i for i, seg in enumerate(segments)
              if (span := spans.get(seg.name)) is not None and span.first_seq is not None
              and span.first_seq <= first_seq]
    if hinted and starts_before(hinted[-1]):
        nxt = hinted[-1] + 1  # and the next one starts after the selection's first frame
        if nxt == len(segments) or not starts_before(nxt):
            return hinted[-1]
    start = 0
    for i in range(len(segments)):
        if starts_before(i):
            start = i
    return start


def _iter_frames(cam_dir: Path, sel: Selection) -> Iterator[tuple[_Packet, Any]]:
    """The recorded packets of the selection, in order, with the stream they come from;
    timestamps as signed (see :func:`_segment_shift`)."""
    seq_of = {f["digest"]: f["seq"] for f in sel.frames}
    segments = list_segments(cam_dir)
    start = _first_segment(cam_dir, segments, sel)
    wanted = [f["digest"] for f in sel.frames]
    pos = 0
    for seg in segments[start:]:
        if pos == len(wanted):
            return
        with av.open(str(seg)) as c:
            stream = c.streams.video[0]
            hasher = FrameHasher.of_stream(stream)
            shift: int | None = None
            for p in c.demux(stream):
                if not p.size:
                    continue
                data = bytes(p)
                try:
                    digest = hasher.digest(data).digest
                except BitstreamError:
                    continue
                if pos < len(wanted) and digest == wanted[pos]:
                    tb = Fraction(stream.time_base or 0)
                    if shift is None:
                        shift = _segment_shift(p.pts, sel.frames[pos], tb)
                    pos += 1
                    yield _Packet(data, None if p.pts is None else p.pts - shift,
                                  None if p.dts is None else p.dts - shift, tb,
                                  p.is_keyframe), stream
                elif pos and digest in seq_of:
                    raise UsageError(f"{seg.name}: frame seq {seq_of[digest]} is out of order; "
                                     "run vidproof verify on the store")
                if pos == len(wanted):
                    return
    if pos < len(wanted):
        raise UsageError(f"frame seq {sel.frames[pos]['seq']} is missing from the media; "
                         "run vidproof verify on the store")


def subtitle_text(frame: dict[str, Any], context: dict[str, Any], tz: tzinfo) -> str:
    utc = iso_ns(frame["utc_ns"])
    local = iso_ns(frame["utc_ns"], tz)
    loc = context["location"]
    return (f"{utc[:10]} {utc[11:23]} UTC | local {local[11:23]} {local[23:]}\n"
            f"{context['camera_id']} | {loc['label']} ({loc['lat']}, {loc['lon']})")


def utc_offset_minutes(utc_ns: int, tz: tzinfo) -> int:
    off = datetime.fromtimestamp(utc_ns // 10**9, tz=tz).utcoffset()
    return 0 if off is None else int(off.total_seconds()) // 60


def _local_zone(name: str | None) -> tzinfo:
    if name:
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name)
        except (KeyError, ValueError, OSError):
            raise UsageError(f"time zone {name!r} is unknown; expected e.g. Europe/Paris") from None
    local = datetime.now().astimezone().tzinfo
    return local or UTC


@dataclass
class ClipInfo:
    frames: int
    width: int
    height: int
    codec: str
    time_base: Fraction
    first_pts: int
    frame_times: list[float]  # presentation time (s) in clip.mp4 of each frame, in seq order


def write_clip(cam_dir: Path, sel: Selection, contexts: dict[str, dict[str, Any]],
               out_path: Path, tz: tzinfo) -> ClipInfo:
    """Remux the selected packets, unchanged, into MP4 with a mov_text track."""
    template = av.open(str(_TEMPLATE))
    out = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
    video: Any = None
    subs: Any = None
    sub_packets: list[tuple[int, int, bytes]] = []
    info: ClipInfo | None = None
    offset = 0
    pts_list: list[int] = []
    try:
        for n, (pkt, stream) in enumerate(_iter_frames(cam_dir, sel)):
            if video is None:
                cc = stream.codec_context
                if cc.name not in SUPPORTED_CODECS:
                    raise UsageError(f"codec {cc.name} cannot be exported")
                video = out.add_stream_from_template(stream)
                video.time_base = pkt.time_base
                subs = out.add_stream_from_template(template.streams.subtitles[0], opaque=True)
                subs.time_base = pkt.time_base
                offset = pkt.dts if pkt.dts is not None else (pkt.pts or 0)
                info = ClipInfo(0, cc.width, cc.height, cc.name, pkt.time_base, 0, [])
            packet = av.Packet(pkt.data)
            packet.pts = None if pkt.pts is None else pkt.pts - offset
            packet.dts = None if pkt.dts is None else pkt.dts - offset
            packet.time_base, packet.is_keyframe, packet.stream = pkt.time_base, pkt.keyframe, video
            out.mux(packet)
            frame = sel.frames[n]
            text = subtitle_text(frame, contexts[frame["ctx"]]["context"], tz).encode("utf-8")
            pts = packet.pts if packet.pts is not None else (pts_list[-1] if pts_list else 0)
            pts_list.append(pts)
            sub_packets.append((pts, n, text))
        assert info is not None and subs is not None
        order = sorted(sub_packets)
        for i, (pts, _, text) in enumerate(order):
            nxt = order[i + 1][0] if i + 1 < len(order) else pts + (
                pts - order[i - 1][0] if i else 1)
            sp = av.Packet(len(text).to_bytes(2, "big") + text)
            sp.pts = sp.dts = pts
            sp.duration = max(nxt - pts, 1)
            sp.time_base, sp.stream = info.time_base, subs
            out.mux(sp)
    finally:
        out.close()
        template.close()
    info.frames = len(pts_list)
    info.first_pts = min(pts_list)
    info.frame_times = [float(p * info.time_base) for p in pts_list]
    return info


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ExportRequest:
    store: Path
    camera: str
    start: datetime
    end: datetime
    out: Path
    case: str
    officer: str
    reason: str = ""
    timezone: str | None = None
    crls: tuple[Path, ...] = ()  # CRLs of the device CA, carried in the bundle


@dataclass(frozen=True)
class ExportResult:
    bundle: Path
    frames: int
    first_utc_ns: int
    last_utc_ns: int
    verdict: str
    trimmed: bool


def _read_crls(paths: tuple[Path, ...]) -> list[str]:
    from .trust.crl import crl_pem, load_pem_crls

    out: list[str] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read CRL {path}: {exc.strerror}") from None
        out.extend(crl_pem(c) for c in load_pem_crls(data, str(path)))
    return out


def export(req: ExportRequest, signer: Signer, now_ns: int) -> ExportResult:
    try:
        check_camera_id(req.camera)
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    for what, value in (("--case", req.case), ("--officer", req.officer)):
        if not value.strip():
            raise UsageError(f"{what} must not be empty")
    if req.end <= req.start:
        raise UsageError("--to must be later than --from")
    cam_dir = req.store / req.camera
    if not (cam_dir / EVIDENCE).is_file():
        raise UsageError(f"camera {req.camera!r} has no recording in {req.store}")
    if req.out.suffix != ".zip":
        raise UsageError(f"--out {req.out} must end in .zip")
    tz = _local_zone(req.timezone)
    cam, sel = _camera_and_selection(cam_dir, to_ns(req.start), to_ns(req.end))
    from .retention import add_hold, destroyed_in

    destroyed = destroyed_in(cam.entries.values(), sel.frames[0]["seq"], sel.frames[-1]["seq"])
    if destroyed is not None:  # its records remain, its media was purged (retention)
        raise UsageError(destroyed)
    contexts = dict(cam.contexts)
    req.out.parent.mkdir(parents=True, exist_ok=True)
    out_dir = req.out.resolve().parent
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        work = Path(tmp)
        try:
            clip = write_clip(cam_dir, sel, contexts, work / CLIP, tz)
        except (av.FFmpegError, OSError) as exc:
            raise UsageError(f"cannot write the clip of {req.camera}: {exc}; run vidproof "
                             "verify on the store") from None
        frames = sel.frames
        # With B-frames the last frame decoded is not the last shown: use the extremes.
        first_ns = min(f["utc_ns"] for f in frames)
        last_ns = max(f["utc_ns"] for f in frames)
        ctx0 = contexts[frames[0]["ctx"]]["context"]
        journal = Journal(req.store / "journal.jsonl", signer)
        export_entry: dict[str, Any] = {
            "v": FORMAT, "type": "export", "camera": req.camera, "utc_ns": now_ns,
            "case": req.case, "officer": req.officer, "reason": req.reason,
            "recorder": {"software": f"vidproof {__version__}", "host": platform.node()},
            "requested": {"from": iso_ns(to_ns(req.start)), "to": iso_ns(to_ns(req.end))},
            "first_seq": frames[0]["seq"], "last_seq": frames[-1]["seq"],
            "frames": len(frames), "first_utc_ns": first_ns, "last_utc_ns": last_ns,
            "anchor": entry_hash(sel.anchor), "end": entry_hash(sel.end),
            "clip_sha256": file_sha256(work / CLIP),
            # The local time zone of the subtitles: its name, and every UTC offset
            # (minutes) the subtitles use, so that a shifted local time is detected.
            "timezone": {"name": getattr(tz, "key", None) or str(tz),
                         "offsets_minutes": sorted({
                             utc_offset_minutes(f["utc_ns"], tz) for f in frames})},
            "journal_seq": journal.next_seq,
            "key": signer.key_id, "alg": signer.alg,
        }
        export_entry["sig"] = signer.sign(canonical_bytes(export_entry)).hex()
        evidence = {
            "format": BUNDLE_FORMAT, "camera": req.camera, "clip": CLIP,
            "anchor": sel.anchor, "contexts": sel.contexts, "entries": sel.entries,
            "checkpoints": [c for c in cam.checkpoints
                            if sel.anchor["seq"] < c["seq"] <= sel.end["seq"]],
            "export": export_entry,
            "public_key": public_pem(signer.public),
        }
        evidence.update(timestamps_for_clip(cam, sel))
        from .trust.carry import carried_trust

        evidence.update(carried_trust(cam.entries.values(), cam.checkpoints, evidence, signer,
                                      _read_crls(req.crls)))
        (work / EVIDENCE_JSON).write_text(json.dumps(evidence, indent=1, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
        from .bundle_report import render_bundle_pages

        render_bundle_pages(work, req, evidence, clip, ctx0, tz, signer, sel.trimmed)
        verdict = json.loads((work / ".verdict.json").read_text())["verdict"]
        (work / ".verdict.json").unlink()
        # The export record signs the pages too, so that the certificate and the player a
        # court reads cannot be altered unnoticed (the pages therefore cannot show the
        # SHA-256 of evidence.json; SHA256SUMS lists it).
        del export_entry["sig"]
        export_entry["pages"] = {n: file_sha256(work / n) for n in PAGES if (work / n).is_file()}
        export_entry["sig"] = signer.sign(canonical_bytes(export_entry)).hex()
        (work / EVIDENCE_JSON).write_text(json.dumps(evidence, indent=1, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
        names = sorted(p.name for p in work.iterdir())
        sums = "".join(f"{file_sha256(work / n)}  {n}\n" for n in names)
        (work / SUMS).write_text(sums, encoding="ascii")
        tmp_zip = work / ".bundle.zip"
        with zipfile.ZipFile(tmp_zip, "w") as z:
            for name in [*names, SUMS]:
                method = zipfile.ZIP_STORED if name == CLIP else zipfile.ZIP_DEFLATED
                z.write(work / name, name, compress_type=method)
        with open(tmp_zip, "rb") as f:
            os.fsync(f.fileno())
        # The exported range is kept from the retention purge (an export hold).
        hold = add_hold(req.store, req.camera, first_ns, last_ns, kind="export",
                        reason=req.reason or f"exported for case {req.case}", case=req.case,
                        by=req.officer, now_ns=now_ns)
        # The export is journaled (and fsynced) before the bundle is handed over.
        journal.append("export", req.officer, now_ns, {
            "case": req.case, "reason": req.reason, "camera": req.camera,
            "footage_from": iso_ns(first_ns), "footage_to": iso_ns(last_ns),
            "duration_s": f"{(last_ns - first_ns) / 1e9:.3f}", "frames": len(frames),
            "bundle": req.out.name, "bundle_sha256": file_sha256(tmp_zip),
            "export_entry": sha256_hex(canonical_bytes(export_entry)), "hold": hold.id,
        })
        os.replace(tmp_zip, req.out)
    return ExportResult(req.out, len(frames), first_ns, last_ns, verdict, sel.trimmed)

