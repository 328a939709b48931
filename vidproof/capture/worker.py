"""The capture worker: passthrough recording of one camera into a store.

Coded frames are muxed unchanged into GOP-aligned MPEG-TS segments; each one
gets a frame record (digest, timestamps, capture time) in the camera's chain,
and the chain is checkpointed and signed before every keyframe and at most
2 s of footage apart.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from .. import __version__
from ..chain import Chain
from ..digest import BitstreamError, FrameHasher
from ..errors import SourceError
from ..keys import Signer
from ..model import Location
from ..retention import RetentionKeeper
from ..store import (
    EvidenceWriter,
    SegmentWriter,
    camera_dir,
    lock_camera,
    next_segment_path,
    recover,
)
from ..timestamp.clock import ClockSettings, ClockWatch
from .profile import assess
from .sources import CodedFrame, SourceLost, StreamInfo, open_source, redact
from .status import StatusFile

if TYPE_CHECKING:  # imported when --tsa is given: asn1crypto and HTTP cost start-up time
    from ..timestamp.tsa import TsaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordSettings:
    source: str
    camera_id: str
    location: Location
    store: Path
    duration: float | None = None
    fast: bool = False
    segment_seconds: float = 60.0
    status_file: Path | None = None
    tls_ca: Path | None = None  # CA certificate that an rtsps:// camera must present
    # Transcode mode (``--stamp``): a vidproof.encode.TranscodeSettings; None: passthrough.
    transcode: Any = None
    wide_shot: bool = False  # decree minimums of a wide-shot camera (capture/profile.py)
    allow_below_minimum: bool = False
    tsa: TsaSettings | None = None  # RFC 3161 time-stamping of checkpoints (--tsa)
    clock_sync: ClockSettings | None = None  # NTP clock discipline (--ntp)
    retention_days: float | None = None  # purge older footage (vidproof/retention.py)


@dataclass
class RecordResult:
    frames: int = 0
    segments: int = 0
    checkpoints: int = 0
    events: int = 0


class Recorder:
    def __init__(self, settings: RecordSettings, signer: Signer,
                 clock: Callable[[], int] = time.time_ns,
                 stop: Callable[[], bool] = lambda: False) -> None:
        if settings.segment_seconds <= 0:
            raise SourceError("--segment-seconds must be positive")
        self.settings = settings
        self.signer = signer
        self.clock = clock
        self.stop = stop
        self.cam_dir = camera_dir(settings.store, settings.camera_id)
        self.segment: SegmentWriter | None = None
        self.segment_start_ns = 0
        self.result = RecordResult()
        self.status = StatusFile(settings.status_file)
        self._duplicates: list[int] = []  # seqs of frames the source repeated, not yet told
        # Key rotation (vidproof.trust.rotation): asked at each keyframe for a new signer.
        self.rotation: Callable[[int, Signer], tuple[Signer, str] | None] | None = None
        # The segment index and the retention purge (vidproof/retention.py).
        self.keeper: RetentionKeeper | None = None
        self._last_frame: tuple[int, int] | None = None  # (seq, utc_ns) of the last frame

    def _sync_media(self) -> None:
        if self.segment is not None:
            self.segment.sync()

    def _close_segment(self) -> None:
        if self.segment is not None:
            self.segment.close()
            if self.keeper is not None and self._last_frame is not None:
                self.keeper.closed(self.segment.path.name, *self._last_frame,
                                   self.segment.frames)
            self.segment = None

    def _context(self, info: StreamInfo) -> dict[str, Any]:
        s = self.settings
        return {
            "camera_id": s.camera_id,
            "location": s.location.to_json(),
            "mode": "passthrough",
            "source": redact(info.description),
            "stream": {
                "codec": info.codec, "width": info.width, "height": info.height,
                "time_base": [info.time_base.numerator, info.time_base.denominator],
                "fps": None if info.fps is None else [info.fps.numerator, info.fps.denominator],
            },
            "clock": {
                "kind": info.clock,
                "description": ("capture time = wall clock when the frame was received"
                                if info.clock == "wall" else
                                "capture time = recording start + stream timestamp"),
            },
            "key": self.signer.key_json(),  # with its certificate chain, if any
            "recorder": {"software": f"vidproof {__version__}", "host": os.uname().nodename},
        } | (getattr(info, "context", None) or {"profile": self._passthrough_profile(info)})

    def _passthrough_profile(self, info: StreamInfo) -> dict[str, Any]:
        """Passthrough records the camera's stream as it is: its profile against the
        decree's minimums is assessed and recorded, not enforced (transcode mode
        refuses a profile below them: vidproof/encode.py)."""
        s = self.settings
        a = assess(info.width, info.height, info.fps, wide_shot=s.wide_shot,
                   override=s.allow_below_minimum, enforced=False)
        if not a.meets_minimum and not a.override:
            log.warning("passthrough: the camera's profile is below the decree's minimums "
                        "(%s); recording it as it is", "; ".join(a.shortfalls()))
        return a.to_json()

    def _report_duplicates(self, chain: Chain, now: int) -> None:
        """A signed event for the frames the source repeated since the last one."""
        if not self._duplicates:
            return
        seqs, self._duplicates = self._duplicates, []
        chain.event("source_duplicates", now, {
            "frames": len(seqs), "first_seq": seqs[0], "last_seq": seqs[-1],
            "total": self.status.fields.get("duplicated_frames", 0),
            "test": "identical to the picture before, outside the stamp"})
        self.result.events += 1

    def _time_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """The clock's measured synchronization and the time-stamping settings, in the
        signed context; only when configured, so that other contexts keep their shape."""
        sync = self.clock_watch.context()
        if sync is not None:
            clock = context.get("clock")
            context["clock"] = dict(clock if isinstance(clock, dict) else {}, sync=sync)
        if self.settings.tsa is not None:
            context["timestamping"] = self.settings.tsa.context()
        return context

    def _clock_events(self, chain: Chain) -> None:
        """Signed clock_jump / clock_offset events (vidproof/timestamp/clock.py)."""
        for kind, utc_ns, detail in self.clock_watch.poll():
            log.warning("%s: %s %s", self.settings.camera_id, kind,
                        {k: v for k, v in detail.items() if k in ("jump_ns", "offset_ns",
                                                                   "status")})
            chain.event(kind, utc_ns, detail)
            self.result.events += 1

    def run(self) -> RecordResult:
        s = self.settings
        # The clock before anything else (docs/FORMAT.md section 14): evidence is not
        # recorded with time stamps the recorder cannot guarantee, unless overridden.
        self.clock_watch = ClockWatch(s.clock_sync or ClockSettings(), self.clock)
        self.clock_watch.start_check()
        # Open the source before touching the store: a missing or unreachable camera
        # fails here, and the crash recovery below is done (and signed, in the
        # recorder_start event) by a run that actually records.
        if s.transcode is not None:
            from ..encode import transcode_source

            source = transcode_source(s.source, s.transcode, fast=s.fast, duration=s.duration,
                                      clock=self.clock, stop=self.stop, tls_ca=s.tls_ca)
        else:
            source = open_source(s.source, fast=s.fast, duration=s.duration, clock=self.clock,
                                 tls_ca=s.tls_ca,
                                 stop=self.stop)
        first = next(source, None)
        self.cam_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_camera(self.cam_dir)  # held until this process exits
        state = recover(self.cam_dir)
        keeper = self.keeper = RetentionKeeper(s.store, s.camera_id, self.cam_dir,
                                               s.retention_days, self.clock)
        keeper.start(state.next_seq)
        if s.tsa is None:
            evidence: EvidenceWriter = EvidenceWriter(self.cam_dir / "evidence.jsonl")
        else:
            from ..timestamp.tsa import Timestamper, TimestampingWriter

            evidence = TimestampingWriter(self.cam_dir / "evidence.jsonl",
                                          Timestamper(s.tsa, s.camera_id, self.clock))
        chain = Chain(s.camera_id, self.signer, evidence, state, self._sync_media)
        hasher: FrameHasher | None = None
        info: StreamInfo | None = None
        started = False
        lost: SourceLost | None = None
        try:
            for item in itertools.chain(() if first is None else (first,), source):
                # SIGTERM: every source watches stop() and ends; what it hands over before
                # its end (pictures still in a transcode batch or in the encoder's
                # lookahead) is recorded.
                if started:
                    self._clock_events(chain)
                if isinstance(item, StreamInfo):
                    now = self.clock()
                    self._close_segment()  # flushed and fsynced: before the checkpoint
                    chain.checkpoint(now)
                    hasher = FrameHasher(item.codec, item.extradata)
                    info = item
                    chain.context(self._time_context(self._context(item)), now)
                    if not started:
                        started = True
                        detail: dict[str, Any] = {"previous_run": state.previous_run}
                        if state.unsigned_file:
                            detail.update(unsigned_entries=state.unsigned_entries,
                                          unsigned_file=state.unsigned_file,
                                          unsigned_sha256=state.unsigned_sha256)
                        if state.open_segment:
                            detail["interrupted_segment"] = state.open_segment
                        chain.event("recorder_start", now, detail)
                    if lost is not None:
                        chain.event("camera_back", now, {
                            "lost_utc_ns": lost.utc_ns, "gap_ns": now - lost.utc_ns,
                            "skipped_before_keyframe": item.skipped_before_keyframe})
                        self.result.events += 1
                        lost = None
                    chain.checkpoint(now)
                    if keeper.due():  # retention: a pass at start (and after camera_back)
                        keeper.purge(chain, self.signer, None)
                    self.status.update(True, state="recording", stream={
                        "codec": item.codec, "width": item.width, "height": item.height,
                        "fps": None if item.fps is None else float(item.fps)})
                    continue
                if isinstance(item, SourceLost):
                    self._close_segment()
                    self._report_duplicates(chain, item.utc_ns)
                    chain.checkpoint(item.utc_ns)
                    chain.event("camera_lost", item.utc_ns, {"reason": item.reason})
                    chain.checkpoint(item.utc_ns)
                    self.result.events += 1
                    lost = item
                    self.status.update(True, state="camera_lost")
                    continue
                assert isinstance(item, CodedFrame) and hasher is not None and info is not None
                self._frame(chain, hasher, info, item)
            if started:
                now = self.clock()
                reason = ("stopped by the operator" if self.stop() else
                          "duration reached" if s.duration is not None else "source ended")
                self._report_duplicates(chain, now)
                chain.event("recorder_stop", now, {"reason": reason, "frames": self.result.frames})
                self._close_segment()
                chain.checkpoint(now)
        except BitstreamError as exc:
            raise SourceError(f"{redact(s.source)}: {exc}") from None
        except av.FFmpegError as exc:
            raise SourceError(f"{redact(s.source)}: cannot store the stream ({exc})") from None
        finally:
            try:
                # The segment is closed (FFmpeg's buffer flushed, the file fsynced) before
                # the last checkpoint; if closing fails, the entries it would cover stay
                # unsigned (the verifier reports them as such).
                self._close_segment()
                if started:
                    chain.checkpoint(self.clock())
            finally:
                self.clock_watch.close()
                evidence.close()
                self.result.checkpoints = chain.checkpoints
                self.status.update(True, state="stopped")
        return self.result

    def _frame(self, chain: Chain, hasher: FrameHasher, info: StreamInfo,
               frame: CodedFrame) -> None:
        self.status.fields["frames_in"] += 1
        keyframe = frame.keyframe
        segment = self.segment
        fd = None
        new_segment = keyframe and (
            segment is None
            or frame.utc_ns - self.segment_start_ns >= self.settings.segment_seconds * 1e9)
        if new_segment:
            # The segment is closed (flushed, fsynced) and signed by the checkpoint below
            # before the next one exists: after a crash, recovery takes the last segment
            # for the one the crash interrupted.
            self._close_segment()
        elif segment is not None:
            # The frame is muxed before the checkpoint that signs the frames before it
            # (due before a keyframe, and at most 2 s apart; a key rotation is at a
            # keyframe): FFmpeg's buffer is flushed after it, so the checkpoint's fsync
            # covers every frame before (and this one, signed by the next checkpoint).
            fd = hasher.digest(frame.data)
            segment.write(frame.data, frame.pts, frame.dts, frame.time_base, keyframe,
                          flush=keyframe or chain.due(frame.utc_ns, keyframe),
                          packet=frame.packet)
        if keyframe and self.rotation is not None:  # key rotation, at a GOP boundary
            rotated = self.rotation(frame.utc_ns, self.signer)
            if rotated is not None:
                chain.rotate(rotated[0], self.clock(), rotated[1])
                self.signer = rotated[0]
        if chain.due(frame.utc_ns, keyframe):
            self._report_duplicates(chain, frame.utc_ns)
            chain.checkpoint(self.clock())
            self.status.update()
            if self.keeper is not None and self.keeper.due():  # retention, after a checkpoint
                self.keeper.purge(chain, self.signer,
                                  None if self.segment is None else self.segment.path.name)
        if new_segment:
            self.segment = segment = SegmentWriter(
                next_segment_path(self.cam_dir), info.template, info.codec, info.time_base,
                flush_each=False)
            self.segment_start_ns = frame.utc_ns
            self.result.segments += 1
            fd = hasher.digest(frame.data)
            segment.write(frame.data, frame.pts, frame.dts, frame.time_base, keyframe,
                          packet=frame.packet)
        if fd is None:
            self.status.fields["dropped_frames"] += 1
            return  # no keyframe yet since (re)connecting: nothing decodable to keep
        tb: Fraction = frame.time_base
        seq = chain.frame(utc_ns=frame.utc_ns, pts=frame.pts, dts=frame.dts,
                          tb=(tb.numerator, tb.denominator), key=frame.keyframe,
                          digest=fd.digest, params=fd.params, cam_utc_ns=frame.cam_utc_ns,
                          fp=getattr(frame, "fp", None))
        self.result.frames += 1
        if new_segment and self.keeper is not None and segment is not None:
            self.keeper.opened(segment.path.name, seq, frame.utc_ns)  # the segment index
        self._last_frame = seq, frame.utc_ns
        st = self.status.fields
        if getattr(frame, "duplicate", False):  # transcode mode: the source repeated it
            self._duplicates.append(seq)
            st["duplicated_frames"] = st.get("duplicated_frames", 0) + 1
        st["frames_out"] += 1
        st["bytes"] += len(frame.data)
        st["last_frame_utc_ns"] = frame.utc_ns
