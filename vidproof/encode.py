"""Transcode mode: raw frames -> burned-in stamp -> encoder -> coded frames.

:func:`transcode` turns a raw-frame source (:mod:`vidproof.capture.raw`) into a
coded source like the passthrough ones (:mod:`vidproof.capture.sources`): it
yields a :class:`TranscodedInfo` (a :class:`StreamInfo` for the encoder's output,
carrying what the evidence context must say about the encoding) and an
:class:`EncodedFrame` (a :class:`CodedFrame`, plus the picture's fingerprint) for
every encoded picture. The capture worker then digests, chains, signs and
segments those frames exactly as it does a camera's own.

Per picture, in the frame the source handed over (owned and writable):

1. the stamp (date and time of the frame's capture, UTC and local, to the
   millisecond; camera id; location and coordinates) is burned into the YUV 4:2:0
   planes in place (:class:`vidproof.stamp.Stamper`); its time is the frame's
   ``utc_ns``, the value its record holds;
2. the 256-byte fingerprint of the stamped luma plane is taken
   (:func:`vidproof.stamp.fingerprint`): it goes into the frame record (``fp``);
3. a picture identical to the one before (outside the stamp, which differs by its
   time) is counted as a duplicate: a source that repeats frames to reach its rate;
4. the frame is encoded, timestamped in 1/90000 s from the capture time.

Pictures take these steps in small batches (a quarter of a second of them, at most
8): see :func:`transcode`.

The encoder behaves like a camera's: no B-frames (decoding order = presentation
order), a fixed GOP (default 1 s, at most 2 s), no scene-cut keyframes, parameter
sets repeated before every keyframe (each segment and clip decodes on its own).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import av
import numpy as np

from . import __version__
from .capture.profile import Assessment, assess, enforce
from .capture.raw import RawFrame, RawInfo, RawItem
from .capture.sources import Clock, CodedFrame, SourceItem, SourceLost, StreamInfo
from .errors import UsageError
from .model import Location
from .stamp import (
    FINGERPRINT_GRID,
    FINGERPRINT_SIZE,
    FINGERPRINT_VERSION,
    Stamper,
    StampStyle,
    fingerprint,
    frame_planes,
)
from .stamp.fingerprint import sampling_step

CODECS = {"libx264": "h264", "libx265": "hevc"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
           "slower", "veryslow")
DEFAULT_PRESET = "veryfast"
DEFAULT_CRF = {"libx264": 23, "libx265": 28}
MAX_GOP_SECONDS = 2
# Pictures taken through each stage at a time (see transcode()).
BATCH_SECONDS = Fraction(1, 4)
MAX_BATCH = 8
MAX_BATCH_BYTES = 64 << 20
TIME_BASE = Fraction(1, 90000)
_NO_TYPE = av.video.frame.PictureType.NONE


@dataclass(frozen=True)
class EncoderSettings:
    """How vidproof encodes in transcode mode.

    ``crf`` (constant quality) or ``bitrate`` (bits per second, with a one-second
    VBV buffer: camera-like constant bitrate); neither: the codec's default CRF.
    ``gop``: frames between keyframes (default: one second of frames).
    ``threads``: encoder threads, 0 lets FFmpeg choose.
    """

    codec: str = "libx264"
    preset: str = DEFAULT_PRESET
    crf: int | None = None
    bitrate: int | None = None
    gop: int | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise UsageError(f"encoder {self.codec!r} is not supported: expected "
                             + " or ".join(CODECS))
        if self.preset not in PRESETS:
            raise UsageError(f"preset {self.preset!r} is invalid: expected one of "
                             + ", ".join(PRESETS))
        if self.crf is not None and self.bitrate is not None:
            raise UsageError("give --crf or --bitrate, not both")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise UsageError(f"CRF {self.crf} is invalid: expected 0..51")
        if self.bitrate is not None and not 16_000 <= self.bitrate <= 400_000_000:
            raise UsageError(f"bitrate {self.bitrate} bit/s is invalid: expected "
                             "16k..400M")
        if self.gop is not None and not 1 <= self.gop <= 600:
            raise UsageError(f"GOP {self.gop} is invalid: expected 1..600 frames")
        if not 0 <= self.threads <= 64:
            raise UsageError(f"encoder threads {self.threads} is invalid: expected 0..64")

    def gop_for(self, fps: Fraction | None) -> int:
        """Frames per GOP at ``fps``: the setting, or one second; refused above 2 s."""
        rate = fps if fps is not None else Fraction(25)
        if self.gop is None:
            return max(1, round(rate))
        if self.gop > MAX_GOP_SECONDS * rate:
            raise UsageError(f"GOP of {self.gop} frames is {float(self.gop / rate):.3g} s at "
                             f"{float(rate):.3g} fps: at most {MAX_GOP_SECONDS} s, like a "
                             "camera (exports are cut on keyframes)")
        return self.gop

    @property
    def effective_crf(self) -> int | None:
        return None if self.bitrate is not None else (
            self.crf if self.crf is not None else DEFAULT_CRF[self.codec])

    def to_json(self, gop: int) -> dict[str, Any]:
        """The context's ``encoder`` member."""
        return {
            "software": f"vidproof {__version__}: FFmpeg {av.ffmpeg_version_info} "
                        f"({self.codec}) through PyAV {av.__version__}",
            "codec": self.codec, "preset": self.preset, "crf": self.effective_crf,
            "bitrate": self.bitrate, "gop": gop, "bframes": 0, "scenecut": False,
            "repeat_headers": True, "pix_fmt": "yuv420p", "threads": self.threads,
            "time_base": [TIME_BASE.numerator, TIME_BASE.denominator],
        }


