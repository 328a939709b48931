"""Sources of raw (decoded) frames, for transcode mode (``record --stamp``).

A raw source yields :class:`RawInfo` when it (re)connects or its picture size
changes, :class:`RawFrame` for every picture, and :class:`SourceLost` when the
camera goes away. Every :class:`RawFrame` holds a PyAV ``yuv420p`` frame of even
size that the caller **owns** and may write into: a decoder's output shares its
buffer with the decoder's reference pictures, so it is never stamped in place as
received. Decoded pictures are copied into frames of a :class:`FramePool` (buffers
of our own, recycled once nothing references them: no page faults of fresh memory
per picture); other formats are reformatted into a new frame.

Decoders run on one thread (:func:`single_threaded`): transcode mode is measured in
cameras per core, and FFmpeg's frame threads cost more CPU time per picture, and
hand over pictures that another core wrote (a colder copy).

Sources (``spec``):

* ``testsrc[:WxH@FPS]``: FFmpeg's testsrc2 as raw frames, at any even size (not
  the synthetic camera's H.264: there is nothing to decode).
* a media file in any codec FFmpeg decodes (H.264, H.265, MJPEG, FFV1…), decoded.
* ``rtsp://`` / ``rtsps://``: the camera's coded frames (read, reconnected and timed
  by :func:`vidproof.capture.sources.rtsp`) decoded here.
* ``device:/dev/videoN[:WxH[@FPS]]``: a V4L2 camera through OpenCV (the size and
  rate, when given, are asked of the device); its BGR frames are converted once to
  YUV 4:2:0 (the encoder's format), where the stamp is drawn.

Capture times follow the passthrough sources: files and testsrc are timed by their
stream timestamps from the recording start (``clock`` ``"media"``), cameras and
devices by the recorder's clock when the frame arrives (``"wall"``).
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import SourceError, UsageError
from ..stamp.fingerprint import copy_planes
from .sources import Backoff, Clock, CodedFrame, Pacer, SourceLost, StreamInfo, redact, rtsp

_TESTSRC = re.compile(r"^testsrc(?::(\d+)x(\d+)(?:@(\d+))?)?$")
_DEVICE = re.compile(r"^device:(/dev/[^:@]+)(?::(\d{2,5})x(\d{2,5})(?:@(\d{1,3}))?)?$")
_MAX_PENDING = 256  # coded frames awaiting their picture (a decoder's delay is far less)


@dataclass(frozen=True)
class RawInfo:
    """The picture a raw source delivers from now on."""

    width: int
    height: int
    fps: Fraction | None
    description: str
    clock: str  # "media" or "wall", as StreamInfo.clock
    input: dict[str, Any] = field(default_factory=dict)  # recorded in the context
    skipped_before_keyframe: int = 0


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class RawFrame:
    frame: Any  # av.VideoFrame: yuv420p, even size, owned and writable
    utc_ns: int
    cam_utc_ns: int | None = None
    # Writable views of the frame's Y, U and V planes, when the source has them at hand
    # (None: vidproof.stamp.frame_planes gives them).
    planes: Planes | None = field(default=None, compare=False, repr=False)
    # The fingerprint's sums of the luma as the source copied it (the C kernels add
    # them up while copying; see vidproof.stamp.fingerprint), or None.
    luma_sums: bytes | None = field(default=None, compare=False, repr=False)


RawItem = RawInfo | RawFrame | SourceLost


class FramePool:
    """yuv420p frames of one size, in buffers of our own, that decoded pictures are
    copied into.

    Each frame wraps a contiguous I420 numpy array (``VideoFrame.from_numpy_buffer``).
    A frame is handed out again only when nothing else holds it: no Python reference
    to the frame, or to its array (the plane views handed out with it, or any view of
    them), besides the pool's own; and no FFmpeg reference to its buffer (an encoder
    that kept one: ``make_writable`` would then move the frame to a new buffer, and
    the pool lets it go). When every frame is taken, up to ``keep`` are kept; beyond,
    a fresh frame is made each time (correct, only slower)."""

    def __init__(self, width: int, height: int, keep: int = 6) -> None:
        if width & 1 or height & 1:
            raise ValueError(f"a {width}x{height} pool: sizes must be even")
        self.width, self.height, self.keep = width, height, keep
        self._slots: list[tuple[np.ndarray, Any]] = []  # (I420 array, its frame)
        self._free_refs: tuple[int, int] = (0, 0)

    @staticmethod
    def _refs(slot: tuple[np.ndarray, Any]) -> tuple[int, int]:
        return sys.getrefcount(slot[0]), sys.getrefcount(slot[1])

    def _new(self) -> tuple[np.ndarray, Any]:
        buf = np.empty((self.height * 3 // 2, self.width), np.uint8)
        return buf, av.VideoFrame.from_numpy_buffer(buf, format="yuv420p")

    def _views(self, buf: np.ndarray) -> Planes:
        w, h = self.width, self.height
        n, c = w * h, w * h // 4
        flat = buf.reshape(-1)
        return (buf[:h], flat[n:n + c].reshape(h // 2, w // 2),
                flat[n + c:n + 2 * c].reshape(h // 2, w // 2))

    def take(self) -> tuple[Any, Planes]:
        """A frame that only the caller holds, and writable views of its planes."""
        for i, slot in enumerate(self._slots):
            if self._refs(slot) != self._free_refs:
                continue
            buf, frame = slot
            frame.make_writable()  # a no-op, unless FFmpeg still holds the buffer
            if frame.planes[0].buffer_ptr != buf.ctypes.data:
                del self._slots[i]  # moved to a new buffer: not ours to recycle
                break
            return frame, self._views(buf)
        slot = self._new()
        if len(self._slots) < self.keep:
            if not self._slots:
                self._free_refs = self._refs(slot)
            self._slots.append(slot)
        return slot[1], self._views(slot[0])

    def copy(self, frame: Any) -> tuple[Any, Planes, bytes | None]:
        """A pool frame holding the picture of ``frame`` (yuv420p, this pool's size),
        its planes, and the fingerprint's sums of its luma (C kernels) or None."""
        out, planes = self.take()
        src = tuple(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
                    for p in frame.planes)
        return out, planes, copy_planes(src, planes)


def single_threaded(codec_context: Any) -> None:
    """Decode on the calling thread (see the module's docstring)."""
    codec_context.thread_count = 1


class Owner:
    """Turns decoded frames into frames the caller owns (see the module's docstring)."""

    def __init__(self) -> None:
        self._pool: FramePool | None = None

    def own(self, frame: Any) -> tuple[Any, Planes | None, bytes | None]:
        """An owned yuv420p frame of even size with the picture of ``frame``, its planes
        and luma sums when known (see :meth:`FramePool.copy`)."""
        w, h = frame.width, frame.height
        if frame.format.name == "yuv420p" and not (w | h) & 1:
            pool = self._pool
            if pool is None or (pool.width, pool.height) != (w, h):
                pool = self._pool = FramePool(w, h)
            return pool.copy(frame)
        return frame.reformat(width=w & ~1, height=h & ~1, format="yuv420p"), None, None


def owned_yuv420p(frame: Any) -> Any:
    """``frame`` as a yuv420p frame of even size that the caller owns and may write.

    A yuv420p frame of even size is made writable in place (its buffer is copied
    only when shared); any other format or an odd size is converted (one swscale
    pass, into a new frame). For a decoder's pictures, :class:`Owner` is cheaper."""
    w, h = frame.width, frame.height
    if frame.format.name == "yuv420p" and not (w | h) & 1:
        frame.make_writable()
        return frame
    return frame.reformat(width=w & ~1, height=h & ~1, format="yuv420p")


def _fps(value: Any) -> Fraction | None:
    if not value:
        return None
    rate = Fraction(value)
    return rate if 0 < rate <= 1000 else None


# -- testsrc ------------------------------------------------------------------------

def parse_testsrc(spec: str) -> tuple[int, int, int]:
    m = _TESTSRC.match(spec)
    if not m:
        raise UsageError(f"source {spec!r} is invalid: expected testsrc[:WxH@FPS]")
    width, height = int(m.group(1) or 1280), int(m.group(2) or 720)
    fps = int(m.group(3) or 25)
    if not (16 <= width <= 7680 and 16 <= height <= 4320 and width % 2 == 0
            and height % 2 == 0 and 1 <= fps <= 120):
        raise UsageError(f"source {spec!r} is invalid: expected even sizes 16..7680 x 16..4320 "
                         "and 1..120 fps")
    return width, height, fps


def raw_testsrc(spec: str, *, fast: bool, duration: float | None,
                clock: Clock) -> Iterator[RawItem]:
    """FFmpeg's testsrc2 (moving pattern, running counter) as raw frames."""
    width, height, fps = parse_testsrc(spec)
    frames = None if duration is None else round(duration * fps)
    graph = av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi")
    try:
        yield RawInfo(width, height, Fraction(fps), f"testsrc:{width}x{height}@{fps}", "media",
                      {"kind": "testsrc", "pattern": "testsrc2", "pix_fmt": "yuv420p"})
        pacer = Pacer(fast, clock)
        for count, frame in enumerate(graph.decode(video=0)):
            if frames is not None and count >= frames:
                break
            utc, _ = pacer.utc_ns(count / fps)
            yield RawFrame(owned_yuv420p(frame), utc)
    finally:
        graph.close()


# -- media files --------------------------------------------------------------------

def raw_file(path: str, *, fast: bool, duration: float | None,
             clock: Clock) -> Iterator[RawItem]:
    """A media file in any codec FFmpeg decodes, decoded frame by frame."""
    if not Path(path).is_file():
        raise SourceError(f"source {path!r} does not exist or is not a file; expected "
                          "testsrc[:WxH@FPS], a media file, rtsp://…, rtsps://… or "
                          "device:/dev/videoN")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        text = getattr(exc, "strerror", None) or str(exc)
        raise SourceError(f"cannot open {path} as a media file: {text}") from None
    try:
        if not container.streams.video:
            raise SourceError(f"{path} has no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        single_threaded(cc)
        owner = Owner()
        fps = _fps(stream.average_rate) or _fps(stream.guessed_rate)
        name = Path(path).name
        size: tuple[int, int] | None = None
        pacer = Pacer(fast, clock)
        try:
            for frame in container.decode(stream):
                utc, offset = pacer.utc_ns(frame.time)
                if duration is not None and offset >= duration:
                    break
                out, planes, sums = owner.own(frame)
                if (out.width, out.height) != size:
                    size = (out.width, out.height)
                    yield RawInfo(out.width, out.height, fps, name, "media",
                                  {"kind": "file", "codec": cc.name,
                                   "pix_fmt": frame.format.name,
                                   "width": frame.width, "height": frame.height})
                del frame  # the decoder's picture: not held while the next is decoded
                yield RawFrame(out, utc, planes=planes, luma_sums=sums)
        except av.FFmpegError as exc:
            raise SourceError(f"{path}: cannot decode the video ({exc})") from None
    finally:
        container.close()


# -- coded sources, decoded (RTSP) ----------------------------------------------------

def decode_coded(items: Iterator[StreamInfo | CodedFrame | SourceLost],
                 kind: str) -> Iterator[RawItem]:
    """Decode a coded source (:mod:`vidproof.capture.sources`) into raw frames.

    Each decoded picture keeps the capture times of the packet it came from
    (matched by pts, in decoding order when the source gives none). A new decoder
    is opened on each (re)connection; on :class:`SourceLost` the decoder is drained
    first, so no picture received before the loss is dropped."""
    decoder: Any = None
    info: StreamInfo | None = None
    times: dict[int, tuple[int, int | None]] = {}
    untimed: deque[tuple[int, int | None]] = deque()
    size: tuple[int, int] | None = None
    owner = Owner()

    def frames(packet: Any) -> Iterator[RawItem]:
        nonlocal size
        assert info is not None
        for frame in decoder.decode(packet):
            t = times.pop(frame.pts, None) if frame.pts is not None else None
            if t is None and untimed:
                t = untimed.popleft()
            elif t is None and times:  # a pts the decoder changed: the oldest waiting
                t = times.pop(next(iter(times)))
            if t is None:
                continue
            out, planes, sums = owner.own(frame)
            if (out.width, out.height) != size:
                size = (out.width, out.height)
                yield RawInfo(out.width, out.height, info.fps, info.description, info.clock,
                              {"kind": kind, "codec": info.codec, "pix_fmt": frame.format.name,
                               "width": frame.width, "height": frame.height},
                              info.skipped_before_keyframe)
            yield RawFrame(out, t[0], t[1], planes=planes, luma_sums=sums)

    def drain() -> Iterator[RawItem]:
        if decoder is not None:
            with suppress(av.FFmpegError):
                yield from frames(None)
        times.clear()
        untimed.clear()

    for item in items:
        if isinstance(item, StreamInfo):
            yield from drain()
            decoder = av.CodecContext.create(item.codec, "r")
            single_threaded(decoder)
            if item.extradata:
                decoder.extradata = item.extradata
            info, size = item, None
        elif isinstance(item, CodedFrame):
            if decoder is None:
                continue
            packet = av.Packet(item.data)
            packet.pts, packet.dts, packet.time_base = item.pts, item.dts, item.time_base
            if item.pts is not None:
                times[item.pts] = (item.utc_ns, item.cam_utc_ns)
                while len(times) > _MAX_PENDING:  # pictures the decoder never gave back
                    times.pop(next(iter(times)))
            elif len(untimed) < _MAX_PENDING:
                untimed.append((item.utc_ns, item.cam_utc_ns))
            try:
                yield from frames(packet)
            except av.FFmpegError:
                continue  # a damaged packet: its picture is lost, the stream goes on
        else:
            yield from drain()
            decoder = None
            yield item
    yield from drain()


# -- V4L2 devices through OpenCV --------------------------------------------------------

def capture_frames(capture: Any, description: str, *, duration: float | None, clock: Clock,
                   stop: Callable[[], bool]) -> Iterator[RawItem]:
    """Read an opened ``cv2.VideoCapture`` until it fails, ``duration`` s have passed
    or ``stop()``; BGR frames are converted once to YUV 4:2:0 (cropped to even sizes).
    The first frame must come (else :class:`SourceError`); a later failure yields
    :class:`SourceLost` and ends."""
    import cv2

    started = time.monotonic()
    fps = _fps(capture.get(cv2.CAP_PROP_FPS))
    size: tuple[int, int] | None = None
    while not stop() and (duration is None or time.monotonic() - started < duration):
        ok, bgr = capture.read()
        now = clock()
        if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
            if size is None:
                raise SourceError(f"{description}: no picture could be read")
            yield SourceLost(now, "the device stopped delivering frames")
            return
        h, w = bgr.shape[0] & ~1, bgr.shape[1] & ~1
        if (w, h) != size:
            if w < 16 or h < 16:
                raise SourceError(f"{description}: {w}x{h} pictures are too small")
            size = (w, h)
            fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
            pixel = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
            yield RawInfo(w, h, fps, description, "wall",
                          {"kind": "device", "reader": f"OpenCV {cv2.__version__}",
                           "device_format": pixel or None, "width": int(bgr.shape[1]),
                           "height": int(bgr.shape[0])})
        if (w, h) != (bgr.shape[1], bgr.shape[0]):
            bgr = bgr[:h, :w]
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        # The converted array is ours: wrapped, not copied, as the frame's buffer.
        yield RawFrame(av.VideoFrame.from_numpy_buffer(i420, format="yuv420p"), now)


def raw_device(spec: str, *, duration: float | None, clock: Clock,
               stop: Callable[[], bool]) -> Iterator[RawItem]:
    """``device:/dev/videoN[:WxH[@FPS]]``: a V4L2 camera; a size and rate are asked of
    the device (which may pick the nearest mode it has: the frames tell)."""
    m = _DEVICE.match(spec)
    if not m:
        raise UsageError(f"source {spec!r} is invalid: expected device:/dev/videoN[:WxH[@FPS]]")
    path = m.group(1)
    if not Path(path).exists():
        raise SourceError(f"device {path} does not exist (is the camera plugged in?)")
    try:
        import cv2
    except ImportError:
        raise SourceError("device sources need OpenCV: install opencv-python-headless") from None
    capture = cv2.VideoCapture(path, cv2.CAP_V4L2)
    try:
        if not capture.isOpened():
            raise SourceError(f"cannot open {path} as a V4L2 camera")
        if m.group(2):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, int(m.group(2)))
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, int(m.group(3)))
        if m.group(4):
            capture.set(cv2.CAP_PROP_FPS, int(m.group(4)))
        yield from capture_frames(capture, path, duration=duration, clock=clock, stop=stop)
    finally:
        capture.release()


def open_raw_source(spec: str, *, fast: bool, duration: float | None,
                    clock: Clock = time.time_ns, stop: Callable[[], bool] = lambda: False,
                    tls_ca: Path | None = None,
                    backoff: Backoff | None = None) -> Iterator[RawItem]:
    """A raw-frame source for ``spec`` (see the module's docstring)."""
    if spec.startswith("testsrc"):
        return raw_testsrc(spec, fast=fast, duration=duration, clock=clock)
    if spec.startswith("device:"):
        return raw_device(spec, duration=duration, clock=clock, stop=stop)
    if spec.startswith(("rtsp://", "rtsps://")):
        coded = rtsp(spec, duration=duration, clock=clock, stop=stop, tls_ca=tls_ca,
                     backoff=backoff)
        return decode_coded(coded, "rtsp")
    if "://" in spec:
        raise UsageError(f"source {redact(spec)!r} has an unsupported scheme; expected "
                         "rtsp:// or rtsps://")
    return raw_file(spec, fast=fast, duration=duration, clock=clock)
