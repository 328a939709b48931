"""Sources of coded video frames: the synthetic camera, media files and RTSP cameras.

A source yields :class:`StreamInfo` when it (re)connects, :class:`CodedFrame`
for every access unit and :class:`SourceLost` when the camera goes away. It
knows nothing of digests or signing.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av

from ..digest import NO_PROBE_DECODE, SUPPORTED_CODECS
from ..errors import SourceError, UsageError

Clock = Callable[[], int]


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    width: int
    height: int
    time_base: Fraction
    fps: Fraction | None
    extradata: bytes | None
    description: str
    template: Any = field(default=None, compare=False)  # PyAV stream to copy parameters from
    clock: str = "wall"  # "wall": time of reception; "media": start time + stream timestamps
    skipped_before_keyframe: int = 0


@dataclass(frozen=True)
class CodedFrame:
    data: bytes | memoryview  # the access unit; a memoryview of ``packet`` (no copy)
    pts: int | None
    dts: int | None
    time_base: Fraction
    keyframe: bool
    utc_ns: int
    cam_utc_ns: int | None = None
    # The PyAV packet that holds ``data``, when the recorder may mux it as it is (no copy
    # of the picture data); None: it muxes a new packet of ``data``.
    packet: Any = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class SourceLost:
    utc_ns: int
    reason: str


SourceItem = StreamInfo | CodedFrame | SourceLost

_TESTSRC = re.compile(r"^testsrc(?::(\d+)x(\d+)(?:@(\d+))?)?$")


def redact(url: str) -> str:
    """Drop credentials from a URL so that it can be logged and recorded."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return url


def _check_codec(name: str, what: str) -> str:
    if name not in SUPPORTED_CODECS:
        raise SourceError(
            f"{what}: video codec {name!r} cannot be recorded bit-exact; "
            "expected H.264 or H.265"
        )
    return name


class Pacer:
    """Maps stream timestamps to capture times, pacing at real time unless ``fast``."""

    def __init__(self, fast: bool, clock: Clock) -> None:
        self.fast = fast
        self.start_utc = clock()
        self.start_mono = time.monotonic_ns()
        self.origin: float | None = None
        self.last = 0.0

    def utc_ns(self, seconds: float | None) -> tuple[int, float]:
        if seconds is None:
            seconds = self.last
        if self.origin is None:
            self.origin = seconds
        offset = seconds - self.origin
        self.last = seconds
        if not self.fast:
            delay = self.start_mono + offset * 1e9 - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
        return self.start_utc + round(offset * 1e9), offset


def parse_testsrc(spec: str) -> tuple[int, int, int]:
    """``testsrc[:WxH@FPS]`` → (width, height, fps), checked."""
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