class Encoder:
    """One PyAV encoder (libx264 or libx265) for frames of one size."""

    def __init__(self, settings: EncoderSettings, width: int, height: int,
                 fps: Fraction | None) -> None:
        self.settings = settings
        self.gop = settings.gop_for(fps)
        self.codec = CODECS[settings.codec]
        enc: Any = av.CodecContext.create(settings.codec, "w")
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.time_base = TIME_BASE
        enc.framerate = fps if fps is not None else Fraction(25)
        enc.gop_size = self.gop
        enc.max_b_frames = 0
        if settings.threads:
            enc.thread_count = settings.threads
        params = [f"keyint={self.gop}", f"min-keyint={self.gop}", "scenecut=0", "bframes=0",
                  "repeat-headers=1"]
        options = {"preset": settings.preset}
        crf = settings.effective_crf
        if crf is not None:
            options["crf"] = str(crf)
        else:
            assert settings.bitrate is not None
            enc.bit_rate = settings.bitrate
            kbps = max(1, settings.bitrate // 1000)
            params += [f"vbv-maxrate={kbps}", f"vbv-bufsize={kbps}"]
        if settings.codec == "libx265":
            params.append("log-level=error")
            options["x265-params"] = ":".join(params)
        else:
            options["x264-params"] = ":".join(params)
        enc.options = options
        self._enc = enc

    def encode(self, frame: Any) -> list[Any]:
        """Packets for ``frame`` (None: drain the encoder; it cannot be used after)."""
        packets: list[Any] = self._enc.encode(frame)
        return packets


@dataclass(frozen=True)
class TranscodeSettings:
    """What transcode mode needs beyond the recording's own settings."""

    camera_id: str
    location: Location
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    style: StampStyle = field(default_factory=StampStyle)
    timezone: str | None = None  # IANA zone of the local-time line; None: this machine's
    wide_shot: bool = False
    allow_below_minimum: bool = False
    native: bool | None = None  # stamp and fingerprint kernels: see vidproof.stamp

    def tzinfo(self) -> dt.tzinfo | None:
        if self.timezone is None:
            return None
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"time zone {self.timezone!r} is unknown: expected an IANA name "
                             "such as Europe/Paris") from None


