"""The pure verifier core: evidence entries and observed frames in, a report out.

No I/O, no clock. The numbered steps match docs/FORMAT.md section "Verification".
"""

from __future__ import annotations

import bisect
import difflib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from ..canonical import CanonicalError, canonical_bytes, sha256_hex
from ..model import (
    GENESIS,
    Checkpoint,
    ContextRecord,
    EventRecord,
    FrameRecord,
    Record,
    RecordError,
    TimestampEntry,
    entry_from_json,
)
from ..trust.policy import TrustPolicy
from .keyring import CallbackPolicy, KeyRing
from .timestamps import Stamp, check_timestamps, clock_quality

ERROR, WARNING, INFO = "error", "warning", "info"
MAX_ENTRIES = 20_000_000
MAX_FINDINGS_PER_KIND = 200
TIME_TOLERANCE = Fraction(3, 1000)  # MKV stores milliseconds; remuxing may round


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    message: str
    first_frame: int | None = None
    last_frame: int | None = None
    first_utc_ns: int | None = None
    last_utc_ns: int | None = None
    camera: str | None = None


@dataclass(frozen=True)
class ObservedFrame:
    """One access unit as found in the media, with its container-independent digest."""

    segment: str
    index: int
    digest: str
    params: str
    pts: int | None
    time_base: Fraction
    keyframe: bool


@dataclass(frozen=True)
class MediaProblem:
    segment: str
    message: str
    after_index: int  # frames read from the segment before the problem


@dataclass(frozen=True)
class ParsedLine:
    line: int
    value: Any  # the parsed JSON value, or None with ``error`` set
    error: str | None = None
    torn: bool = False  # the last line, cut short (no newline): never signed
    # SHA-256 (hex) of the line's canonical bytes, when the loader has checked that the
    # line is exactly those bytes and hashed it; None: the core encodes and hashes it.
    digest: str | None = None


@dataclass(frozen=True)
class Anchor:
    """Where an exported clip's chain starts: the signed checkpoint just before its
    first entry, and the context records in force that precede that checkpoint."""

    checkpoint: dict[str, Any]
    contexts: tuple[dict[str, Any], ...] = ()
    # Key material carried with the clip (docs/FORMAT.md 12.5): the keys that sign it
    # (``{"id", "alg", "public"?, "certs"?}``), and the key rotations of the camera at or
    # before the anchor, as [event, checkpoint whose head is that event] pairs.
    keys: tuple[Any, ...] = ()
    rotations: tuple[Any, ...] = ()


@dataclass
class CameraReport:
    camera: str
    frames: int = 0
    signed_frames: int = 0
    first_utc_ns: int | None = None
    last_utc_ns: int | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    locations: list[dict[str, str]] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    media_checked: bool = False
    observed_frames: int = 0
    # Step 6 (docs/FORMAT.md sections 13-14): trusted timestamps and clock quality.
    proven_existence: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)  # the keys that signed (step 4)
    key_ring: Any = field(default=None, repr=False, compare=False)  # for a bundle's export
    timestamps: dict[str, Any] = field(default_factory=dict)
    clock: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    cameras: tuple[CameraReport, ...]
    findings: tuple[Finding, ...]

    @property
    def authentic(self) -> bool:
        return bool(self.cameras) and not any(
            f.severity in (ERROR, WARNING) for f in self.findings
        )

    @property
    def verdict(self) -> str:
        return "authentic" if self.authentic else "not_authentic"


Verifier = Callable[[bytes, bytes], bool]


@dataclass(frozen=True)
class _Span:
    first: int
    last: int
    first_utc: int | None
    last_utc: int | None
    message: str


class _Findings:
    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}
        self.spans: dict[tuple[str, str], list[_Span]] = {}

    def span(self, kind: str, severity: str, first: int, last: int, message: str,
             first_utc: int | None = None, last_utc: int | None = None) -> None:
        """A finding over entries ``first..last``; overlapping or adjacent ones of the same
        kind are merged into one finding by :meth:`flush`."""
        self.spans.setdefault((kind, severity), []).append(
            _Span(first, last, first_utc, last_utc, message))

    def flush(self) -> None:
        for (kind, severity), items in self.spans.items():
            items.sort(key=lambda s: (s.first, s.last))
            runs: list[tuple[int, list[_Span]]] = []
            for it in items:
                if runs and it.first <= runs[-1][0] + 1:
                    runs[-1] = (max(runs[-1][0], it.last), runs[-1][1] + [it])
                else:
                    runs.append((it.last, [it]))
            for hi, run in runs:
                lo = run[0].first
                firsts = [s.first_utc for s in run if s.first_utc is not None]
                lasts = [s.last_utc for s in run if s.last_utc is not None]
                message = run[0].message
                if len(run) > 1:
                    message += f" (and {len(run) - 1} more such findings, through seq {hi})"
                self.add(kind, severity, message, lo, hi, min(firsts, default=None),
                         max(lasts, default=None))
        self.spans.clear()

    def add(self, kind: str, severity: str, message: str, first: int | None = None,
            last: int | None = None, first_utc: int | None = None,
            last_utc: int | None = None) -> None:
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n == MAX_FINDINGS_PER_KIND + 1:
            self.items.append(Finding(kind, severity, f"more {kind} findings omitted",
                                      camera=self.camera))
        if n > MAX_FINDINGS_PER_KIND:
            return
        self.items.append(Finding(kind, severity, message, first,
                                  first if last is None else last, first_utc,
                                  first_utc if last_utc is None else last_utc, self.camera))


