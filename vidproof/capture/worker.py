"""The capture worker: passthrough recording of one camera into a store.

Coded frames are muxed unchanged into GOP-aligned MPEG-TS segments; each one
gets a frame record (digest, timestamps, capture time) in the camera's chain,
and the chain is checkpointed and signed before every keyframe and at most
2 s of footage apart.
"""

from __future__ import annotations

import itertools
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from .. import __version__
from ..chain import Chain
from ..digest import BitstreamError, FrameHasher
from ..errors import SourceError
from ..keys import Signer
from ..model import Location
from ..store import EvidenceWriter, SegmentWriter, camera_dir, next_segment_path, recover
from .sources import CodedFrame, SourceLost, StreamInfo, open_source, redact
from .status import StatusFile

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

    def _sync_media(self) -> None:
        if self.segment is not None:
            self.segment.sync()

    def _close_segment(self) -> None:
        if self.segment is not None:
            self.segment.close()
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
            "key": {"alg": self.signer.alg, "id": self.signer.key_id},
            "recorder": {"software": f"vidproof {__version__}", "host": platform.node()},
        }

    def run(self) -> RecordResult:
        s = self.settings
        # Open the source before touching the store: a missing or unreachable camera
        # fails here, and the crash recovery below is done (and signed, in the
        # recorder_start event) by a run that actually records.
        source = open_source(s.source, fast=s.fast, duration=s.duration, clock=self.clock,
                             tls_ca=s.tls_ca,
                             stop=self.stop)
        first = next(source, None)
        self.cam_dir.mkdir(parents=True, exist_ok=True)
        state = recover(self.cam_dir)
        evidence = EvidenceWriter(self.cam_dir / "evidence.jsonl")
        chain = Chain(s.camera_id, self.signer, evidence, state, self._sync_media)
        hasher: FrameHasher | None = None
        info: StreamInfo | None = None
        started = False
        lost: SourceLost | None = None
        try:
            for item in itertools.chain(() if first is None else (first,), source):
                if self.stop():
                    break  # SIGTERM: testsrc and file sources do not watch stop() themselves
                if isinstance(item, StreamInfo):
                    now = self.clock()
                    chain.checkpoint(now)
                    self._close_segment()
                    hasher = FrameHasher(item.codec, item.extradata)
                    info = item
                    chain.context(self._context(item), now)
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
                    self.status.update(True, state="recording", stream={
                        "codec": item.codec, "width": item.width, "height": item.height,
                        "fps": None if item.fps is None else float(item.fps)})
                    continue
                if isinstance(item, SourceLost):
                    chain.checkpoint(item.utc_ns)
                    self._close_segment()
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
                chain.event("recorder_stop", now, {"reason": reason, "frames": self.result.frames})
                chain.checkpoint(now)
        except BitstreamError as exc:
            raise SourceError(f"{redact(s.source)}: {exc}") from None
        except av.FFmpegError as exc:
            raise SourceError(f"{redact(s.source)}: cannot store the stream ({exc})") from None
        finally:
            if started:
                chain.checkpoint(self.clock())
            self._close_segment()
            evidence.close()
            self.result.checkpoints = chain.checkpoints
            self.status.update(True, state="stopped")
        return self.result

    def _frame(self, chain: Chain, hasher: FrameHasher, info: StreamInfo,
               frame: CodedFrame) -> None:
        self.status.fields["frames_in"] += 1
        if chain.due(frame.utc_ns, frame.keyframe):
            chain.checkpoint(self.clock())
            self.status.update()
        if frame.keyframe and (
            self.segment is None
            or frame.utc_ns - self.segment_start_ns >= self.settings.segment_seconds * 1e9
        ):
            self._close_segment()
            self.segment = SegmentWriter(next_segment_path(self.cam_dir), info.template,
                                         info.codec, info.time_base)
            self.segment_start_ns = frame.utc_ns
            self.result.segments += 1
        if self.segment is None:
            self.status.fields["dropped_frames"] += 1
            return  # no keyframe yet since (re)connecting: nothing decodable to keep
        fd = hasher.digest(frame.data)
        self.segment.write(frame.data, frame.pts, frame.dts, frame.time_base, frame.keyframe)
        tb: Fraction = frame.time_base
        chain.frame(utc_ns=frame.utc_ns, pts=frame.pts, dts=frame.dts,
                    tb=(tb.numerator, tb.denominator), key=frame.keyframe, digest=fd.digest,
                    params=fd.params, cam_utc_ns=frame.cam_utc_ns)
        self.result.frames += 1
        st = self.status.fields
        st["frames_out"] += 1
        st["bytes"] += len(frame.data)
        st["last_frame_utc_ns"] = frame.utc_ns