@dataclass(frozen=True)
class TranscodedInfo(StreamInfo):
    """The encoder's output stream, and what the context records about it."""

    context: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class EncodedFrame(CodedFrame):
    """An encoded picture, with the fingerprint of what was encoded (base64)."""

    fp: str | None = None
    duplicate: bool = False  # the source picture repeated the one before


def fingerprint_text(fp: bytes) -> str:
    """A fingerprint as the frame record's ``fp`` member: base64 (RFC 4648), padded."""
    return base64.b64encode(fp).decode("ascii")


def cells_outside(width: int, height: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """Which fingerprint cells (a 256-entry boolean mask) no pixel of ``box`` reaches."""
    mask = np.ones((FINGERPRINT_GRID, FINGERPRINT_GRID), bool)
    if box is None:
        return mask.reshape(-1)
    x, y, w, h = box
    step = sampling_step(height, width)
    hs, ws = -(-height // step), -(-width // step)
    rows = (np.arange(FINGERPRINT_GRID + 1) * hs) // FINGERPRINT_GRID * step
    cols = (np.arange(FINGERPRINT_GRID + 1) * ws) // FINGERPRINT_GRID * step
    hit_r = (rows[:-1] < y + h) & (rows[1:] > y)
    hit_c = (cols[:-1] < x + w) & (cols[1:] > x)
    mask[np.ix_(hit_r, hit_c)] = False
    return mask.reshape(-1)


class DuplicateDetector:
    """Counts source pictures identical to the one before, outside the stamp.

    Cheap first: the fingerprint cells that the stamp does not reach must be equal
    (one integer comparison); then every 16th row of the luma outside the stamp's
    box (a static scene's noise shows there); only then all the pixels."""

    SAMPLE_ROWS = 16

    def __init__(self) -> None:
        self._prev: tuple[Any, np.ndarray, int] | None = None  # frame, y, fp as an int
        self._mask_for: tuple[Any, ...] | None = None
        self._mask = 0
        self.count = 0

    def check(self, frame: Any, y: np.ndarray, fp: bytes,
              box: tuple[int, int, int, int] | None) -> bool:
        cur = int.from_bytes(fp, "big")
        prev, self._prev = self._prev, (frame, y, cur)
        key = (y.shape, box)
        if key != self._mask_for:
            # 0xFF for every byte of a cell that the stamp does not reach
            cells = cells_outside(y.shape[1], y.shape[0], box)
            self._mask = int.from_bytes(np.where(cells, 0xFF, 0).astype(np.uint8).tobytes(),
                                        "big")
            self._mask_for = key
        if prev is None or prev[1].shape != y.shape or (cur ^ prev[2]) & self._mask:
            return False
        py = prev[1]
        if box is None:
            parts = [(y, py)]
        else:
            x0, y0, w, h = box
            parts = [(y[:y0], py[:y0]), (y[y0 + h:], py[y0 + h:]),
                     (y[y0:y0 + h, :x0], py[y0:y0 + h, :x0]),
                     (y[y0:y0 + h, x0 + w:], py[y0:y0 + h, x0 + w:])]
        n = self.SAMPLE_ROWS
        same = (all(np.array_equal(a[::n], b[::n]) for a, b in parts)
                and all(np.array_equal(a, b) for a, b in parts))
        if same:
            self.count += 1
        return same


def _fraction_json(value: Fraction | None) -> list[int] | None:
    return None if value is None else [value.numerator, value.denominator]


class Transcoder:
    """The per-connection state of transcode mode: stamper, encoder, timestamps."""

    def __init__(self, settings: TranscodeSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.tz = settings.tzinfo()
        self.encoder: Encoder | None = None
        self.stamper: Stamper | None = None
        self.dups = DuplicateDetector()
        self.assessment: Assessment | None = None
        self._pending: dict[int, tuple[int, int | None, str, bool]] = {}
        self._base_utc: int | None = None
        self._last_pts = -1
        self._info: RawInfo | None = None

    def start(self, info: RawInfo) -> TranscodedInfo:
        """A new picture size or connection: check the profile, set up, describe."""
        s = self.settings
        self.assessment = enforce(assess(info.width, info.height, info.fps,
                                         wide_shot=s.wide_shot,
                                         override=s.allow_below_minimum))
        loc = s.location
        self.stamper = Stamper(info.width, info.height, camera_id=s.camera_id, label=loc.label,
                               lat=loc.lat, lon=loc.lon, tz=self.tz, style=s.style,
                               native=s.native)
        self.encoder = Encoder(s.encoder, info.width, info.height, info.fps)
        # Place the stamp once on a scratch picture, to record where it is.
        scratch = np.zeros((info.height * 3 // 2, info.width), np.uint8)
        self.stamper.apply_i420(scratch, self.clock())
        box = self.stamper.box()
        self._pending.clear()
        self._last_pts = -1
        self._base_utc = None
        self._info = info
        style = s.style
        context = {
            "mode": "transcode",
            "input": {**info.input, "fps": _fraction_json(info.fps)},
            "encoder": s.encoder.to_json(self.encoder.gop),
            "stamp": {
                "lines": ["date and time UTC, to the millisecond",
                          "local date and time, to the millisecond, with the UTC offset",
                          "camera id | location label", "latitude, longitude"],
                "time": "the frame record's utc_ns, truncated to the millisecond",
                "time_zone": s.timezone or "recorder's local time zone",
                "style": style.kind, "corner": style.corner,
                "font": style.font_path.rsplit("/", 1)[-1] if style.font_path else
                "Pillow's default font (Aileron Regular)",
                "font_px": self.stamper.font_size,
                "box": None if box is None else list(box),
                "kernels": "native" if self.stamper.native else "numpy",
            },
            "fingerprint": {
                "version": FINGERPRINT_VERSION, "grid": FINGERPRINT_GRID,
                "bytes": FINGERPRINT_SIZE, "encoding": "base64",
                "of": "the stamped luma plane given to the encoder",
            },
            "profile": self.assessment.to_json(),
        }
        return TranscodedInfo(
            codec=self.encoder.codec, width=info.width, height=info.height,
            time_base=TIME_BASE, fps=info.fps, extradata=None, description=info.description,
            template=None, clock=info.clock, skipped_before_keyframe=info.skipped_before_keyframe,
            context=context)

    def prepare(self, item: RawFrame) -> Any:
        """Stamp and fingerprint one picture in place; its frame, ready to encode."""
        stamper = self.stamper
        assert stamper is not None
        frame = item.frame
        y, u, v = item.planes or frame_planes(frame)
        stamper.apply(y, u, v, item.utc_ns)
        box = stamper.box()
        # With the sums the source added up while copying the picture, only the grid
        # rows that the stamp reaches are read again.
        fp = fingerprint(y, native=stamper.native, sums=item.luma_sums,
                         changed=None if box is None else (box[1], box[3]))
        dup = self.dups.check(frame, y, fp, box)
        if self._base_utc is None:
            self._base_utc = item.utc_ns
        pts = (item.utc_ns - self._base_utc) * 9 // 100_000  # ns -> 1/90000 s
        if pts <= self._last_pts:
            pts = self._last_pts + 1  # capture times must increase for the encoder
        self._last_pts = pts
        frame.pts, frame.time_base, frame.pict_type = pts, TIME_BASE, _NO_TYPE
        self._pending[pts] = (item.utc_ns, item.cam_utc_ns, fingerprint_text(fp), dup)
        return frame

    def encode(self, frames: list[Any]) -> list[EncodedFrame]:
        """Encode prepared frames, in order: the packets the encoder gave."""
        encoder = self.encoder
        assert encoder is not None
        packets: list[Any] = []
        for frame in frames:
            packets += encoder.encode(frame)
        return self._packets(packets)

    def flush(self) -> list[EncodedFrame]:
        out = []
        if self.encoder is not None:
            packets = self.encoder.encode(None)
            self.encoder = None
            out = self._packets(packets)
        self._pending.clear()
        return out

    def _packets(self, packets: list[Any]) -> list[EncodedFrame]:
        out = []
        for p in packets:
            meta = self._pending.pop(p.pts, None)
            if meta is None:  # not a picture we gave it (never seen with these settings)
                continue
            utc, cam, fp, dup = meta
            # The packet goes along: the recorder digests it in place and muxes it as
            # it is (no copy).
            out.append(EncodedFrame(memoryview(p), p.pts, p.dts, TIME_BASE, p.is_keyframe,
                                    utc, cam, fp, dup, packet=p))
        return out


def batch_size(info: RawInfo) -> int:
    """How many pictures :func:`transcode` takes through each stage at a time: a
    quarter of a second of them (at 25 fps when the rate is unknown), 1 to
    ``MAX_BATCH``, and no more than ``MAX_BATCH_BYTES`` of pictures held."""
    fps = info.fps if info.fps is not None else Fraction(25)
    frame_bytes = info.width * info.height * 3 // 2
    return max(1, min(MAX_BATCH, round(fps * BATCH_SECONDS), MAX_BATCH_BYTES // frame_bytes))


def transcode(raw: Iterator[RawItem], settings: TranscodeSettings,
              clock: Clock, batch: int | None = None) -> Iterator[SourceItem]:
    """Stamp, fingerprint and encode a raw-frame source into a coded source.

    Pictures go through in small batches (:func:`batch_size`): the source decodes a
    batch, then each picture is stamped and fingerprinted, then encoded, then the
    recorder digests, chains and muxes their packets. Every stage then runs on
    caches that it warmed for the picture before: run once per picture between two
    encodes, which evict them, each stage cost several times as much (measured in
    benchmarks/transcode.py). A batch is cut short by anything but a picture (a new
    stream, a lost camera) and by the end of the source, so nothing waits behind it;
    the frames' capture times are taken by the source as they arrive, unchanged.
    ``batch``: pictures per batch instead (1: one at a time; tests)."""
    if batch is not None and batch < 1:
        raise ValueError(f"batch of {batch} pictures: expected at least 1")
    t = Transcoder(settings, clock)
    pending: list[RawFrame] = []
    size = 1

    def run() -> list[EncodedFrame]:
        if not pending:
            return []
        frames = [t.prepare(item) for item in pending]
        pending.clear()
        return t.encode(frames)

    try:
        for item in raw:
            if isinstance(item, RawFrame):
                pending.append(item)
                if len(pending) >= size:
                    yield from run()
                continue
            yield from run()
            yield from t.flush()
            if isinstance(item, RawInfo):
                size = batch or batch_size(item)
                yield t.start(item)
            else:
                assert isinstance(item, SourceLost)
                yield item
        yield from run()
        yield from t.flush()
    finally:
        close = getattr(raw, "close", None)
        if close is not None:
            close()


def transcode_source(spec: str, settings: TranscodeSettings, *, fast: bool,
                     duration: float | None, clock: Clock,
                     stop: Callable[[], bool] = lambda: False,
                     tls_ca: Path | None = None) -> Iterator[SourceItem]:
    """The coded source of transcode mode for a source spec (see capture/raw.py)."""
    from .capture.raw import open_raw_source

    # The decoder gets the encoder's threads (one each, or FFmpeg's choice).
    return transcode(open_raw_source(spec, fast=fast, duration=duration, clock=clock,
                                     stop=stop, tls_ca=tls_ca, threads=settings.encoder.threads),
                     settings, clock)