def _utc_text(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns // 10**9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return f"{ns} ns after 1970-01-01 UTC"


@dataclass(frozen=True)
class _Purge:
    seq: int  # the event's
    utc_ns: int
    first: int  # the frames it names: first..last, all before the event
    last: int
    segment: str
    days: str


def _retention(fx: _Findings, events: Sequence[dict[str, Any]],
               frames: Sequence[FrameRecord], observed: Sequence[ObservedFrame] | None,
               signed_upto: int) -> Sequence[FrameRecord]:
    """Retention (docs/FORMAT.md section 15): the frames that a signed ``retention_purge``
    event names (``first_seq..last_seq``, before the event in the chain) were destroyed
    on purpose. One information finding per run of purges; such frames absent from the
    media are not missing, and those still there are noted (and checked like the rest).
    Returns the frames step 5 expects in the media."""
    purges: list[_Purge] = []
    for ev in events:
        d = ev["detail"]
        if ev["event"] != "retention_purge" or ev["seq"] > signed_upto:
            continue  # an unsigned event explains nothing
        a, b = d.get("first_seq"), d.get("last_seq")
        if type(a) is not int or type(b) is not int or a > min(b, ev["seq"] - 1):
            continue  # names no frame (a segment of never-signed frames)
        purges.append(_Purge(ev["seq"], ev["utc_ns"], a, min(b, ev["seq"] - 1),
                             str(d.get("segment", "?")), str(d.get("retention_days", "?"))))
    if not purges:
        return frames
    purges.sort(key=lambda p: (p.first, p.seq))
    starts: list[int] = []
    ends: list[int] = []
    for p in purges:  # merged ranges, for the lookup
        if starts and p.first <= ends[-1] + 1:
            ends[-1] = max(ends[-1], p.last)
        else:
            starts.append(p.first)
            ends.append(p.last)
    in_range: list[FrameRecord] = []
    kept: list[FrameRecord] = []
    for f in frames:
        k = bisect.bisect_right(starts, f.seq) - 1
        (in_range if k >= 0 and f.seq <= ends[k] else kept).append(f)
    # A destroyed frame is still there when the media holds its picture more often than
    # the kept records do (a picture may repeat, e.g. in another run of a test camera).
    wanted = {f.digest for f in in_range}
    spare = Counter(o.digest for o in observed or () if o.digest in wanted)
    spare.subtract(f.digest for f in kept if f.digest in wanted)
    gone: set[int] = set()  # id() of the records whose frame is not expected
    present: list[int] = []
    for f in in_range:
        if spare[f.digest] > 0:
            spare[f.digest] -= 1
            present.append(f.seq)
        else:
            gone.add(id(f))
    expected = [f for f in frames if id(f) not in gone]
    kept_seqs = sorted(f.seq for f in kept)
    # Purges with no kept frame between them make one finding (a month of segments).
    groups: list[list[_Purge]] = []
    hi = -1  # the last seq the group so far names
    for p in purges:
        if groups:
            nxt = bisect.bisect_right(kept_seqs, hi)
            if nxt == len(kept_seqs) or kept_seqs[nxt] > p.first:
                groups[-1].append(p)
                hi = max(hi, p.last)
                continue
        groups.append([p])
        hi = p.last
    in_range.sort(key=lambda f: f.seq)
    range_seqs = [f.seq for f in in_range]

    def between(lo: int, hi: int) -> list[FrameRecord]:
        return in_range[bisect.bisect_left(range_seqs, lo):bisect.bisect_right(range_seqs, hi)]

    for g in groups:
        lo, hi = g[0].first, max(p.last for p in g)
        recs = between(lo, hi)
        if not recs:
            continue  # it names frames outside this evidence (before an exported clip)
        f_utc = min((f.utc_ns for f in recs), default=None)
        l_utc = max((f.utc_ns for f in recs), default=None)
        span = "" if f_utc is None or l_utc is None else (
            f", footage from {_utc_text(f_utc)} to {_utc_text(l_utc)}")
        days = "/".join(sorted({p.days for p in g}))
        if len(g) == 1:
            p = g[0]
            message = (f"frames seq {lo}..{hi} ({len(recs)} frames, segment {p.segment}{span}) "
                       f"were destroyed on {_utc_text(p.utc_ns)} after {days} days of "
                       f"retention, as the signed event at seq {p.seq} records")
        else:
            when = sorted(p.utc_ns for p in g)
            segs = sorted(p.segment for p in g)
            message = (f"frames seq {lo}..{hi} ({len(recs)} frames in {len(g)} segments, "
                       f"{segs[0]} to {segs[-1]}{span}) were destroyed from "
                       f"{_utc_text(when[0])} to {_utc_text(when[-1])} after {days} days of "
                       f"retention, as {len(g)} signed retention_purge events record (seq "
                       f"{min(p.seq for p in g)} to {max(p.seq for p in g)})")
        fx.add("retention_purge", INFO, message, lo, hi, f_utc, l_utc)
    for a, b in _ranges(sorted(set(present))):
        fx.add("purged_frames_present", INFO,
               f"frames seq {a}..{b} are still in the media although a signed "
               "retention_purge event records their destruction (the deletion failed or was "
               "interrupted, or the files were put back); they are checked like the others",
               a, b, between(a, a)[0].utc_ns, between(b, b)[0].utc_ns)
    return expected


def _ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _context_findings(fx: _Findings, rec: ContextRecord) -> None:
    """Information a court should see about how the footage was made (transcode mode,
    a profile below the decree's minimums); never changes the verdict."""
    c = rec.context
    enc = c.get("encoder")
    if c.get("mode") == "transcode" and isinstance(enc, dict):
        rate = (f"CRF {enc.get('crf')}" if enc.get("crf") is not None
                else f"{enc.get('bitrate')} bit/s")
        fx.add("transcoded", INFO,
               f"context seq {rec.seq}: the stream was encoded by the recorder "
               f"({enc.get('codec')}, preset {enc.get('preset')}, {rate}, GOP "
               f"{enc.get('gop')}) from {c.get('source')!s}, with date, time, camera and "
               "place burned into the picture; the digests certify the encoded frames",
               rec.seq, first_utc=rec.utc_ns)
    prof = c.get("profile")
    if isinstance(prof, dict) and prof.get("meets_minimum") is False:
        mn = prof.get("minimum")
        mn = mn if isinstance(mn, dict) else {}
        how = ("the operator overrode the check" if prof.get("override") else
               "recorded as the camera sends it (passthrough)")
        fx.add("profile_below_minimum", INFO,
               f"context seq {rec.seq}: the stream ({prof.get('width')}x{prof.get('height')}, "
               f"fps {prof.get('fps')}) is below the {prof.get('camera')} minimum "
               f"({mn.get('width')}x{mn.get('height')}, {mn.get('fps')} fps) of the decree of "
               f"3 August 2007; {how}", rec.seq, first_utc=rec.utc_ns)


def _key_findings(fx: _Findings, rep: CameraReport, ring: KeyRing,
                  seq_utc: dict[int, int]) -> None:
    """Step 4, keys: the rotations that took effect (information), carried rotations
    that are not valid (errors), and what the report says about each signing key."""
    for seq, message in ring.problems:
        fx.add("key_not_introduced", ERROR, message, None if seq < 0 else seq)
    for rot in ring.applied():
        assert rot.new is not None
        where = " (before the clip; carried with it)" if rot.before_clip else ""
        fx.add("key_rotation", INFO,
               f"key rotation at seq {rot.seq}{where}: key {str(rot.previous)[:16]}… "
               f"introduced key {rot.new.key_id[:16]}… ({rot.new.alg}), signed by the old "
               "key; later checkpoints are signed by the new one", rot.seq,
               first_utc=seq_utc.get(rot.seq, rot.utc_ns))
    rep.keys = ring.describe()


def _note_context(rep: CameraReport, rec: ContextRecord) -> None:
    c = rec.context
    if c["location"] not in rep.locations:
        rep.locations.append(dict(c["location"]))
    if rec.key_id not in rep.key_ids:
        rep.key_ids.append(rec.key_id)
    stream = c.get("stream")
    if isinstance(stream, dict) and stream not in rep.streams:
        rep.streams.append(stream)


def inspect_camera(
    camera: str,
    lines: Sequence[ParsedLine],
    observed: Sequence[ObservedFrame] | None,
    media_problems: Sequence[MediaProblem],
    trust: TrustPolicy | str,
    verify_signature: Verifier | None = None,
    anchor: Anchor | None = None,
    *,
    tsa_anchors: Sequence[bytes] | None = None,
    timestamp_checkpoints: Sequence[Any] = (),
) -> tuple[CameraReport, list[Finding]]:
    """Verify one camera's evidence (and media, when ``observed`` is given).
    ``trust``: the trust policy (a bare key or a CA, :mod:`vidproof.trust.policy`), or a
    trusted key id with ``verify_signature``, its signature check.
    ``tsa_anchors``: DER certificates a TSA's must lead to (None: no anchor given);
    ``timestamp_checkpoints``: a bundle's checkpoints after the clip (section 13.5)."""
    rep = CameraReport(camera)
    fx = _Findings(camera)
    if len(lines) > MAX_ENTRIES:
        fx.add("too_large", ERROR, f"{len(lines)} entries exceed the limit of {MAX_ENTRIES}")
        return rep, fx.items

    # Step 1: every line is a well-formed entry of this camera.
    records: list[Record] = []
    hashes: list[str] = []
    checkpoints: list[tuple[Checkpoint, str, dict[str, Any]]] = []
    stamps: list[Stamp] = []
    for pl in lines:
        if pl.error is not None and pl.torn:
            fx.add("unsigned_tail", WARNING, f"evidence line {pl.line}: {pl.error}: the "
                   "recorder was stopped while writing it; it is not signed")
            continue
        if pl.error is not None:
            fx.add("malformed_entry", ERROR, f"evidence line {pl.line}: {pl.error}")
            continue
        try:
            entry = entry_from_json(pl.value)
            digest = (pl.digest if pl.digest is not None else
                      sha256_hex(canonical_bytes(pl.value)))
        except (RecordError, CanonicalError) as exc:
            fx.add("malformed_entry", ERROR, f"evidence line {pl.line}: {exc}")
            continue
        if entry.camera != camera:
            fx.span("wrong_camera", ERROR, entry.seq, entry.seq,
                    f"evidence line {pl.line} belongs to camera {entry.camera!r}, not {camera!r}",
                    entry.utc_ns, entry.utc_ns)
            continue
        if isinstance(entry, TimestampEntry):  # not in the chain: checked in step 6
            stamps.append(Stamp(pl.line, entry.seq, entry.checkpoint, entry.token,
                                entry.utc_ns))
        elif isinstance(entry, Checkpoint):
            checkpoints.append((entry, digest, pl.value))
        else:
            records.append(entry)
            hashes.append(digest)

    # Step 2: the chain: consecutive seq, each entry commits to the one before.
    by_seq: dict[int, int] = {}
    if anchor is not None:
        expected_prev, expected_seq = str(anchor.checkpoint.get("head")), None
        a_seq = anchor.checkpoint.get("seq")
        expected_seq = a_seq + 1 if isinstance(a_seq, int) else None
    else:
        expected_prev, expected_seq = GENESIS, 0
    prev_rec: Record | None = None
    for i, rec in enumerate(records):
        if rec.seq in by_seq:
            fx.add("duplicate_record", ERROR,
                   f"entry seq {rec.seq} appears more than once in the evidence", rec.seq,
                   first_utc=rec.utc_ns)
            continue
        by_seq[rec.seq] = i
        if expected_seq is not None and rec.seq != expected_seq:
            if rec.seq > expected_seq:
                fx.add("records_missing", ERROR,
                       f"evidence entries seq {expected_seq}..{rec.seq - 1} are missing "
                       "from the chain", expected_seq, rec.seq - 1,
                       None if prev_rec is None else prev_rec.utc_ns, rec.utc_ns)
            else:
                fx.add("records_reordered", ERROR,
                       f"entry seq {rec.seq} comes after seq {expected_seq - 1}", rec.seq,
                       first_utc=rec.utc_ns)
        elif rec.prev != expected_prev:
            where = "the chain start" if prev_rec is None else f"entry seq {prev_rec.seq}"
            fx.add("record_modified", ERROR,
                   f"entry seq {rec.seq} does not commit to {where}: one of them was "
                   "modified or replaced", prev_rec.seq if prev_rec else rec.seq, rec.seq,
                   prev_rec.utc_ns if prev_rec else rec.utc_ns, rec.utc_ns)
        expected_prev, expected_seq, prev_rec = hashes[i], rec.seq + 1, rec

    # Step 3: the context in force. A clip's first entries may refer to a context
    # recorded before its anchor: the bundle carries it, matched here by hash.
    anchor_contexts: dict[str, ContextRecord] = {}
    for raw_ctx in anchor.contexts if anchor is not None else ():
        try:
            actx = entry_from_json(raw_ctx)
            h = sha256_hex(canonical_bytes(raw_ctx))
        except (RecordError, CanonicalError) as exc:
            fx.add("malformed_entry", ERROR, f"context carried with the clip: {exc}")
            continue
        if isinstance(actx, ContextRecord) and actx.camera == camera:
            anchor_contexts[h] = actx
    ctx_hash: str | None = None
    ctx_rec: ContextRecord | None = None
    frames: list[FrameRecord] = []
    for i, rec in enumerate(records):
        if isinstance(rec, ContextRecord):
            ctx_hash, ctx_rec = hashes[i], rec
            c = rec.context
            if c["camera_id"] != camera:
                fx.add("context_mismatch", ERROR,
                       f"context at seq {rec.seq} names camera {c['camera_id']!r}", rec.seq)
            _note_context(rep, rec)
            _context_findings(fx, rec)
            continue
        assert isinstance(rec, FrameRecord | EventRecord)
        if ctx_hash is None and rec.ctx in anchor_contexts:
            ctx_hash = rec.ctx
            _note_context(rep, anchor_contexts[rec.ctx])
        if rec.ctx != ctx_hash:
            fx.span("context_mismatch", ERROR, rec.seq, rec.seq,
                    f"entry seq {rec.seq} refers to a context that is not the one in force",
                    rec.utc_ns, rec.utc_ns)
        if isinstance(rec, FrameRecord):
            frames.append(rec)
        else:
            rep.events.append({"seq": rec.seq, "utc_ns": rec.utc_ns, "event": rec.event,
                               "detail": rec.detail})
    del ctx_rec

    # Step 4: checkpoints: trusted key, valid signature, head on the chain.
    if isinstance(trust, str):
        assert verify_signature is not None, "a key id needs its verify_signature"
        trust = CallbackPolicy(trust, verify_signature)
    ring = KeyRing.build(trust, records, list(anchor_contexts.values()),
                         anchor.keys if anchor is not None else (), anchor is not None)
    rep.key_ring = ring
    signed_upto = -1
    prev_cp: str | None = None if anchor is not None else GENESIS
    cp_list = list(checkpoints)
    if anchor is not None:
        prev_cp = None
        try:
            acp = entry_from_json(anchor.checkpoint)
            if not isinstance(acp, Checkpoint) or acp.camera != camera:
                raise RecordError("the anchor is not a checkpoint of this camera")
            cp_list.insert(0, (acp, sha256_hex(canonical_bytes(anchor.checkpoint)),
                               anchor.checkpoint))
            ring.prehistory(camera, anchor.rotations, acp.seq)
        except (RecordError, CanonicalError) as exc:
            fx.add("anchor_invalid", ERROR, f"the clip's starting checkpoint is invalid: {exc}")
    # Each checkpoint newly covers the entries after the one before it: a finding about a
    # checkpoint names that range, which holds the entry that was altered or not signed.
    seq_utc = {r.seq: r.utc_ns for r in records}
    covered_from = records[0].seq if records else 0
    last_cp_seq = -1
    for cp, cp_hash, raw in cp_list:
        is_anchor = anchor is not None and raw is anchor.checkpoint
        lo = min(covered_from, cp.seq)
        covered_from = max(covered_from, cp.seq + 1)
        last_cp_seq = max(last_cp_seq, cp.seq)
        span = (f"entries seq {lo}..{cp.seq}" if lo < cp.seq else f"entry seq {cp.seq}")
        lo_utc = seq_utc.get(lo, cp.utc_ns)
        body = {k: v for k, v in raw.items() if k != "sig"}
        try:
            sig = bytes.fromhex(cp.sig)
        except ValueError:
            sig = b""
        ok, kind, why = ring.check(cp, sig, canonical_bytes(body))
        if not ok and kind != "bad_signature":
            fx.span(kind, ERROR, lo, cp.seq,
                    f"checkpoint at seq {cp.seq}: {why}: {span} are not signed by a "
                    "trusted key",
                    lo_utc, cp.utc_ns)
        elif not ok:
            fx.span("bad_signature", ERROR, lo, cp.seq,
                    f"checkpoint at seq {cp.seq} has an invalid signature: {span} are not "
                    "validly signed", lo_utc, cp.utc_ns)
        if prev_cp is not None and cp.prev_checkpoint != prev_cp:
            fx.span("checkpoint_chain", ERROR, lo, cp.seq,
                    f"checkpoint at seq {cp.seq} does not follow the previous checkpoint "
                    f"(a checkpoint covering {span} was removed, reordered or altered)",
                    lo_utc, cp.utc_ns)
        prev_cp = cp_hash
        if is_anchor:
            ring.settle(cp, True)
            continue  # its head is where the clip's chain starts (step 2)
        idx = by_seq.get(cp.seq)
        if idx is None:
            fx.span("checkpoint_mismatch", ERROR, lo, cp.seq,
                    f"checkpoint signs entry seq {cp.seq}, which is not in the evidence",
                    lo_utc, cp.utc_ns)
            ring.settle(cp, False)
            continue
        if hashes[idx] != cp.head:
            fx.span("checkpoint_mismatch", ERROR, lo, cp.seq,
                    f"the chain head at entry seq {cp.seq} is not the one its checkpoint "
                    f"signed: one of {span} was modified, removed or inserted",
                    lo_utc, records[idx].utc_ns)
            ring.settle(cp, False)
            continue
        ring.settle(cp, True)
        if ok:
            rep.checkpoints += 1
            signed_upto = max(signed_upto, cp.seq)
    _key_findings(fx, rep, ring, seq_utc)
    # Entries after the last checkpoint are an unsigned tail (a crash, or added); entries
    # under a checkpoint that failed are reported above, as errors.
    unsigned = [r for r in records if r.seq > max(signed_upto, last_cp_seq)]
    if unsigned:
        fx.add("unsigned_tail", WARNING,
               f"{len(unsigned)} evidence entries after the last checkpoint are not "
               "signed (the recorder stopped before signing them, or they were added)",
               unsigned[0].seq, unsigned[-1].seq, unsigned[0].utc_ns, unsigned[-1].utc_ns)

    # Events that explain gaps and restarts.
    interrupted: set[str] = set()
    lost_at: int | None = None
    for ev in rep.events:
        detail = ev["detail"]
        if ev["event"] == "camera_lost":
            lost_at = ev["utc_ns"]
            fx.add("camera_lost", INFO, f"camera lost: {detail.get('reason', 'unknown reason')}",
                   ev["seq"], first_utc=ev["utc_ns"])
        elif ev["event"] == "camera_back":
            fx.add("camera_back", INFO,
                   "camera back after a signed gap of "
                   f"{(ev['utc_ns'] - (lost_at or ev['utc_ns'])) / 1e9:.3f} s",
                   ev["seq"], first_utc=lost_at, last_utc=ev["utc_ns"])
        elif ev["event"] == "recorder_start" and detail.get("previous_run") == "interrupted":
            seg = detail.get("interrupted_segment")
            if isinstance(seg, str):
                interrupted.add(seg)
            n = detail.get("unsigned_entries", 0)
            fx.add("recorder_restart", INFO,
                   "recorder restarted after an interruption; "
                   f"{n} unsigned evidence entries were set aside in "
                   f"{detail.get('unsigned_file', '-')}", ev["seq"], first_utc=ev["utc_ns"])
    dups = [ev for ev in rep.events if ev["event"] == "source_duplicates"]
    if dups:  # one finding for them all: how much of the rate the source made up
        counts = [ev["detail"].get("frames") for ev in dups]
        n = sum(c for c in counts if isinstance(c, int) and not isinstance(c, bool))
        firsts = [ev["detail"].get("first_seq") for ev in dups]
        lasts = [ev["detail"].get("last_seq") for ev in dups]
        lo = min((x for x in firsts if isinstance(x, int)), default=dups[0]["seq"])
        hi = max((x for x in lasts if isinstance(x, int)), default=dups[-1]["seq"])
        fx.add("source_duplicates", INFO,
               f"the source repeated {n} pictures (each identical to the one before it): it "
               "duplicates frames to reach its frame rate, so its real rate is lower than "
               "the recorded one", lo, hi, dups[0]["utc_ns"], dups[-1]["utc_ns"])

    # Step 5: the media, frame by frame, against the signed records.
    rep.frames = len(frames)
    rep.signed_frames = sum(1 for f in frames if f.seq <= signed_upto)
    if frames:
        rep.first_seq, rep.last_seq = frames[0].seq, frames[-1].seq
        rep.first_utc_ns = min(f.utc_ns for f in frames)
        rep.last_utc_ns = max(f.utc_ns for f in frames)
    if observed is not None:
        rep.media_checked = True
        rep.observed_frames = len(observed)
        # Frames destroyed by a signed retention purge are not expected in the media.
        expected = _retention(fx, rep.events, frames, observed, signed_upto)
        _check_media(fx, expected, observed, media_problems, signed_upto, interrupted)
    else:
        _retention(fx, rep.events, frames, None, signed_upto)
    _step6(rep, fx, camera, stamps, checkpoints, anchor, frames, records, tsa_anchors,
           timestamp_checkpoints)
    fx.flush()
    return rep, fx.items


def _step6(rep: CameraReport, fx: _Findings, camera: str, stamps: Sequence[Stamp],
           checkpoints: Sequence[tuple[Checkpoint, str, dict[str, Any]]],
           anchor: Anchor | None, frames: Sequence[FrameRecord], records: Sequence[Record],
           tsa_anchors: Sequence[bytes] | None, linked: Sequence[Any]) -> None:
    """Step 6: trusted timestamps over checkpoints, and the clock quality (vidproof/verify/
    timestamps.py; docs/FORMAT.md sections 13 and 14). Findings, never the chain."""
    cps = [(cp.seq, h, cp.utc_ns) for cp, h, _ in checkpoints]
    if anchor is not None:
        try:
            acp = entry_from_json(anchor.checkpoint)
            if isinstance(acp, Checkpoint):
                cps.insert(0, (acp.seq, sha256_hex(canonical_bytes(anchor.checkpoint)),
                               acp.utc_ns))
        except (RecordError, CanonicalError):
            pass  # reported in step 4
    result = check_timestamps(camera, stamps, cps, [(f.seq, f.utc_ns) for f in frames],
                              tsa_anchors, linked)
    rep.proven_existence = result.proven_existence
    rep.timestamps = {"tokens": result.tokens, "valid": result.valid, "tsa": result.tsa,
                      "anchored": result.anchored}
    rep.clock, clock_findings = clock_quality(records)
    for kind, severity, message, first, last, first_utc, last_utc in [
            *result.findings, *clock_findings]:
        fx.add(kind, severity, message, first, last, first_utc, last_utc)


@dataclass(frozen=True)
class _Loose:
    """A frame of the media the alignment left without a record at its place."""

    obs: ObservedFrame
    pos: int
    after: FrameRecord | None  # the record before its place in the evidence
    before: FrameRecord | None  # the record after its place


def _check_media(fx: _Findings, frames: Sequence[FrameRecord],
                 observed: Sequence[ObservedFrame], problems: Sequence[MediaProblem],
                 signed_upto: int, interrupted: set[str]) -> None:
    """Step 5: align the recorded digests with the observed ones (difflib), then explain
    every difference: a frame altered in place, missing, moved, repeated or inserted."""
    rec_d = [f.digest for f in frames]
    obs_d = [o.digest for o in observed]
    rec_set, obs_set = set(rec_d), set(obs_d)
    frames_by_seq = {f.seq: f for f in frames}
    rec_index = {f.seq: i for i, f in enumerate(frames)}
    last_signed_frame = max((f.seq for f in frames if f.seq <= signed_upto), default=-1)
    matcher = difflib.SequenceMatcher(None, rec_d, obs_d, autojunk=False)
    matched: list[tuple[FrameRecord, ObservedFrame]] = []
    matched_at: dict[int, int] = {}  # observed position -> index in ``matched``
    lost: list[FrameRecord] = []  # records whose frame is not at its place in the media
    loose: list[_Loose] = []  # frames of the media without a record at their place
    modified: list[tuple[FrameRecord, ObservedFrame]] = []
    last_matched_pos = -1

    def at(i: int) -> FrameRecord | None:
        return frames[i] if 0 <= i < len(frames) else None

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                matched_at[j1 + k] = len(matched)
                matched.append((frames[i1 + k], observed[j1 + k]))
            last_matched_pos = j2 - 1
            continue
        # A picture found elsewhere on the other side was moved or repeated, not altered
        # in place: set it aside. The others are paired in order: altered in place.
        unknown_r = [r for r in frames[i1:i2] if r.digest not in obs_set]
        unknown_o = [j for j in range(j1, j2) if obs_d[j] not in rec_set]
        pairs = min(len(unknown_r), len(unknown_o))
        modified.extend((unknown_r[k], observed[unknown_o[k]]) for k in range(pairs))
        paired_r = {r.seq for r in unknown_r[:pairs]}
        paired_o = set(unknown_o[:pairs])
        lost.extend(r for r in frames[i1:i2] if r.seq not in paired_r)
        loose.extend(_Loose(observed[j], j, at(i1 - 1), at(i2))
                     for j in range(j1, j2) if j not in paired_o)

    # Presentation times: a container may shift all times of a file (or segment) by a
    # constant. The shift most matched frames share is the reference, so one altered
    # time is reported as itself, wherever it is. Shifts are integers in units of
    # 1/scale s (scale: a common denominator of the two time bases): no per-frame
    # Fraction arithmetic.
    factors: dict[tuple[tuple[int, int], str], tuple[int, int, int]] = {}

    def shift(rec: FrameRecord, obs: ObservedFrame) -> tuple[int, int] | None:
        if rec.pts is None or obs.pts is None:
            return None
        key = (rec.tb, obs.segment)  # one stream, one time base per segment
        f = factors.get(key)
        if f is None:
            r_tb, o_tb = Fraction(*rec.tb), obs.time_base
            scale = math.lcm(r_tb.denominator, o_tb.denominator)
            f = factors[key] = (r_tb.numerator * (scale // r_tb.denominator),
                                o_tb.numerator * (scale // o_tb.denominator), scale)
        return obs.pts * f[1] - rec.pts * f[0], f[2]

    shifts = [shift(rec, obs) for rec, obs in matched]
    counts: dict[str, Counter[tuple[int, int]]] = {}
    for (_, obs), d in zip(matched, shifts, strict=True):
        if d is not None:
            c = counts.get(obs.segment)
            if c is None:
                c = counts[obs.segment] = Counter()
            c[d] += 1
    reference = {seg: c.most_common(1)[0][0] for seg, c in counts.items()}
    tol_num, tol_den = TIME_TOLERANCE.numerator, TIME_TOLERANCE.denominator

    def on_time(d: tuple[int, int] | None, segment: str) -> bool | None:
        ref = reference.get(segment)
        if d is None or ref is None:
            return None
        if d == ref:
            return True
        return abs(d[0] * ref[1] - ref[0] * d[1]) * tol_den <= tol_num * d[1] * ref[1]

    # A repeated picture next to its original: the copy at the recorded time is the
    # original, whichever of the two the alignment picked.
    for k, item in enumerate(loose):
        for pos in (item.pos - 1, item.pos + 1):
            mi = matched_at.get(pos)
            if mi is None or matched[mi][0].digest != item.obs.digest:
                continue
            rec, obs = matched[mi]
            d = shift(rec, item.obs)
            if (on_time(d, item.obs.segment) is True
                    and on_time(shifts[mi], obs.segment) is False):
                matched[mi], shifts[mi] = (rec, item.obs), d
                del matched_at[pos]
                matched_at[item.pos] = mi
                i = rec_index[rec.seq]
                loose[k] = (_Loose(obs, pos, rec, at(i + 1)) if pos > item.pos else
                            _Loose(obs, pos, at(i - 1), rec))
                break
    last_signed_obs: dict[str, int] = {}
    for rec, obs in matched:
        if rec.seq <= signed_upto:
            last_signed_obs[obs.segment] = max(last_signed_obs.get(obs.segment, -1), obs.index)

    def where(o: ObservedFrame) -> str:
        return f"{o.segment} frame {o.index}"

    # Altered in place (records after the last checkpoint are the unsigned tail).
    by_seq_obs = {r.seq: o for r, o in modified}
    for a, b in _ranges([r.seq for r, _ in modified if r.seq <= signed_upto]):
        oa, ob = by_seq_obs[a], by_seq_obs[b]
        what = (f"frame seq {a} ({where(oa)}) does not match its signed digest" if a == b else
                f"frames seq {a}..{b} ({where(oa)} to {where(ob)}) do not match their "
                "signed digests")
        fx.span("frame_modified", ERROR, a, b,
                f"{what}: the picture data was altered or replaced",
                frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)

    # Moved: a record's picture is in the media, but elsewhere. The finding spans the
    # frames it was moved across.
    pool: dict[str, list[_Loose]] = {}
    for item in loose:
        pool.setdefault(item.obs.digest, []).append(item)
    consumed: set[int] = set()
    gone: list[int] = []
    for r in lost:
        candidates = pool.get(r.digest)
        if not candidates:
            if r.seq <= signed_upto:
                gone.append(r.seq)
            continue
        item = min(candidates, key=lambda c: abs(
            (c.after.seq if c.after is not None else -1) - r.seq))
        candidates.remove(item)
        consumed.add(item.pos)
        if r.seq > signed_upto:
            continue
        if item.after is not None and item.after.seq > r.seq:
            lo, hi, rel = r.seq, item.after.seq, f"after frame seq {item.after.seq}"
        elif item.before is not None and item.before.seq < r.seq:
            lo, hi, rel = item.before.seq, r.seq, f"before frame seq {item.before.seq}"
        else:
            lo, hi, rel = r.seq, r.seq, "out of its place"
        fx.span("frame_reordered", ERROR, lo, hi,
                f"frame seq {r.seq} is at {where(item.obs)}, {rel}: the order of the frames "
                "differs from the signed evidence",
                frames_by_seq[lo].utc_ns, frames_by_seq[hi].utc_ns)
    for a, b in _ranges(gone):
        fx.span("frame_missing", ERROR, a, b,
                (f"frame seq {a} is" if a == b else f"frames seq {a}..{b} are")
                + " in the signed evidence but not in the media",
                frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)

    # Frames of the media that no record explains.
    recs_by_digest: dict[str, list[FrameRecord]] = {}
    for f in frames:
        recs_by_digest.setdefault(f.digest, []).append(f)
    groups: list[tuple[str, list[_Loose]]] = []
    for item in sorted(loose, key=lambda x: x.pos):
        if item.pos in consumed:
            continue
        o = item.obs
        # A crashed segment's frames after its last signed one are explained by the
        # signed recorder_start event, even when a frame repeats an earlier picture.
        # Likewise the frames at the very end of the media, after the last signed one
        # (a recorder killed, or still recording): unsigned, whatever they show.
        if o.segment in interrupted and o.index > last_signed_obs.get(o.segment, -1):
            kind = "crash_tail"
        elif item.pos > last_matched_pos and (item.after is None
                                              or item.after.seq >= last_signed_frame):
            kind = "end_tail"
        elif o.digest in rec_set:
            kind = "frame_duplicated"
        else:
            kind = "frame_inserted"
        if (groups and groups[-1][0] == kind and kind != "frame_duplicated"
                and groups[-1][1][-1].pos == item.pos - 1
                and groups[-1][1][-1].after is item.after):
            groups[-1][1].append(item)
        else:
            groups.append((kind, [item]))
    for kind, items in groups:
        first, last = items[0], items[-1]
        span = (where(first.obs) if first is last else
                f"{where(first.obs)} to {where(last.obs)} ({len(items)} frames)")
        near = first.after if first.after is not None else first.before
        near_seq = near.seq if near is not None else None
        near_utc = near.utc_ns if near is not None else None
        place = "" if first.after is None else f" (after frame seq {first.after.seq})"
        if kind == "crash_tail":
            fx.add("unsigned_frames", WARNING, f"{span}: written before a crash and never "
                   "signed", near_seq, first_utc=near_utc)
        elif kind == "end_tail":
            fx.add("unsigned_frames", WARNING, f"{span}, at the end of the media, has no "
                   "signed record (written after the last checkpoint)", near_seq,
                   first_utc=near_utc)
        elif kind == "frame_inserted":
            fx.add("frame_inserted", ERROR, f"{span} {'is' if first is last else 'are'} not "
                   f"in the evidence{place}", near_seq, first_utc=near_utc)
        else:
            pos_seq = near_seq if near_seq is not None else 0
            orig = min(recs_by_digest[first.obs.digest], key=lambda f: abs(f.seq - pos_seq))
            lo, hi = min(orig.seq, pos_seq), max(orig.seq, pos_seq)
            if near_seq is None:
                lo = hi = orig.seq
            fx.span("frame_duplicated", ERROR, lo, hi,
                    f"{span} repeats frame seq {orig.seq}{place}",
                    frames_by_seq[lo].utc_ns, frames_by_seq[hi].utc_ns)

    # Parameter sets and presentation times of the frames that match.
    bad_params = sorted(rec.seq for rec, obs in matched
                        if rec.params != obs.params and rec.seq <= signed_upto)
    bad_ts = sorted(rec.seq for (rec, obs), d in zip(matched, shifts, strict=True)
                    if on_time(d, obs.segment) is False)
    for a, b in _ranges(bad_params):
        fx.span("params_modified", ERROR, a, b,
                f"frames seq {a}..{b}: the parameter sets in force (SPS/PPS) differ from "
                "the recorded ones", frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)
    for a, b in _ranges(bad_ts):
        fx.span("timestamp_modified", ERROR, a, b,
                f"frames seq {a}..{b}: presentation times in the media differ from the "
                "recorded ones", frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)
    # The last segment is still open while recording, and cut short or empty after a
    # crash: harmless as long as the last signed frame is in the media before it.
    last_segment = max([p.segment for p in problems] + [o.segment for o in observed[-1:]],
                       default=None)
    signed_all_there = last_signed_frame < 0 or any(
        rec.seq == last_signed_frame for rec, _ in matched)
    for p in problems:
        if p.segment in interrupted:
            fx.add("unsigned_frames", WARNING,
                   f"{p.segment}: cut short by a crash after frame {p.after_index}: {p.message}")
        elif p.segment == last_segment and signed_all_there:
            fx.add("unsigned_frames", WARNING,
                   f"{p.segment}: the last segment ends after frame {p.after_index} "
                   f"({p.message}); no signed frame is in the unreadable part (the recorder "
                   "was stopped or is still writing)")
        else:
            fx.add("media_damaged", ERROR,
                   f"{p.segment}: unreadable after frame {p.after_index}: {p.message}")


def summarize(cameras: Sequence[CameraReport], findings: Sequence[Finding]) -> Report:
    return Report(tuple(cameras), tuple(findings))
