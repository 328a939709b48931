"""Retention: footage older than the retention period is destroyed, and each destruction is
signed, journaled and registered (decree of 3 August 2007: footage is kept at most one
month, and a register lists the dates it was destroyed). docs/FORMAT.md section 15.

Who does what:

- Only the capture worker that owns a camera's chain writes to it, so that worker purges
  its camera's closed segments (:class:`RetentionKeeper`, called by
  ``vidproof.capture.worker.Recorder``): a signed ``retention_purge`` event in the chain,
  a checkpoint, an entry in the operations journal, a line in the register, and only then
  the file is deleted.
- Holds (``STORE/holds.json``): legal holds (``vidproof hold add``) and export holds
  (added by every export). A segment that overlaps an active hold of its camera is kept.
- The segment index (``STORE/<camera>/segments/index.jsonl``): which frame seqs and capture
  times each segment holds, written by the worker when it opens and closes a segment. It is
  not evidence (neither signed nor fsynced): a helper for purge decisions. When it is
  missing or incomplete, the range is found from the frame digests instead.
- The register (``STORE/retention-register.jsonl``): one plain JSON line per destroyed
  segment, for the people the decree names; the signed event and the journal entry are
  what proves it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import timefmt
from .errors import UsageError
from .model import RecordError, check_camera_id
from .store import EVIDENCE, SEGMENTS, fsync_dir, lines_backwards, list_segments

if TYPE_CHECKING:
    from .chain import Chain
    from .keys import Signer

log = logging.getLogger(__name__)

EVENT = "retention_purge"
INDEX = "index.jsonl"  # STORE/<camera>/segments/index.jsonl
HOLDS = "holds.json"  # STORE/holds.json
REGISTER = "retention-register.jsonl"  # STORE/retention-register.jsonl
JOURNAL = "journal.jsonl"
HOLD_KINDS = ("legal", "export")
DAY_NS = 86_400 * 10**9
MAX_PASS_SECONDS = 60.0  # a purge pass at most this far apart (wall time)
MIN_PASS_SECONDS = 1.0
FALLBACK_BATCH = 32  # segments placed from their digests in one pass (a store without index)
MAX_PER_PASS = 8  # segments destroyed in one pass; more: the next pass comes a second later
MAX_RETENTION_DAYS = 30  # decree of 3 August 2007: at most one month


def iso_ns(ns: int) -> str:
    """UTC, ISO 8601 with milliseconds (:func:`vidproof.timefmt.iso_ns`), or a plain
    count for a time beyond what a date can say."""
    try:
        return timefmt.iso_ns(ns)
    except (ValueError, OverflowError, OSError):  # a hand-edited file: beyond year 9999
        return f"{ns} ns after 1970"


def days_text(days: float) -> str:
    """The retention period as the decimal text given (30 -> "30", 0.0001 -> "0.0001")."""
    return str(int(days)) if days == int(days) else repr(days)


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


# --- the segment index --------------------------------------------------------------------

@dataclass
class SegmentSpan:
    """What one segment holds, from the index: frame seqs and capture times (ns)."""

    segment: str
    first_seq: int | None = None
    first_utc_ns: int | None = None
    last_seq: int | None = None  # None once closed: no signed frame in it (a crash)
    last_utc_ns: int | None = None
    frames: int | None = None
    closed: bool = False
    how: str = "recorded"  # "recorded", "after_crash" or "from_digests"

    @property
    def seqs(self) -> tuple[int, int] | None:
        if self.first_seq is None or self.last_seq is None or self.last_seq < self.first_seq:
            return None
        return self.first_seq, self.last_seq


def _index_path(cam_dir: Path) -> Path:
    return cam_dir / SEGMENTS / INDEX


def read_index(cam_dir: Path) -> dict[str, SegmentSpan]:
    """The spans of a camera's segment index; damaged lines are skipped (it is a helper:
    a segment without a usable line is placed from its digests)."""
    spans: dict[str, SegmentSpan] = {}
    try:
        f = open(_index_path(cam_dir), "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return spans
    with f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("segment"), str):
                continue
            name = obj["segment"]
            if "first_seq" in obj:  # opened (a later open line replaces an earlier one)
                spans[name] = SegmentSpan(name, _int(obj["first_seq"]),
                                          _int(obj.get("first_utc_ns")))
            span = spans.get(name)
            if span is not None and "last_utc_ns" in obj:  # closed
                span.last_seq = _int(obj.get("last_seq"))
                span.last_utc_ns = _int(obj["last_utc_ns"])
                span.frames = _int(obj.get("frames"))
                span.closed = span.last_utc_ns is not None
                span.how = str(obj.get("how", "recorded"))
    return spans


class SegmentIndex:
    """Appends to a camera's segment index; only the camera's capture worker writes it.
    Each line is written (and the file closed) at once: two lines per segment."""

    def __init__(self, cam_dir: Path) -> None:
        self.cam_dir = cam_dir
        self.path = _index_path(cam_dir)
        self.spans = read_index(cam_dir)

    def _append(self, obj: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        with open(self.path, "ab+") as f:
            if f.tell():  # a line torn by a crash must not swallow this one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)

    def opened(self, segment: str, first_seq: int, first_utc_ns: int) -> None:
        self.spans[segment] = SegmentSpan(segment, first_seq, first_utc_ns)
        self._append({"segment": segment, "first_seq": first_seq, "first_utc_ns": first_utc_ns})

    def closed(self, segment: str, last_seq: int | None, last_utc_ns: int,
               frames: int | None, how: str = "recorded") -> None:
        span = self.spans.setdefault(segment, SegmentSpan(segment))
        span.last_seq, span.last_utc_ns, span.frames = last_seq, last_utc_ns, frames
        span.closed, span.how = True, how
        obj: dict[str, Any] = {"segment": segment, "last_seq": last_seq,
                               "last_utc_ns": last_utc_ns, "frames": frames}
        if how != "recorded":
            obj["how"] = how
        self._append(obj)

    def placed(self, span: SegmentSpan) -> None:
        """A span found from the digests: one line with both ends."""
        self.spans[span.segment] = span
        self._append({"segment": span.segment, "first_seq": span.first_seq,
                      "first_utc_ns": span.first_utc_ns, "last_seq": span.last_seq,
                      "last_utc_ns": span.last_utc_ns, "frames": span.frames, "how": span.how})

    def compact(self, existing: set[str]) -> None:
        """Rewrite the index without the segments that no longer exist (at start)."""
        stale = [n for n in self.spans if n not in existing]
        if not stale:
            return
        for name in stale:
            del self.spans[name]
        tmp = self.path.with_name(INDEX + ".tmp")
        lines = []
        for s in sorted(self.spans.values(), key=lambda s: s.segment):
            obj: dict[str, Any] = {"segment": s.segment, "first_seq": s.first_seq,
                                   "first_utc_ns": s.first_utc_ns}
            if s.closed:
                obj.update(last_seq=s.last_seq, last_utc_ns=s.last_utc_ns, frames=s.frames)
                if s.how != "recorded":
                    obj["how"] = s.how
            lines.append(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, self.path)


def signed_frames_between(cam_dir: Path, first_seq: int,
                          below_seq: int) -> tuple[int, int | None, int | None]:
    """(frames, last frame seq, last capture time) of the frame entries with
    ``first_seq <= seq < below_seq``, read from the end of the evidence log."""
    count, last_seq, last_utc = 0, None, None
    try:
        for raw in lines_backwards(cam_dir / EVIDENCE):
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            seq = _int(obj.get("seq")) if isinstance(obj, dict) else None
            if seq is None or seq >= below_seq:
                continue
            if seq < first_seq:
                break
            utc = _int(obj.get("utc_ns"))
            if obj.get("type") == "frame" and utc is not None:
                count += 1
                if last_seq is None or seq > last_seq:
                    last_seq = seq
                last_utc = utc if last_utc is None else max(last_utc, utc)
    except FileNotFoundError:
        pass
    return count, last_seq, last_utc


def _segment_digests(path: Path) -> list[str]:
    """The frame digest of every packet of a segment, in file order ([] if unreadable)."""
    import av

    from .digest import NO_PROBE_DECODE, BitstreamError, FrameHasher

    out: list[str] = []
    try:
        with av.open(os.path.abspath(path), options=NO_PROBE_DECODE) as c:  # only demuxed
            stream = c.streams.video[0]
            hasher = FrameHasher.of_stream(stream)
            for p in c.demux(stream):
                if p.size:
                    try:
                        out.append(hasher.digest(memoryview(p)).digest)
                    except BitstreamError:
                        continue
    except (av.FFmpegError, OSError, IndexError, BitstreamError):
        pass
    return out


def spans_from_digests(cam_dir: Path, segments: list[Path]) -> dict[str, SegmentSpan]:
    """Place segments the index does not describe (a store recorded before the index
    existed, or index lines lost in a power cut): every packet is digested, and the frame
    entries of the evidence log with those digests give the seqs and capture times. Slow
    (one pass over the log), hence rare. A segment none of whose frames is in the log is
    not placed (and so never purged: nothing says what it holds)."""
    per_segment = {p.name: _segment_digests(p) for p in segments}
    wanted = {d for ds in per_segment.values() for d in ds}
    found: dict[str, tuple[int, int]] = {}
    if wanted:
        with open(cam_dir / EVIDENCE, "rb") as f:
            for raw in f:
                i = raw.find(b'"digest":"')
                if i < 0 or raw[i + 10:i + 74].decode("ascii", "replace") not in wanted:
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                seq, utc = _int(obj.get("seq")), _int(obj.get("utc_ns"))
                if obj.get("type") == "frame" and seq is not None and utc is not None:
                    found[str(obj["digest"])] = (seq, utc)
    out: dict[str, SegmentSpan] = {}
    for name, digests in per_segment.items():
        hits = sorted(found[d] for d in digests if d in found)
        if hits:
            out[name] = SegmentSpan(name, hits[0][0], hits[0][1], hits[-1][0],
                                    max(u for _, u in hits), len(hits), True, "from_digests")
    return out


# --- holds --------------------------------------------------------------------------------

class HoldsError(UsageError):
    """STORE/holds.json cannot be read: nothing is purged until it is repaired."""


@dataclass(frozen=True)
class Hold:
    """Footage of ``camera`` captured from ``from_utc_ns`` to ``to_utc_ns`` is kept."""

    id: str
    camera: str
    from_utc_ns: int
    to_utc_ns: int
    kind: str  # "legal" or "export"
    reason: str
    case: str
    created_utc_ns: int
    by: str
    released_utc_ns: int | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_utc_ns is None

    def covers(self, camera: str, first_ns: int, last_ns: int) -> bool:
        return (self.active and self.camera == camera and self.from_utc_ns <= last_ns
                and self.to_utc_ns >= first_ns)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_HOLD_STR = ("id", "camera", "kind", "reason", "case", "by")
_HOLD_INT = ("from_utc_ns", "to_utc_ns", "created_utc_ns")
_HOLD_OPT = {"released_utc_ns": int, "released_by": str, "release_reason": str}


def _hold_from_json(obj: Any, where: str) -> Hold:
    if not isinstance(obj, dict):
        raise HoldsError(f"{where}: a hold is not a JSON object")
    for k in _HOLD_STR:
        if not isinstance(obj.get(k), str):
            raise HoldsError(f"{where}: hold member {k!r} is missing or not a string")
    for k in _HOLD_INT:
        if _int(obj.get(k)) is None:
            raise HoldsError(f"{where}: hold member {k!r} is missing or not an integer")
    for k, kind in _HOLD_OPT.items():
        v = obj.get(k)
        if v is not None and (type(v) is not kind):
            raise HoldsError(f"{where}: hold member {k!r} has the wrong type")
    if obj["kind"] not in HOLD_KINDS:
        raise HoldsError(f"{where}: hold kind {obj['kind']!r} is not one of {HOLD_KINDS}")
    return Hold(obj["id"], obj["camera"], obj["from_utc_ns"], obj["to_utc_ns"], obj["kind"],
                obj["reason"], obj["case"], obj["created_utc_ns"], obj["by"],
                obj.get("released_utc_ns"), obj.get("released_by"), obj.get("release_reason"))


def load_holds(store: Path) -> list[Hold]:
    """Every hold, active or released. A damaged file raises :class:`HoldsError`: the
    purge then keeps everything (it fails closed)."""
    path = store / HOLDS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise HoldsError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HoldsError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise HoldsError(f"{path} is not a JSON list of holds")
    return [_hold_from_json(obj, str(path)) for obj in data]


@contextmanager
def _holds_locked(store: Path) -> Iterator[None]:
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".holds.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def _save_holds(store: Path, holds: list[Hold]) -> None:
    path = store / HOLDS
    tmp = store / (HOLDS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps([h.to_json() for h in holds], indent=1, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(store)


def add_hold(store: Path, camera: str, from_utc_ns: int, to_utc_ns: int, *, kind: str,
             reason: str, case: str, by: str, now_ns: int) -> Hold:
    """Add a hold (under a lock: exports, the CLI and the service may add at once)."""
    try:
        check_camera_id(camera)
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    if kind not in HOLD_KINDS:
        raise UsageError(f"hold kind {kind!r} is not one of {', '.join(HOLD_KINDS)}")
    if to_utc_ns < from_utc_ns:
        raise UsageError("a hold's end (--to) must not be before its start (--from)")
    if not reason.strip():
        raise UsageError("a hold needs a reason (--reason)")
    import secrets  # here: every recorder imports this module, few add holds

    with _holds_locked(store):
        holds = load_holds(store)
        hold = Hold(secrets.token_hex(6), camera, from_utc_ns, to_utc_ns, kind, reason,
                    case, now_ns, by)
        _save_holds(store, [*holds, hold])
    return hold


def release_hold(store: Path, hold_id: str, *, by: str, reason: str, now_ns: int) -> Hold:
    """Release an active hold; it stays in the file, with who released it, when and why."""
    if not reason.strip():
        raise UsageError("releasing a hold needs a reason (--reason)")
    with _holds_locked(store):
        holds = load_holds(store)
        for i, h in enumerate(holds):
            if h.id == hold_id:
                if not h.active:
                    raise UsageError(f"hold {hold_id} was already released on "
                                     f"{iso_ns(h.released_utc_ns or 0)}")
                holds[i] = replace(h, released_utc_ns=now_ns, released_by=by,
                                   release_reason=reason)
                _save_holds(store, holds)
                return holds[i]
    raise UsageError(f"no hold {hold_id!r} in {store / HOLDS}")


# --- the register -------------------------------------------------------------------------

@contextmanager
def _locked_append(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield f
        f.flush()
        os.fsync(f.fileno())


def append_register(store: Path, line: dict[str, Any]) -> None:
    """One line per destroyed segment; every camera's worker appends (under a lock)."""
    data = json.dumps(line, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
    with _locked_append(store / REGISTER) as f:
        f.write(data)


def read_register(store: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The register's lines, oldest first (the last ``limit`` of them)."""
    try:
        with open(store / REGISTER, "rb") as f:
            raws = f.readlines()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for raw in raws[-limit:] if limit else raws:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


# --- what the evidence says was destroyed ---------------------------------------------------

def destroyed_in(entries: Any, first_seq: int, last_seq: int) -> str | None:
    """A one-line explanation when a signed ``retention_purge`` event among ``entries``
    (parsed evidence lines) names frames within ``first_seq..last_seq``; else None."""
    for e in entries:
        if e.get("type") != "event" or e.get("event") != EVENT:
            continue
        d = e.get("detail") or {}
        a, b = _int(d.get("first_seq")), _int(d.get("last_seq"))
        if a is None or b is None or b < first_seq or a > last_seq:
            continue
        span = ""
        f_ns, l_ns = _int(d.get("first_utc_ns")), _int(d.get("last_utc_ns"))
        if f_ns is not None and l_ns is not None:
            span = f" from {iso_ns(f_ns)} to {iso_ns(l_ns)}"
        return (f"the footage of {e.get('camera')}{span} (frames seq {a}..{b}) was destroyed "
                f"on {iso_ns(int(e['utc_ns']))} after {d.get('retention_days', '?')} days of "
                f"retention (signed retention_purge event at seq {e.get('seq')}); it cannot "
                "be exported")
    return None


# --- the purge, done by the camera's capture worker --------------------------------------

class RetentionKeeper:
    """The capture worker's side: its camera's segment index, and the purge.

    ``retention_days`` None: the index is kept, nothing is purged. A pass runs at most
    every min(60 s, retention / 4) of wall time, when the worker calls :meth:`purge` at a
    moment the chain may be checkpointed (right after one of its own checkpoints)."""

    def __init__(self, store: Path, camera: str, cam_dir: Path, retention_days: float | None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store, self.camera, self.cam_dir, self.clock = store, camera, cam_dir, clock
        self.index = SegmentIndex(cam_dir)
        self.retention_days = retention_days
        self.retention_ns = None if retention_days is None else round(retention_days * DAY_NS)
        seconds = MAX_PASS_SECONDS if retention_days is None else retention_days * 86_400 / 4
        self.interval = max(MIN_PASS_SECONDS, min(MAX_PASS_SECONDS, seconds))
        self._next_pass = 0.0  # monotonic; the first pass is due at once
        self._unplaced: set[str] = set()  # segments the digests could not place (logged)
        self.purged = 0

    # The index, as the worker opens and closes segments.
    def opened(self, segment: str, first_seq: int, first_utc_ns: int) -> None:
        try:
            self.index.opened(segment, first_seq, first_utc_ns)
        except OSError as exc:
            log.warning("%s: cannot write the segment index (%s)", self.camera, exc)

    def closed(self, segment: str, last_seq: int, last_utc_ns: int, frames: int) -> None:
        span = self.index.spans.get(segment)
        if span is None or span.first_seq is None or last_seq < span.first_seq:
            return  # never opened in the index (no frame recorded): left to start()/digests
        try:
            self.index.closed(segment, last_seq, last_utc_ns, frames)
        except OSError as exc:
            log.warning("%s: cannot write the segment index (%s)", self.camera, exc)

    def start(self, next_seq: int) -> None:
        """Before the run appends anything: a segment the last run left open (killed) is
        closed in the index from the recovered chain, whose next seq bounds its frames."""
        try:
            existing = {p.name for p in list_segments(self.cam_dir)}
            spans = self.index.spans
            self.index.compact(existing)
            still_open = sorted(n for n, s in spans.items() if not s.closed)
            for name in still_open[:-1]:  # only the last can be open; others: from digests
                del spans[name]
            if still_open:
                span = spans[still_open[-1]]
                if span.first_seq is None or span.first_seq >= next_seq:
                    # Its frames were never signed (set aside as the unsigned tail).
                    self.index.closed(span.segment, None, span.first_utc_ns or 0, 0,
                                      "after_crash")
                    span.first_seq = None
                else:
                    n, last_seq, last_utc = signed_frames_between(self.cam_dir,
                                                                  span.first_seq, next_seq)
                    self.index.closed(span.segment, last_seq,
                                      last_utc if last_utc is not None
                                      else span.first_utc_ns or 0, n, "after_crash")
        except OSError as exc:
            log.warning("%s: cannot update the segment index (%s)", self.camera, exc)

    def due(self) -> bool:
        return self.retention_ns is not None and time.monotonic() >= self._next_pass

    def plan(self, now_ns: int, open_segment: str | None) -> list[tuple[SegmentSpan, Path]]:
        """The closed segments to destroy now: the last capture time older than the
        retention period, and no active hold of the camera overlapping them. Never the
        segment being written, nor the last file (segment numbering continues from it)."""
        assert self.retention_ns is not None
        segments = list_segments(self.cam_dir)[:-1]
        candidates = [p for p in segments if p.name != open_segment]
        spans = self.index.spans
        unplaced = [p for p in candidates if (p.name not in spans or not spans[p.name].closed)
                    and p.name not in self._unplaced][:FALLBACK_BATCH]
        if unplaced:
            found = spans_from_digests(self.cam_dir, unplaced)
            for p in unplaced:
                if p.name in found:
                    self.index.placed(found[p.name])
                else:
                    self._unplaced.add(p.name)
                    log.warning("%s: segment %s holds no frame of the evidence log; it is "
                                "kept (nothing says what it holds)", self.camera, p.name)
        holds = [h for h in load_holds(self.store) if h.active and h.camera == self.camera]
        deadline = now_ns - self.retention_ns
        out: list[tuple[SegmentSpan, Path]] = []
        for p in candidates:
            s = spans.get(p.name)
            if s is None or not s.closed or s.last_utc_ns is None or s.last_utc_ns >= deadline:
                continue
            first = s.first_utc_ns if s.first_utc_ns is not None else s.last_utc_ns
            if any(h.covers(self.camera, first, s.last_utc_ns) for h in holds):
                continue
            out.append((s, p))
        return out

    def purge(self, chain: Chain, signer: Signer, open_segment: str | None) -> int:
        """One pass: destroy what :meth:`plan` names; returns how many segments."""
        if self.retention_ns is None:
            return 0
        self._next_pass = time.monotonic() + self.interval
        try:
            plan = self.plan(self.clock(), open_segment)
        except (OSError, UsageError) as exc:  # HoldsError among them: keep everything
            log.warning("%s: retention pass skipped, nothing destroyed: %s", self.camera, exc)
            return 0
        if len(plan) > MAX_PER_PASS:  # a backlog (the recorder was off): a little at a time,
            plan = plan[:MAX_PER_PASS]  # so that capture is never held up for long
            self._next_pass = time.monotonic() + MIN_PASS_SECONDS
        done = 0
        for span, path in plan:
            if not self._destroy(chain, signer, span, path):
                break
            done += 1
        self.purged += done
        return done

    def _destroy(self, chain: Chain, signer: Signer, span: SegmentSpan, path: Path) -> bool:
        """Sign, journal and register the destruction, then delete the file. Everything is
        written before the file goes: a crash in between repeats the event, the journal
        entry and the register line at the next pass, and never loses them."""
        from .journal import Journal

        assert self.retention_days is not None and self.retention_ns is not None
        try:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            size = path.stat().st_size
        except OSError as exc:
            log.warning("%s: cannot read %s before destroying it (%s)", self.camera, path, exc)
            return False
        now = self.clock()
        days = days_text(self.retention_days)
        seqs = span.seqs
        detail: dict[str, Any] = {
            "segment": span.segment,
            "first_seq": None if seqs is None else seqs[0],
            "last_seq": None if seqs is None else seqs[1],
            "first_utc_ns": span.first_utc_ns, "last_utc_ns": span.last_utc_ns,
            "frames": span.frames, "sha256": h.hexdigest(), "bytes": size,
            "retention_days": days, "deadline_utc_ns": now - self.retention_ns,
            "reason": f"retention period of {days} days elapsed (decree of 3 August 2007: "
                      "footage is kept at most one month)",
        }
        if span.how != "recorded":
            detail["placed"] = span.how  # how the frames it held were found
        event_seq = chain.seq
        chain.event(EVENT, now, detail)
        chain.checkpoint(now)  # signed and fsynced before anything is deleted
        try:
            journal_seq = Journal(self.store / JOURNAL, signer).append(
                "delete", "retention", now, {"camera": self.camera, "event_seq": event_seq,
                                             **detail})
            append_register(self.store, {
                "camera": self.camera, "segment": span.segment,
                "footage_from": None if span.first_utc_ns is None else iso_ns(span.first_utc_ns),
                "footage_to": None if span.last_utc_ns is None else iso_ns(span.last_utc_ns),
                "destroyed_utc": iso_ns(now), "frames": span.frames,
                "first_seq": detail["first_seq"], "last_seq": detail["last_seq"],
                "sha256": detail["sha256"], "bytes": size, "retention_days": days,
                "event_seq": event_seq, "journal_seq": journal_seq,
            })
            path.unlink()
            fsync_dir(path.parent)
        except OSError as exc:
            log.warning("%s: %s not destroyed (%s); retried at the next pass", self.camera,
                        path.name, exc)
            return False
        self.index.spans.pop(span.segment, None)
        log.info("%s: destroyed %s (frames seq %s, footage to %s)", self.camera, span.segment,
                 "-" if seqs is None else f"{seqs[0]}..{seqs[1]}",
                 "-" if span.last_utc_ns is None else iso_ns(span.last_utc_ns))
        return True
