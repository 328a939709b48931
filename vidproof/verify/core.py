"""The pure verifier core: evidence entries and observed frames in, a report out.

No I/O, no clock. The numbered steps match docs/FORMAT.md section "Verification".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    entry_from_json,
)

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


@dataclass(frozen=True)
class Anchor:
    """Where an exported clip's chain starts: the signed checkpoint just before its
    first entry, and the context records in force that precede that checkpoint."""

    checkpoint: dict[str, Any]
    contexts: tuple[dict[str, Any], ...] = ()


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


class _Findings:
    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}

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


def _ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


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
    trusted_key_id: str,
    verify_signature: Verifier,
    anchor: Anchor | None = None,
) -> tuple[CameraReport, list[Finding]]:
    """Verify one camera's evidence (and media, when ``observed`` is given)."""
    rep = CameraReport(camera)
    fx = _Findings(camera)
    if len(lines) > MAX_ENTRIES:
        fx.add("too_large", ERROR, f"{len(lines)} entries exceed the limit of {MAX_ENTRIES}")
        return rep, fx.items

    # Step 1: every line is a well-formed entry of this camera.
    records: list[Record] = []
    hashes: list[str] = []
    checkpoints: list[tuple[Checkpoint, str, dict[str, Any]]] = []
    for pl in lines:
        if pl.error is not None:
            fx.add("malformed_entry", ERROR, f"evidence line {pl.line}: {pl.error}")
            continue
        try:
            entry = entry_from_json(pl.value)
            digest = sha256_hex(canonical_bytes(pl.value))
        except (RecordError, CanonicalError) as exc:
            fx.add("malformed_entry", ERROR, f"evidence line {pl.line}: {exc}")
            continue
        if entry.camera != camera:
            fx.add("wrong_camera", ERROR,
                   f"evidence line {pl.line} belongs to camera {entry.camera!r}, not {camera!r}",
                   entry.seq)
            continue
        if isinstance(entry, Checkpoint):
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
            continue
        assert isinstance(rec, FrameRecord | EventRecord)
        if ctx_hash is None and rec.ctx in anchor_contexts:
            ctx_hash = rec.ctx
            _note_context(rep, anchor_contexts[rec.ctx])
        if rec.ctx != ctx_hash:
            fx.add("context_mismatch", ERROR,
                   f"entry seq {rec.seq} refers to a context that is not the one in force",
                   rec.seq, first_utc=rec.utc_ns)
        if isinstance(rec, FrameRecord):
            frames.append(rec)
        else:
            rep.events.append({"seq": rec.seq, "utc_ns": rec.utc_ns, "event": rec.event,
                               "detail": rec.detail})
    del ctx_rec

    # Step 4: checkpoints: trusted key, valid signature, head on the chain.
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
        except (RecordError, CanonicalError) as exc:
            fx.add("anchor_invalid", ERROR, f"the clip's starting checkpoint is invalid: {exc}")
    for cp, cp_hash, raw in cp_list:
        is_anchor = anchor is not None and raw is anchor.checkpoint
        body = {k: v for k, v in raw.items() if k != "sig"}
        ok = True
        if cp.key != trusted_key_id:
            fx.add("untrusted_key", ERROR,
                   f"checkpoint at seq {cp.seq} is signed by key {cp.key[:16]}…, not by the "
                   f"trusted key {trusted_key_id[:16]}…", cp.seq, first_utc=cp.utc_ns)
            ok = False
        else:
            try:
                sig = bytes.fromhex(cp.sig)
            except ValueError:
                sig = b""
            if not verify_signature(sig, canonical_bytes(body)):
                fx.add("bad_signature", ERROR,
                       f"checkpoint at seq {cp.seq} has an invalid signature", cp.seq,
                       first_utc=cp.utc_ns)
                ok = False
        if prev_cp is not None and cp.prev_checkpoint != prev_cp:
            fx.add("checkpoint_chain", ERROR,
                   f"checkpoint at seq {cp.seq} does not follow the previous checkpoint "
                   "(a checkpoint was removed, reordered or altered)", cp.seq)
        prev_cp = cp_hash
        if is_anchor:
            continue  # its head is where the clip's chain starts (step 2)
        idx = by_seq.get(cp.seq)
        if idx is None:
            fx.add("checkpoint_mismatch", ERROR,
                   f"checkpoint signs entry seq {cp.seq}, which is not in the evidence", cp.seq,
                   first_utc=cp.utc_ns)
            continue
        if hashes[idx] != cp.head:
            fx.add("checkpoint_mismatch", ERROR,
                   f"entry seq {cp.seq} is not the one its checkpoint signed: it was modified",
                   cp.seq, first_utc=records[idx].utc_ns)
            continue
        if ok:
            rep.checkpoints += 1
            signed_upto = max(signed_upto, cp.seq)
    unsigned = [r for r in records if r.seq > signed_upto]
    if unsigned:
        fx.add("unsigned_tail", WARNING,
               f"{len(unsigned)} evidence entries after the last valid checkpoint are not "
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
        _check_media(fx, frames, observed, media_problems, signed_upto, interrupted)
    return rep, fx.items


def _check_media(fx: _Findings, frames: Sequence[FrameRecord],
                 observed: Sequence[ObservedFrame], problems: Sequence[MediaProblem],
                 signed_upto: int, interrupted: set[str]) -> None:
    rec_d = [f.digest for f in frames]
    obs_d = [o.digest for o in observed]
    rec_set, obs_set = set(rec_d), set(obs_d)
    last_signed_obs: dict[str, int] = {}
    matcher = difflib.SequenceMatcher(None, rec_d, obs_d, autojunk=False)
    matched: list[tuple[FrameRecord, ObservedFrame]] = []

    def missing(recs: Sequence[FrameRecord]) -> None:
        signed = [r for r in recs if r.seq <= signed_upto]
        moved = [r.seq for r in signed if r.digest in obs_set]
        gone = [r for r in signed if r.digest not in obs_set]
        for a, b in _ranges(moved):
            fx.add("frame_reordered", ERROR,
                   f"frames seq {a}..{b} are not where the evidence puts them", a, b,
                   frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)
        for a, b in _ranges([r.seq for r in gone]):
            fx.add("frame_missing", ERROR,
                   f"frames seq {a}..{b} are in the signed evidence but not in the media",
                   a, b, frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)

    def extra(obs: Sequence[ObservedFrame], after: FrameRecord | None,
              tail: bool = False) -> None:
        for o in obs:
            where = f"{o.segment} frame {o.index}"
            near = after.seq if after is not None else None
            near_utc = after.utc_ns if after is not None else None
            # A crashed segment's frames after its last signed one are explained by the
            # signed recorder_start event, even when a frame repeats an earlier picture.
            if o.segment in interrupted and o.index > last_signed_obs.get(o.segment, -1):
                fx.add("unsigned_frames", WARNING,
                       f"{where} was written before a crash and never signed", near,
                       first_utc=near_utc)
            elif o.digest in rec_set:
                fx.add("frame_duplicated", ERROR,
                       f"{where} repeats a recorded frame out of place", near,
                       first_utc=near_utc)
            elif tail and (after is None or after.seq >= last_signed_frame):
                fx.add("unsigned_frames", WARNING,
                       f"{where}, at the end of the media, has no signed record (written "
                       "after the last checkpoint)", near, first_utc=near_utc)
            else:
                fx.add("frame_inserted", ERROR, f"{where} is not in the evidence"
                       + ("" if near is None else f" (after frame seq {near})"), near,
                       first_utc=near_utc)

    frames_by_seq = {f.seq: f for f in frames}
    last_signed_frame = max((f.seq for f in frames if f.seq <= signed_upto), default=-1)
    ops = matcher.get_opcodes()
    for tag, i1, i2, j1, _j2 in ops:
        if tag == "equal":
            for k in range(i2 - i1):
                rec, obs = frames[i1 + k], observed[j1 + k]
                matched.append((rec, obs))
                if rec.seq <= signed_upto:
                    last_signed_obs[obs.segment] = max(last_signed_obs.get(obs.segment, -1),
                                                       obs.index)
    for tag, i1, i2, j1, j2 in ops:
        after = frames[i1 - 1] if i1 > 0 else None
        if tag == "delete":
            missing(frames[i1:i2])
        elif tag == "insert":
            extra(observed[j1:j2], after, tail=j2 == len(observed))
        elif tag == "replace":
            pairs = min(i2 - i1, j2 - j1)
            for k in range(pairs):
                rec, obs = frames[i1 + k], observed[j1 + k]
                if rec.digest in obs_set or obs.digest in rec_set:
                    missing([rec])
                    extra([obs], after)
                elif rec.seq > signed_upto:
                    continue
                else:
                    fx.add("frame_modified", ERROR,
                           f"frame seq {rec.seq} ({obs.segment} frame {obs.index}) does not "
                           "match its signed digest: the picture data was altered or replaced",
                           rec.seq, first_utc=rec.utc_ns)
            missing(frames[i1 + pairs:i2])
            extra(observed[j1 + pairs:j2], frames[i1 + pairs - 1] if i1 + pairs > 0 else None,
                  tail=j2 == len(observed))

    # Parameter sets and timestamps of the frames that match.
    ref: dict[str, tuple[FrameRecord, ObservedFrame]] = {}
    bad_ts: list[int] = []
    for rec, obs in matched:
        if rec.params != obs.params:
            fx.add("params_modified", ERROR,
                   f"frame seq {rec.seq}: the parameter sets in force (SPS/PPS) differ from "
                   "the recorded ones", rec.seq, first_utc=rec.utc_ns)
        if rec.pts is None or obs.pts is None:
            continue
        if obs.segment not in ref:
            ref[obs.segment] = (rec, obs)
            continue
        r0, o0 = ref[obs.segment]
        assert r0.pts is not None and o0.pts is not None
        d_rec = (rec.pts - r0.pts) * Fraction(*rec.tb)
        d_obs = (obs.pts - o0.pts) * obs.time_base
        if abs(d_rec - d_obs) > TIME_TOLERANCE:
            bad_ts.append(rec.seq)
    for a, b in _ranges(bad_ts):
        fx.add("timestamp_modified", ERROR,
               f"frames seq {a}..{b}: presentation times in the media differ from the "
               "recorded ones", a, b, frames_by_seq[a].utc_ns, frames_by_seq[b].utc_ns)
    for p in problems:
        if p.segment in interrupted:
            fx.add("unsigned_frames", WARNING,
                   f"{p.segment}: cut short by a crash after frame {p.after_index}: {p.message}")
        else:
            fx.add("media_damaged", ERROR,
                   f"{p.segment}: unreadable after frame {p.after_index}: {p.message}")


def summarize(cameras: Sequence[CameraReport], findings: Sequence[Finding]) -> Report:
    return Report(tuple(cameras), tuple(findings))