def testsrc(spec: str, *, fast: bool, duration: float | None, clock: Clock,
            stop: Callable[[], bool] = lambda: False) -> Iterator[SourceItem]:
    """The built-in synthetic camera: FFmpeg's testsrc2 (moving pattern and a running
    clock), encoded with libx264 like a camera: no B-frames, 1-s GOP, SPS/PPS repeated
    before each keyframe; until ``duration`` or ``stop()``."""
    width, height, fps = parse_testsrc(spec)
    frames = None if duration is None else round(duration * fps)
    graph = av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, fps)
    enc.framerate = Fraction(fps)
    enc.gop_size = fps
    enc.max_b_frames = 0
    # A camera-like bit rate (about 0.07 bit per pixel), capped like a camera's encoder.
    kbps = max(64, width * height * fps * 7 // 100_000)
    enc.options = {"preset": "ultrafast", "tune": "zerolatency",
                   "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1:"
                                  f"bitrate={kbps}:vbv-maxrate={kbps}:vbv-bufsize={kbps}"}
    # testsrc2 draws the same pictures at every start; a real camera never repeats a
    # frame across restarts. Each run marks its frames with 16 random bytes and a frame
    # counter in the first luma row, so that no two runs share a frame digest.
    run_mark = os.urandom(16)
    time_base = Fraction(1, 90000)
    yield StreamInfo("h264", width, height, time_base, Fraction(fps), None,
                     f"testsrc:{width}x{height}@{fps}", clock="media")
    pacer = Pacer(fast, clock)
    count = 0
    ticks = 90000 // fps if 90000 % fps == 0 else None

    def emit(packets: list[Any]) -> Iterator[CodedFrame]:
        for p in packets:
            assert p.pts is not None
            pts = round(p.pts * 90000 / fps) if ticks is None else p.pts * ticks
            utc, _ = pacer.utc_ns(pts / 90000)
            yield CodedFrame(bytes(p), pts, pts, time_base, p.is_keyframe, utc, packet=p)

    try:
        for frame in graph.decode(video=0):
            if (frames is not None and count >= frames) or stop():
                break
            frame.pts, frame.time_base = count, Fraction(1, fps)
            frame.pict_type = av.video.frame.PictureType.NONE  # lavfi marks every frame I
            row = memoryview(frame.planes[0])
            row[:20] = run_mark + count.to_bytes(4, "big")
            count += 1
            yield from emit(enc.encode(frame))
        yield from emit(enc.encode(None))
    finally:
        graph.close()


def _stream_info(stream: Any, description: str, clock: str, skipped: int = 0) -> StreamInfo:
    cc = stream.codec_context
    return StreamInfo(
        codec=_check_codec(cc.name, description), width=cc.width, height=cc.height,
        time_base=stream.time_base, fps=stream.average_rate or stream.guessed_rate,
        extradata=bytes(cc.extradata) if cc.extradata else None,
        description=description, template=stream, clock=clock, skipped_before_keyframe=skipped,
    )


def _time_base(stream: Any, what: str) -> Fraction:
    if stream.time_base is None:
        raise SourceError(f"{what}: the video stream has no time base")
    return Fraction(stream.time_base)


def _open_error(what: str, exc: Exception) -> SourceError:
    text = getattr(exc, "strerror", None) or str(exc)
    return SourceError(f"cannot open {what}: {text}")


def media_file(path: str, *, fast: bool, duration: float | None,
               clock: Clock, stop: Callable[[], bool] = lambda: False) -> Iterator[SourceItem]:
    """A media file's video stream, demuxed (never decoded), until its end, ``duration``
    or ``stop()``."""
    if not Path(path).is_file():
        raise SourceError(f"source {path!r} does not exist or is not a file; "
                          "expected testsrc[:WxH@FPS], a media file, rtsp://… or rtsps://…")
    try:
        container = av.open(path, options=NO_PROBE_DECODE)  # passthrough: never decoded
    except (av.FFmpegError, OSError) as exc:
        raise _open_error(f"{path} as a media file", exc) from None
    try:
        if not container.streams.video:
            raise SourceError(f"{path} has no video stream")
        stream = container.streams.video[0]
        yield _stream_info(stream, Path(path).name, "media")
        pacer = Pacer(fast, clock)
        tb = _time_base(stream, path)
        num, den = tb.numerator, tb.denominator
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if stop():
                    break
                pts, dts = packet.pts, packet.dts
                ts = pts if pts is not None else dts
                # ts * num / den: int true division, rounded like float(ts * tb), without
                # a Fraction per packet
                utc, offset = pacer.utc_ns(None if ts is None else ts * num / den)
                if duration is not None and offset >= duration:
                    break
                yield CodedFrame(memoryview(packet), pts, dts, tb, packet.is_keyframe, utc,
                                 packet=packet)
        except av.FFmpegError as exc:
            raise SourceError(f"{path}: cannot read media ({exc})") from None
    finally:
        container.close()


@dataclass
class Backoff:
    """Waits between reconnection attempts: ``first``, then doubling, up to ``maximum`` s."""

    first: float = 0.5
    maximum: float = 5.0
    current: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.maximum:
            raise ValueError("back-off needs 0 < first <= maximum")

    def next(self) -> float:
        self.current = self.first if not self.current else min(self.current * 2, self.maximum)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


# FFmpeg probes a stream by reading packets until it has seen enough of it; an RTSP
# camera describes its stream in the SDP (size, parameter sets), so a short probe
# gets the first frames to the recorder as they arrive, not in a burst a second late.
_QUICK_PROBE = {"probesize": "32", "analyzeduration": "0"}


def _camera_clock_ns(container: Any, pts: int | None, tb: Fraction) -> int | None:
    """The camera's own wall clock for a frame, from its RTCP sender reports.

    FFmpeg maps the first sender report's NTP time to pts 0 of the stream
    (``start_time_realtime``, µs since the Unix epoch; RFC 3550 section 6.4.1);
    the frame's RTP timestamp carries it forward. ``None`` until the first
    sender report has arrived, or when the camera sends none.
    """
    realtime = container.start_time_realtime
    if realtime is None or realtime <= 0 or pts is None:
        return None
    ticks = pts * tb * 1_000_000_000
    return int(realtime) * 1000 + round(ticks)


def _open_rtsp(url: str, open_timeout: float, read_timeout: float,
               tls_ca: Path | None) -> Any:
    """Open an RTSP(S) camera over TCP (interleaved RTP: no UDP through firewalls and
    NAT, no packet loss). ``timeout`` bounds each socket operation inside FFmpeg;
    PyAV's ``(open, read)`` timeouts bound the whole opening and each read. With
    ``tls_ca``, an ``rtsps://`` camera must present a certificate issued by it for
    its host name; without, FFmpeg does not check the certificate."""
    options = {"rtsp_transport": "tcp", "timeout": str(int(read_timeout * 1e6))}
    if tls_ca is not None:
        options.update(tls_verify="1", ca_file=str(tls_ca))
    timeout = (open_timeout, read_timeout)
    container = av.open(url, options={**options, **_QUICK_PROBE}, timeout=timeout)
    stream = container.streams.video[0] if container.streams.video else None
    if stream is not None and stream.codec_context.width and stream.codec_context.height:
        return container
    # The SDP did not describe the picture: probe the stream itself.
    container.close()
    return av.open(url, options=options, timeout=timeout)


def _failure(exc: Exception, timeout: float, since: float) -> str:
    """Why a camera could not be opened or read. A timeout interrupts FFmpeg, which
    then reports either "exit requested" or whatever the interrupted step made of it
    (e.g. "invalid data" in the middle of the RTSP handshake): judge by the clock."""
    if isinstance(exc, av.ExitError) or time.monotonic() - since >= timeout:
        return f"no answer from the camera within {timeout:.3g} s"
    return getattr(exc, "strerror", None) or str(exc)


def rtsp(url: str, *, duration: float | None, clock: Clock, connect_timeout: float = 10.0,
         read_timeout: float = 5.0, backoff: Backoff | None = None,
         stop: Callable[[], bool] = lambda: False, stable_after: float = 10.0,
         tls_ca: Path | None = None) -> Iterator[SourceItem]:
    """An RTSP or RTSPS camera, read over TCP, reconnecting with exponential back-off.

    The first connection must succeed (else :class:`SourceError`). Later, when the
    stream ends, errs or stays silent for ``read_timeout`` s, a :class:`SourceLost`
    is yielded and the camera is called again after a back-off delay (reset once a
    connection has delivered frames for ``stable_after`` s), until ``duration`` s
    have passed since the start or ``stop()`` is true. Each (re)connection starts
    with a :class:`StreamInfo`, at the first keyframe. Back-off waits end when the
    duration does; connection attempts get at most the time left (and at least
    0.1 s); a read from a camera that hangs gives up after ``read_timeout`` s.
    ``tls_ca``: see :func:`_open_rtsp`.
    """
    if read_timeout <= 0 or connect_timeout <= 0:
        raise ValueError("timeouts must be positive")
    if tls_ca is not None and not Path(tls_ca).is_file():
        raise UsageError(f"TLS CA file {tls_ca} does not exist")
    safe = redact(url)
    backoff = backoff or Backoff()
    started = time.monotonic()

    def remaining() -> float:
        return float("inf") if duration is None else started + duration - time.monotonic()

    def expired() -> bool:
        return stop() or remaining() <= 0

    def wait(seconds: float) -> None:
        end = time.monotonic() + seconds
        while not expired() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    connected_once = False
    while not expired():
        open_timeout = max(0.1, min(connect_timeout, remaining()))
        attempt = time.monotonic()
        try:
            container = _open_rtsp(url, open_timeout, read_timeout, tls_ca)
        except (av.FFmpegError, OSError) as exc:
            if not connected_once:
                reason = _failure(exc, open_timeout, attempt)
                if tls_ca is not None and getattr(exc, "errno", None) == errno.EIO:
                    reason += (f" (TLS: the camera's certificate may not be issued by {tls_ca} "
                               "for this host name)")
                raise SourceError(f"cannot open {safe}: {reason}") from None
            wait(backoff.next())
            continue
        live_since: float | None = None
        last_read = time.monotonic()
        try:
            if not container.streams.video:
                raise SourceError(f"{safe} has no video stream")
            stream = container.streams.video[0]
            tb = _time_base(stream, safe)
            skipped = 0
            packets = container.demux(stream)
            try:
                for packet in packets:
                    last_read = time.monotonic()
                    if expired():
                        break
                    if packet.size == 0:
                        continue
                    if live_since is None:
                        if not packet.is_keyframe:
                            skipped += 1  # undecodable without the keyframe before it
                            continue
                        yield _stream_info(stream, safe, "wall", skipped)
                        live_since, connected_once = time.monotonic(), True
                    elif backoff.current and time.monotonic() - live_since >= stable_after:
                        backoff.reset()
                    yield CodedFrame(bytes(packet), packet.pts, packet.dts, tb,
                                     packet.is_keyframe, clock(),
                                     _camera_clock_ns(container, packet.pts, tb))
                reason = "the camera ended the stream"
            finally:
                packets.close()
        except av.FFmpegError as exc:
            reason = _failure(exc, read_timeout, last_read)
        finally:
            container.close()
        if expired():
            break
        if live_since is not None:
            yield SourceLost(clock(), reason)
        elif not connected_once:
            raise SourceError(f"{safe}: {reason} before its first keyframe")
        wait(backoff.next())


def open_source(spec: str, *, fast: bool, duration: float | None,
                clock: Clock = time.time_ns, stop: Callable[[], bool] = lambda: False,
                tls_ca: Path | None = None) -> Iterator[SourceItem]:
    if spec.startswith("testsrc"):
        return testsrc(spec, fast=fast, duration=duration, clock=clock, stop=stop)
    if spec.startswith(("rtsp://", "rtsps://")):
        return rtsp(spec, duration=duration, clock=clock, stop=stop, tls_ca=tls_ca)
    if spec.startswith("device:"):
        raise UsageError(f"source {spec!r}: a local device delivers raw frames, which only "
                         "transcode mode records: add --stamp")
    if "://" in spec:
        raise UsageError(f"source {spec!r} has an unsupported scheme; expected rtsp:// or rtsps://")
    return media_file(spec, fast=fast, duration=duration, clock=clock, stop=stop)
