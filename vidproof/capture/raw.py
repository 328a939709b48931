"""Sources of raw (decoded) frames, for transcode mode (``record --stamp``).

A raw source yields :class:`RawInfo` when it (re)connects or its picture size
changes, :class:`RawFrame` for every picture, and :class:`SourceLost` when the
camera goes away. Every :class:`RawFrame` holds a PyAV ``yuv420p`` frame of even
size that the caller **owns** and may write into: a decoder's output shares its
buffer with the decoder's reference pictures, so it is never stamped as received.
An :class:`Owner` hands a decoded picture over a few pictures late, once the
decoder has let go of it, and makes it writable (FFmpeg's copy-on-write: nothing is
copied when nothing else holds the buffer, which is then the case for a
camera-like stream); a stream whose decoder keeps its pictures longer than that
has them copied into frames of a :class:`FramePool` (buffers of our own, recycled
once nothing references them). Other formats are reformatted into a new frame.

Decoders get as many threads as the encoder (:func:`decoder_threads`; the
``threads`` of :class:`vidproof.encode.EncoderSettings`, 0: FFmpeg's choice): one
thread each for many cameras on a small box, where FFmpeg's frame threads would cost
more CPU time per picture; FFmpeg's threads for one large picture that must keep up.

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
from ..stamp import kernels
from ..stamp.fingerprint import copy_planes
from .sources import (
    Backoff,
    Clock,
    CodedFrame,
    Pacer,
    SourceLost,
    StreamInfo,
    parse_testsrc,
    redact,
    rtsp,
)

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


class _Slot:
    """One frame of a :class:`FramePool`: its I420 array, the frame that wraps it, the
    plane views handed out with it, and how many references each has when free."""

    __slots__ = ("buf", "frame", "planes", "ptr", "plane0", "free")

    def __init__(self, width: int, height: int) -> None:
        n, c = width * height, width * height // 4
        self.buf = np.empty((height * 3 // 2, width), np.uint8)
        self.frame = av.VideoFrame.from_numpy_buffer(self.buf, format="yuv420p")
        flat = self.buf.reshape(-1)
        self.planes: Planes = (self.buf[:height], flat[n:n + c].reshape(height // 2, width // 2),
                               flat[n + c:n + 2 * c].reshape(height // 2, width // 2))
        del flat  # (a view of the array: counted below if it were still here)
        self.ptr = self.buf.ctypes.data
        self.plane0 = self.frame.planes[0]  # reads the frame's current data pointer
        self.free = self.refs()

    def refs(self) -> tuple[int, ...]:
        p = self.planes
        return (sys.getrefcount(self.buf), sys.getrefcount(self.frame),
                sys.getrefcount(p[0]), sys.getrefcount(p[1]), sys.getrefcount(p[2]))


class FramePool:
    """yuv420p frames of one size, in buffers of our own, that decoded pictures are
    copied into.

    Each frame wraps a contiguous I420 numpy array (``VideoFrame.from_numpy_buffer``).
    A frame is handed out again only when nothing else holds it: no Python reference
    to the frame, its array or the plane views handed out with it (a view of a view
    refers to the array) besides the pool's own; and no FFmpeg reference to its buffer
    (an encoder that kept one: ``make_writable`` would then move the frame to a new
    buffer, and the pool lets it go). When every frame is taken, up to ``keep`` are
    kept; beyond, a fresh frame is made each time (correct, only slower)."""

    def __init__(self, width: int, height: int, keep: int = 6,
                 native: bool | None = None) -> None:
        if width & 1 or height & 1:
            raise ValueError(f"a {width}x{height} pool: sizes must be even")
        self.width, self.height, self.keep = width, height, keep
        self.native = kernels.native_module(native) is not None  # resolved once
        self._slots: list[_Slot] = []

    def take(self) -> tuple[Any, Planes]:
        """A frame that only the caller holds, and writable views of its planes."""
        for i, slot in enumerate(self._slots):
            if slot.refs() != slot.free:
                continue
            slot.frame.make_writable()  # a no-op, unless FFmpeg still holds the buffer
            if slot.plane0.buffer_ptr != slot.ptr:
                del self._slots[i]  # moved to a new buffer: not ours to recycle
                break
            return slot.frame, slot.planes
        slot = _Slot(self.width, self.height)
        if len(self._slots) < self.keep:
            self._slots.append(slot)
        return slot.frame, slot.planes

    def copy(self, frame: Any) -> tuple[Any, Planes, bytes | None]:
        """A pool frame holding the picture of ``frame`` (yuv420p, this pool's size),
        its planes, and the fingerprint's sums of its luma (C kernels) or None."""
        out, planes = self.take()
        src = frame.planes
        sums = copy_planes(src, (src[0].line_size, src[1].line_size, src[2].line_size),
                           planes, native=self.native)
        return out, planes, sums


def decoder_threads(codec_context: Any, threads: int = 1) -> None:
    """Decode on ``threads`` threads (1: the calling thread; 0: FFmpeg's choice, frame
    and slice threads), as the encoder does (see the module's docstring)."""
    if threads != 1:
        codec_context.thread_type = "AUTO"
    codec_context.thread_count = threads


def _view(plane: Any) -> np.ndarray:
    """A writable 2-D view of a PyAV plane (its rows, without their padding)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


# An owned picture: (frame, writable views of its planes or None, the fingerprint's
# luma sums or None, the data the caller pushed with it).
Owned = tuple[Any, Planes | None, bytes | None, Any]


class Owner:
    """Turns a decoder's pictures into frames the caller owns, in their order.

    A decoded picture shares its buffer with the decoder for as long as the decoder
    keeps it as a reference, and FFmpeg's copy-on-write (``make_writable``) then
    copies it. So pictures are handed over ``delay`` pictures late: by then the
    decoder of a camera-like stream (one reference picture, no B-frames: two
    pictures later) has let go of them, and ``make_writable`` finds the buffer ours,
    with nothing to copy. When it had to copy all the same (more references,
    B-frames), the delay grows, up to ``MAX_DELAY`` pictures; past that, every
    picture is copied into a :class:`FramePool` as soon as it is decoded (no delay:
    cheaper than ``make_writable``'s fresh buffers). Either way the frame handed
    over is one that nothing else references: ``make_writable`` guarantees it."""

    START_DELAY = 2
    MAX_DELAY = 8

    def __init__(self) -> None:
        self.delay = self.START_DELAY
        self.copies = 0  # pictures that make_writable had to copy
        self._held: deque[tuple[Any, Any]] = deque()  # (decoded frame, caller's data)
        self._pool: FramePool | None = None
        self._copying = False  # past MAX_DELAY: copy into the pool at once

    def push(self, frame: Any, data: Any, pix_fmt: str | None = None) -> list[Owned]:
        """Hand over a decoded picture (with data of the caller's, given back with it;
        ``pix_fmt``: its format's name, if the caller has it at hand); returns the
        pictures now owned, in the order they were pushed."""
        w, h = frame.width, frame.height
        if (pix_fmt or frame.format.name) != "yuv420p" or (w | h) & 1:
            out = frame.reformat(width=w & ~1, height=h & ~1, format="yuv420p")
            return [*self.drain(), (out, None, None, data)]
        if self._copying:
            done = self.drain()  # (in order: any picture still held goes first)
            pool = self._pool
            if pool is None or (pool.width, pool.height) != (w, h):
                pool = self._pool = FramePool(w, h)
            copy, planes, sums = pool.copy(frame)
            done.append((copy, planes, sums, data))
            return done
        held = self._held
        held.append((frame, data))
        done = []
        while len(held) > self.delay:
            done.append(self._release(learn=True))
        return done

    def drain(self) -> list[Owned]:
        """The pictures still held (the stream ended, or the decoder was drained):
        call the decoder's ``flush_buffers`` first, so that it lets go of them."""
        done = []
        while self._held:
            done.append(self._release(learn=False))
        return done

    def _release(self, learn: bool) -> Owned:
        frame, data = self._held.popleft()
        planes = frame.planes
        before = planes[0].buffer_ptr
        frame.make_writable()  # ours from here on: copied if the decoder still holds it
        if planes[0].buffer_ptr != before:
            self.copies += 1
            if learn:  # the decoder kept it longer: wait longer for the next ones
                if self.delay < self.MAX_DELAY:
                    self.delay += 1
                else:
                    self._copying = True
            planes = frame.planes  # (a new buffer: its line sizes may differ)
        return frame, (_view(planes[0]), _view(planes[1]), _view(planes[2])), None, data


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

def raw_testsrc(spec: str, *, fast: bool, duration: float | None,
                clock: Clock, stop: Callable[[], bool] = lambda: False) -> Iterator[RawItem]:
    """FFmpeg's testsrc2 (moving pattern, running counter) as raw frames, until
    ``duration`` or ``stop()``."""
    width, height, fps = parse_testsrc(spec)
    frames = None if duration is None else round(duration * fps)
    graph = av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi")
    try:
        yield RawInfo(width, height, Fraction(fps), f"testsrc:{width}x{height}@{fps}", "media",
                      {"kind": "testsrc", "pattern": "testsrc2", "pix_fmt": "yuv420p"})
        pacer = Pacer(fast, clock)
        for count, frame in enumerate(graph.decode(video=0)):
            if (frames is not None and count >= frames) or stop():
                break
            utc, _ = pacer.utc_ns(count / fps)
            yield RawFrame(owned_yuv420p(frame), utc)
    finally:
        graph.close()


# -- media files --------------------------------------------------------------------

def raw_file(path: str, *, fast: bool, duration: float | None,
             clock: Clock, threads: int = 1,
             stop: Callable[[], bool] = lambda: False) -> Iterator[RawItem]:
    """A media file in any codec FFmpeg decodes, decoded frame by frame, until its end,
    ``duration`` or ``stop()`` (the pictures decoded by then are all handed over)."""
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
        decoder_threads(cc, threads)
        owner = Owner()
        fps = _fps(stream.average_rate) or _fps(stream.guessed_rate)
        name = Path(path).name
        size: tuple[int, int] | None = None
        pacer = Pacer(fast, clock)
        def owned(items: list[Owned]) -> list[RawItem]:
            nonlocal size
            got: list[RawItem] = []
            for out, planes, sums, (utc, pix_fmt, fw, fh) in items:
                if (out.width, out.height) != size:
                    size = (out.width, out.height)
                    got.append(RawInfo(out.width, out.height, fps, name, "media",
                                       {"kind": "file", "codec": cc.name, "pix_fmt": pix_fmt,
                                        "width": fw, "height": fh}))
                got.append(RawFrame(out, utc, planes=planes, luma_sums=sums))
            return got

        try:
            for frame in container.decode(stream):
                if stop():
                    break
                utc, offset = pacer.utc_ns(frame.time)
                if duration is not None and offset >= duration:
                    break
                pix_fmt = frame.format.name
                data = (utc, pix_fmt, frame.width, frame.height)
                yield from owned(owner.push(frame, data, pix_fmt))
                del frame  # the decoder's picture: held by the owner only
            # The decoder lets go of its pictures: those still held are ours alone.
            cc.flush_buffers()
            yield from owned(owner.drain())
        except av.FFmpegError as exc:
            raise SourceError(f"{path}: cannot decode the video ({exc})") from None
    finally:
        container.close()


# -- coded sources, decoded (RTSP) ----------------------------------------------------

def decode_coded(items: Iterator[StreamInfo | CodedFrame | SourceLost],
                 kind: str, threads: int = 1) -> Iterator[RawItem]:
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

    def owned(items: list[Owned]) -> list[RawItem]:
        nonlocal size
        got: list[RawItem] = []
        for out, planes, sums, (t, stream, pix_fmt, fw, fh) in items:
            if (out.width, out.height) != size:
                size = (out.width, out.height)
                got.append(RawInfo(out.width, out.height, stream.fps, stream.description,
                                   stream.clock, {"kind": kind, "codec": stream.codec,
                                                  "pix_fmt": pix_fmt, "width": fw,
                                                  "height": fh},
                                   stream.skipped_before_keyframe))
            got.append(RawFrame(out, t[0], t[1], planes=planes, luma_sums=sums))
        return got

    def frames(packet: Any) -> Iterator[RawItem]:
        assert info is not None
        for frame in decoder.decode(packet):
            t = times.pop(frame.pts, None) if frame.pts is not None else None
            if t is None and untimed:
                t = untimed.popleft()
            elif t is None and times:  # a pts the decoder changed: the oldest waiting
                t = times.pop(next(iter(times)))
            if t is None:
                continue
            pix_fmt = frame.format.name
            data = (t, info, pix_fmt, frame.width, frame.height)
            yield from owned(owner.push(frame, data, pix_fmt))

    def drain() -> Iterator[RawItem]:
        nonlocal decoder
        if decoder is not None:
            with suppress(av.FFmpegError):
                yield from frames(None)
                decoder.flush_buffers()  # it lets go of its pictures: ours alone now
            decoder = None
        yield from owned(owner.drain())
        times.clear()
        untimed.clear()

    for item in items:
        if isinstance(item, StreamInfo):
            yield from drain()
            decoder = av.CodecContext.create(item.codec, "r")
            decoder_threads(decoder, threads)
            if item.extradata:
                decoder.extradata = item.extradata
            info, size = item, None
        elif isinstance(item, CodedFrame):
            if decoder is None:
                continue
            packet = av.Packet(bytes(item.data))  # (no copy of bytes)
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
                    tls_ca: Path | None = None, backoff: Backoff | None = None,
                    threads: int = 1) -> Iterator[RawItem]:
    """A raw-frame source for ``spec`` (see the module's docstring); ``threads``: the
    decoder's (see :func:`decoder_threads`)."""
    if spec.startswith("testsrc"):
        return raw_testsrc(spec, fast=fast, duration=duration, clock=clock, stop=stop)
    if spec.startswith("device:"):
        return raw_device(spec, duration=duration, clock=clock, stop=stop)
    if spec.startswith(("rtsp://", "rtsps://")):
        coded = rtsp(spec, duration=duration, clock=clock, stop=stop, tls_ca=tls_ca,
                     backoff=backoff)
        return decode_coded(coded, "rtsp", threads)
    if "://" in spec:
        raise UsageError(f"source {redact(spec)!r} has an unsupported scheme; expected "
                         "rtsp:// or rtsps://")
    return raw_file(spec, fast=fast, duration=duration, clock=clock, threads=threads,
                    stop=stop)
