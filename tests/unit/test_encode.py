"""Transcode mode's parts: raw-frame sources, owned frames, stamp -> fingerprint ->
encoder, duplicate detection, and the optional fingerprint of frame records.

Real components throughout: FFmpeg (PyAV) decoders and encoders, stock ffmpeg for the
inputs, OpenCV's VideoCapture for the device reader."""

from __future__ import annotations

import base64
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import Keys, ffmpeg, vidproof
from vidproof.canonical import canonical_bytes
from vidproof.capture.raw import (
    FramePool,
    Owner,
    RawFrame,
    RawInfo,
    capture_frames,
    decode_coded,
    decoder_threads,
    open_raw_source,
    parse_testsrc,
    raw_file,
    raw_testsrc,
)
from vidproof.capture.sources import SourceLost, media_file
from vidproof.chain import Chain
from vidproof.digest import FrameHasher
from vidproof.encode import (
    DuplicateDetector,
    EncodedFrame,
    EncoderSettings,
    TranscodedInfo,
    TranscodeSettings,
    batch_size,
    cells_outside,
    transcode,
)
from vidproof.errors import SourceError, UsageError
from vidproof.keys import Signer
from vidproof.model import (
    GENESIS,
    FrameRecord,
    Location,
    RecordError,
    entry_from_json,
    record_to_json,
)
from vidproof.stamp import Stamper, distance, fingerprint, frame_planes, kernels
from vidproof.stamp.fingerprint import fingerprint_numpy
from vidproof.store import ChainState, EvidenceWriter

LOC = Location("12 rue de Rivoli, Paris", "48.8566", "2.3522")
FAST = EncoderSettings(preset="ultrafast")
T0 = 1_715_954_602_123_456_789


def clock() -> int:
    return T0


def settings(**kw: Any) -> TranscodeSettings:
    base: dict[str, Any] = {"encoder": FAST, "timezone": "Europe/Paris"}
    base.update(kw)
    return TranscodeSettings("cam1", LOC, **base)


def run(spec: str, duration: float, **kw: Any) -> tuple[list[TranscodedInfo], list[EncodedFrame]]:
    items = list(transcode(raw_testsrc(spec, fast=True, duration=duration, clock=clock),
                           settings(**kw), clock))
    infos = [i for i in items if isinstance(i, TranscodedInfo)]
    frames = [i for i in items if isinstance(i, EncodedFrame)]
    assert len(infos) + len(frames) == len(items)
    return infos, frames


def decode(codec: str, frames: list[EncodedFrame]) -> list[Any]:
    dec = av.CodecContext.create(codec, "r")
    out: list[Any] = []
    for f in frames:
        p = av.Packet(f.data)
        p.pts, p.dts, p.time_base = f.pts, f.dts, f.time_base
        out += dec.decode(p)
    return out + dec.decode(None)


def source_luma(width: int, height: int, count: int, rate: int = 25) -> list[np.ndarray]:
    with av.open(f"testsrc2=size={width}x{height}:rate={rate}", format="lavfi") as g:
        out = []
        for f in g.decode(video=0):
            out.append(f.to_ndarray(format="gray").copy())
            if len(out) == count:
                return out
    raise AssertionError("unreachable")


# -- encoder settings ---------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    {"codec": "libvpx"}, {"preset": "warp"}, {"crf": 23, "bitrate": 1_000_000}, {"crf": 52},
    {"bitrate": 10}, {"gop": 0}, {"threads": -1},
])
def test_encoder_settings_refuse_nonsense(kw: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        EncoderSettings(**kw)


def test_gop_defaults_to_one_second_and_is_at_most_two() -> None:
    assert EncoderSettings().gop_for(Fraction(25)) == 25
    assert EncoderSettings().gop_for(Fraction(12)) == 12
    assert EncoderSettings(gop=24).gop_for(Fraction(12)) == 24
    with pytest.raises(UsageError, match="at most 2 s"):
        EncoderSettings(gop=25).gop_for(Fraction(12))


# -- the transcoder ------------------------------------------------------------------------

def test_transcode_makes_a_camera_like_stream_with_the_stamp_and_fingerprints() -> None:
    infos, frames = run("testsrc:704x576@25", 2.0)
    assert len(infos) == 1 and len(frames) == 50
    info = infos[0]
    assert (info.codec, info.width, info.height, info.time_base) == ("h264", 704, 576,
                                                                     Fraction(1, 90000))
    ctx = info.context
    assert ctx["mode"] == "transcode"
    assert ctx["encoder"]["codec"] == "libx264" and ctx["encoder"]["gop"] == 25
    assert ctx["profile"]["meets_minimum"] is True
    canonical_bytes(ctx)  # the context is signed: no floats anywhere
    # Like a camera: a keyframe each GOP, no B-frames (dts = pts), 40 ms apart.
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 25]
    assert all(f.dts == f.pts for f in frames)
    assert [f.pts for f in frames] == [i * 3600 for i in range(50)]
    assert [f.utc_ns for f in frames] == [T0 + i * 40_000_000 for i in range(50)]
    assert not any(f.duplicate for f in frames)
    # Parameter sets repeated in-band before each keyframe: each GOP decodes on its own.
    hasher = FrameHasher("h264", None)
    params = [hasher.digest(f.data).params for f in frames]
    assert params[0] == params[25]
    assert len(decode("h264", frames[25:])) == 25
    # The picture: the stamp is burned in where the context says; the rest is the source.
    pictures = decode("h264", frames)
    assert len(pictures) == 50
    x, y, w, h = ctx["stamp"]["box"]
    source = source_luma(704, 576, 50)
    for k in (0, 31, 49):
        got = pictures[k].to_ndarray(format="gray").astype(int)
        src = source[k].astype(int)
        inside = np.abs(got[y:y + h, x:x + w] - src[y:y + h, x:x + w]).mean()
        outside = np.abs(got[:y] - src[:y]).mean()
        assert inside > 20 and outside < 3, (inside, outside)
        # The recorded fingerprint is the encoded picture's, to within coding noise.
        fp = base64.b64decode(frames[k].fp or "")
        luma = frame_planes(pictures[k])[0]  # limited range, as recorded (not "gray")
        assert distance(fp, fingerprint(luma)) < 1.0


# -- batches ------------------------------------------------------------------------------

@pytest.mark.parametrize(("width", "height", "fps", "expected"), [
    (704, 576, Fraction(25), 6), (704, 576, Fraction(12), 3), (352, 288, Fraction(6), 2),
    (704, 576, Fraction(1), 1), (704, 576, Fraction(120), 8), (704, 576, None, 6),
    (3840, 2160, Fraction(25), 5),  # 64 MiB of 12 MB pictures
    (15360, 8640, Fraction(25), 1),
])
def test_batch_size_is_a_quarter_second_of_pictures_within_bounds(
        width: int, height: int, fps: Fraction | None, expected: int) -> None:
    assert batch_size(RawInfo(width, height, fps, "", "media")) == expected


def _stream_of(items: list[Any]) -> list[Any]:
    return [(bytes(i.data), i.pts, i.dts, i.keyframe, i.utc_ns, i.fp, i.duplicate)
            if isinstance(i, EncodedFrame) else type(i).__name__ for i in items]


def test_batches_give_the_same_stream_as_one_picture_at_a_time() -> None:
    one_thread = settings(encoder=EncoderSettings(preset="ultrafast", threads=1),
                          wide_shot=True)
    streams = []
    for batch in (1, None, 7):
        raw = raw_testsrc("testsrc:352x288@25", fast=True, duration=2.0, clock=clock)
        streams.append(_stream_of(list(transcode(raw, one_thread, clock, batch))))
    assert len(streams[0]) == 51  # the info, then 50 pictures
    assert streams[1] == streams[0] and streams[2] == streams[0]
    with pytest.raises(ValueError, match="at least 1"):
        next(transcode(iter([]), one_thread, clock, 0))


def test_a_batch_ends_at_a_lost_camera_and_a_new_stream() -> None:
    """Nothing waits behind a batch: the pictures before a loss are encoded and handed
    on before the loss, and those of the new connection after its info."""
    raw = raw_testsrc("testsrc:352x288@25", fast=True, duration=0.2, clock=clock)
    info, *pictures = list(raw)
    assert isinstance(info, RawInfo) and len(pictures) == 5
    assert all(isinstance(p, RawFrame) for p in pictures)
    items = [info, *pictures[:3], SourceLost(T0 + 10**9, "gone"), info, *pictures[3:]]
    out = list(transcode(iter(items), settings(wide_shot=True), clock, batch=8))
    assert [i if isinstance(i, str) else "frame" for i in _stream_of(out)] == [
        "TranscodedInfo", "frame", "frame", "frame", "SourceLost", "TranscodedInfo",
        "frame", "frame"]
    frames = [i for i in out if isinstance(i, EncodedFrame)]
    assert [f.utc_ns for f in frames] == [getattr(p, "utc_ns", None) for p in pictures]


@pytest.mark.parametrize("source", ["testsrc", "file"])
def test_a_stopped_recorder_records_every_picture_its_source_delivered(
        source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys) -> None:
    """On stop (SIGTERM), the pictures still in a batch and in the encoder's lookahead
    are recorded, not dropped: the raw sources end on stop(), and the recorder takes
    what comes before that end."""
    import vidproof.capture.raw as raw_module
    from vidproof.capture.worker import Recorder, RecordSettings
    from vidproof.keys import load_signer

    spec = "testsrc:352x288@25"
    if source == "file":
        spec = str(tmp_path / "in.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=352x288:rate=25", "-t", "4",
               "-c:v", "libx264", "-g", "25", spec)
    delivered: list[int] = []
    real = raw_module.open_raw_source

    def counting(*args: Any, **kwargs: Any) -> Any:
        for item in real(*args, **kwargs):
            if isinstance(item, RawFrame):
                delivered.append(item.utc_ns)
            yield item

    monkeypatch.setattr(raw_module, "open_raw_source", counting)
    store = tmp_path / "store"
    ts = settings(encoder=EncoderSettings(preset="veryfast", threads=1), wide_shot=True)
    rec: Recorder | None = None

    def stop() -> bool:
        return rec is not None and rec.result.frames >= 20

    rec = Recorder(RecordSettings(spec, "cam1", LOC, store, fast=True, transcode=ts,
                                  wide_shot=True), load_signer(keys.key), clock=clock,
                   stop=stop)
    result = rec.run()
    # The encoder held pictures back (x264's lookahead) when stop() came: more than 20
    # were delivered, and every one of them is recorded, in order.
    assert 20 < len(delivered) < 100
    log = [json.loads(line) for line in (store / "cam1" / "evidence.jsonl").read_bytes()
           .splitlines()]
    frames = [e for e in log if e["type"] == "frame"]
    assert [f["utc_ns"] for f in frames] == delivered and result.frames == len(delivered)
    stops = [e for e in log if e.get("event") == "recorder_stop"]
    assert stops[0]["detail"]["reason"] == "stopped by the operator"
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0 and r.json["frames"] == len(delivered), r.out


@pytest.mark.parametrize("copying", [False, True])
def test_recorded_fingerprints_are_those_of_the_encoded_pictures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copying: bool) -> None:
    """Losslessly encoded, so the decoded pictures are what the encoder was given: each
    record's fingerprint is the reference fingerprint of that stamped picture, byte for
    byte, whether the source's pictures were handed over in place (a camera-like
    stream) or copied into pool frames, their sums added up by the copy."""
    path = tmp_path / "in.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=704x576:rate=25", "-t", "1.2", "-c:v",
           "libx264", "-bf", "0", "-refs", "4" if copying else "1", path)
    if copying:
        monkeypatch.setattr(Owner, "MAX_DELAY", 2)
    items = list(transcode(raw_file(str(path), fast=True, duration=None, clock=clock),
                           settings(encoder=EncoderSettings(preset="ultrafast", crf=0)), clock))
    frames = [i for i in items if isinstance(i, EncodedFrame)]
    pictures = decode("h264", frames)
    assert len(pictures) == len(frames) == 30
    for f, picture in zip(frames, pictures, strict=True):
        luma = frame_planes(picture)[0]
        assert base64.b64decode(f.fp or "") == fingerprint_numpy(luma)


def test_transcode_with_libx265_and_a_bitrate() -> None:
    infos, frames = run("testsrc:704x576@12", 2.0,
                        encoder=EncoderSettings("libx265", "ultrafast", bitrate=300_000, gop=6))
    assert infos[0].codec == "hevc"
    assert infos[0].context["encoder"] | {"software": ""} == {
        "software": "", "codec": "libx265", "preset": "ultrafast", "crf": None,
        "bitrate": 300_000, "gop": 6, "bframes": 0, "scenecut": False, "repeat_headers": True,
        "pix_fmt": "yuv420p", "threads": 0, "time_base": [1, 90000]}
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 6, 12, 18]
    hasher = FrameHasher("hevc", None)
    for f in frames:
        hasher.digest(f.data)  # VPS/SPS/PPS in-band, VCL units found
    assert len(decode("hevc", frames)) == 24


def test_bitrate_setting_governs_the_size() -> None:
    sizes = []
    for rate in (150_000, 1_500_000):
        _, frames = run("testsrc:704x576@25", 2.0, encoder=EncoderSettings(
            preset="ultrafast", bitrate=rate))
        sizes.append(sum(len(f.data) for f in frames))
    assert sizes[1] > 3 * sizes[0], sizes


def test_profile_below_minimum_is_refused_before_any_frame() -> None:
    with pytest.raises(UsageError, match="decree of 3 August 2007"):
        run("testsrc:640x360@25", 1.0)
    infos, frames = run("testsrc:640x360@25", 0.4, allow_below_minimum=True)
    assert infos[0].context["profile"]["override"] is True and len(frames) == 10


# -- owned frames: never stamp what the decoder still references -----------------------------

@pytest.fixture(scope="module")
def bframes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H.264 with B-frames: decoded pictures are references of later ones."""
    path = tmp_path_factory.mktemp("media") / "bframes.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-c:v", "libx264",
           "-bf", "3", "-g", "50", path)
    return path


def _scribble(frame: Any) -> None:
    y, _, _ = frame_planes(frame)
    y[:64, :96] = 255


def test_raw_file_frames_are_owned(bframes_file: Path) -> None:
    """Writing into every raw frame must not change the pictures decoded after it."""
    with av.open(str(bframes_file)) as c:
        plain = [f.to_ndarray(format="yuv420p").copy() for f in c.decode(video=0)]
    got = []
    for item in raw_file(str(bframes_file), fast=True, duration=None, clock=clock):
        if isinstance(item, RawFrame):
            _scribble(item.frame)
            got.append(item.frame.to_ndarray(format="yuv420p").copy())
    assert len(got) == len(plain) == 50
    for a, b in zip(plain, got, strict=True):
        assert np.array_equal(a[64:], b[64:])


def _pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p").copy() for f in c.decode(video=0)]


def _owned_through(owner: Owner, path: Path,
                   scribble: bool = True) -> list[tuple[Any, Any, Any, int]]:
    """Decode ``path`` (one thread, as the raw sources do) through ``owner``; scribble
    on each picture as it is handed over; return what came out."""
    out: list[tuple[Any, Any, Any, int]] = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        decoder_threads(stream.codec_context)
        for i, frame in enumerate(c.decode(stream)):
            out += owner.push(frame, i)
            if scribble:
                for got in out[-2:]:  # (pushed one at a time: at most one new, or two)
                    _scribble(got[0])
        stream.codec_context.flush_buffers()  # as the sources do before draining
        out += owner.drain()
    if scribble:
        for got in out:
            _scribble(got[0])
    return out


@pytest.mark.parametrize(("args", "camera_like"), [
    (("-bf", "0", "-refs", "1"), True),   # a camera's stream: nothing to copy
    (("-bf", "3", "-refs", "4"), False),  # held longer: a few copies while it learns
])
def test_owner_hands_over_pictures_the_decoder_let_go(tmp_path: Path, args: tuple[str, ...],
                                                      camera_like: bool) -> None:
    """Pictures come out in order, each the decoded picture, and writing into one
    never changes a picture decoded after it; make_writable copies only while the
    owner learns how long the decoder keeps its references."""
    path = tmp_path / "in.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3", "-c:v", "libx264",
           "-g", "50", *args, path)
    plain = _pictures(path)
    owner = Owner()
    out = _owned_through(owner, path)
    assert [i for *_, i in out] == list(range(len(plain))) and len(plain) == 75
    for (frame, *_), ref in zip(out, plain, strict=True):
        got = frame.to_ndarray(format="yuv420p")
        assert np.array_equal(got[64:], ref[64:]) and (got[:64, :96] == 255).all()
    if camera_like:
        assert owner.copies == 0 and owner.delay == Owner.START_DELAY
    else:
        assert owner.copies <= 2 * Owner.MAX_DELAY and owner.delay > Owner.START_DELAY


def test_owner_past_its_longest_delay_copies_into_a_pool(tmp_path: Path) -> None:
    """A stream whose decoder keeps pictures longer than the owner waits: pictures are
    then copied into pool frames, in order, with the fingerprint sums of the C kernels
    (when built) that give the reference fingerprint of the stamped picture."""
    path = tmp_path / "refs.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=352x288:rate=25", "-t", "2", "-c:v", "libx264",
           "-bf", "0", "-refs", "4", path)
    plain = _pictures(path)
    owner = Owner()
    owner.MAX_DELAY = 3  # type: ignore[misc]  # this stream needs 4
    out = _owned_through(owner, path, scribble=False)
    assert owner._copying and [i for *_, i in out] == list(range(50))
    def pooled(planes: Any) -> bool:  # views of a pool frame's own array
        return bool(planes[0].base.flags.owndata)

    assert sum(pooled(o[1]) for o in out) > 30
    stamper = Stamper(352, 288, camera_id="cam1")
    for (frame, planes, sums, i), ref in zip(out, plain, strict=True):
        assert np.array_equal(frame.to_ndarray(format="yuv420p"), ref)
        if not pooled(planes):
            assert sums is None
            continue
        assert (sums is not None) == (kernels.native_module() is not None)
        stamper.apply(*planes, T0 + i * 40_000_000)
        x, y, w, h = stamper.box() or (0, 0, 0, 0)
        assert fingerprint(planes[0], sums=sums, changed=(y, h)) == \
            fingerprint_numpy(planes[0])


def test_decoders_get_the_encoder_s_threads() -> None:
    """One thread each (the many-cameras case, and the benchmark's), or FFmpeg's."""
    one = av.CodecContext.create("h264", "r")
    decoder_threads(one, 1)
    assert one.thread_count == 1
    auto = av.CodecContext.create("h264", "r")
    decoder_threads(auto, 0)
    assert auto.thread_count == 0 and auto.thread_type.name == "AUTO"


def test_frame_pool_recycles_only_frames_nothing_else_holds() -> None:
    pool = FramePool(64, 48)
    frame, planes = pool.take()
    assert planes[0].shape == (48, 64) and planes[1].shape == (24, 32)
    ptr = frame.planes[0].buffer_ptr
    del frame, planes
    frame, planes = pool.take()
    assert frame.planes[0].buffer_ptr == ptr  # free again: the same frame
    # Held in any way (the frame, one of its plane views, a view of a view), it is
    # not handed out again.
    for hold in ("frame", "view", "subview"):
        held: Any = {"frame": frame, "view": planes[1], "subview": planes[0][3:5, 2:9]}[hold]
        del frame, planes
        other, other_planes = pool.take()
        assert other.planes[0].buffer_ptr != ptr, hold
        del other, other_planes, held
        frame, planes = pool.take()
        assert frame.planes[0].buffer_ptr == ptr, hold
    # Frames taken and written are frames of their own.
    a, pa = pool.take()
    b, pb = pool.take()
    pa[0][:] = 100
    pb[0][:] = 200
    assert (a.to_ndarray(format="yuv420p")[:48] == 100).all()
    assert (b.to_ndarray(format="yuv420p")[:48] == 200).all()
    with pytest.raises(ValueError, match="even"):
        FramePool(63, 48)


def test_decoding_a_coded_source_keeps_capture_times(bframes_file: Path) -> None:
    """The RTSP path: coded frames (here from the file source) decoded into owned frames,
    in presentation order, each with its packet's capture time."""
    coded = media_file(str(bframes_file), fast=True, duration=None, clock=clock)
    items = list(decode_coded(coded, "rtsp"))
    info, frames = items[0], items[1:]
    assert isinstance(info, RawInfo) and info.input["kind"] == "rtsp"
    assert all(isinstance(f, RawFrame) for f in frames) and len(frames) == 50
    times = [f.utc_ns for f in frames if isinstance(f, RawFrame)]
    assert times == [T0 + i * 40_000_000 for i in range(50)]
    with av.open(str(bframes_file)) as c:
        plain = [f.to_ndarray(format="gray").copy() for f in c.decode(video=0)]
    for f, p in zip(frames, plain, strict=True):
        assert isinstance(f, RawFrame)
        _scribble(f.frame)
        assert np.array_equal(f.frame.to_ndarray(format="gray")[64:], p[64:])


def test_opencv_device_reader(tmp_path: Path) -> None:
    """The device path's reader with a real cv2.VideoCapture (on a file: no camera here);
    an odd-sized picture is cropped to even sizes, converted once to YUV 4:2:0."""
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=331x249:rate=10", "-t", "1", "-c:v", "ffv1",
           "-pix_fmt", "yuv444p", path)
    cap = cv2.VideoCapture(str(path))
    try:
        items = list(capture_frames(cap, "test", duration=None, clock=clock,
                                    stop=lambda: False))
    finally:
        cap.release()
    info = items[0]
    assert isinstance(info, RawInfo) and (info.width, info.height) == (330, 248)
    assert info.input["kind"] == "device" and info.clock == "wall"
    frames = [i for i in items if isinstance(i, RawFrame)]
    assert len(frames) == 10
    assert isinstance(items[-1], SourceLost)  # the end of its frames: the camera is lost
    ref = source_luma(331, 249, 10, rate=10)
    for f, r in zip(frames, ref, strict=True):
        assert f.frame.format.name == "yuv420p"
        y = f.frame.to_ndarray(format="gray").astype(int)
        assert np.abs(y - r[:248, :330]).mean() < 3
    # A capture that gives nothing is an error, not an empty recording.
    empty = cv2.VideoCapture(str(tmp_path / "missing.mkv"))
    with pytest.raises(SourceError):
        list(capture_frames(empty, "nothing", duration=None, clock=clock, stop=lambda: False))


@pytest.mark.parametrize(("spec", "error"), [
    ("testsrc:13x13@25", UsageError), ("testsrc:big", UsageError),
    ("device:video0", UsageError), ("device:/dev/video99", SourceError),
    ("device:/dev/video0:big", UsageError), ("device:/dev/video99:1280x720@25", SourceError),
    ("/no/such/file.mp4", SourceError), ("http://127.0.0.1/cam", UsageError),
])
def test_raw_source_bad_input(spec: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        next(open_raw_source(spec, fast=True, duration=1))


def test_parse_testsrc_default() -> None:
    assert parse_testsrc("testsrc") == (1280, 720, 25)


# -- duplicates -----------------------------------------------------------------------------

def test_a_source_that_repeats_frames_is_flagged(tmp_path: Path) -> None:
    """6 pictures a second, each sent twice to make 12 fps (lossless, so the repeats are
    identical): every second frame is a duplicate, although the stamp differs."""
    path = tmp_path / "doubled.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=704x576:rate=6,fps=12", "-t", "2", "-c:v", "ffv1",
           path)
    items = list(transcode(raw_file(str(path), fast=True, duration=None, clock=clock),
                           settings(), clock))
    frames = [i for i in items if isinstance(i, EncodedFrame)]
    assert len(frames) == 24
    assert [i for i, f in enumerate(frames) if f.duplicate] == list(range(1, 24, 2))
    assert len({f.fp for f in frames}) == 24  # the stamp's time differs in every frame


def test_duplicate_detector_compares_pixels_not_only_fingerprints() -> None:
    rng = np.random.default_rng(3)
    y1 = rng.integers(16, 235, (288, 352), dtype=np.uint8)
    y2 = y1.copy()
    y2[5, 7] ^= 1  # one pixel, one level: same fingerprint, not the same picture
    box = (0, 200, 100, 88)
    fp1, fp2 = fingerprint(y1), fingerprint(y2)
    assert fp1 == fp2
    d = DuplicateDetector()
    assert not d.check(None, y1, fp1, box)
    assert not d.check(None, y2, fp2, box)
    y3 = y2.copy()
    y3[200:, :100] = 0  # inside the stamp's box only
    assert d.check(None, y3, fingerprint(y3), box)
    assert d.count == 1


@pytest.mark.parametrize("box", [(0, 0, 64, 48), (100, 400, 300, 120), (640, 500, 64, 76),
                                 (350, 10, 2, 2)])
def test_cells_outside_the_box_do_not_see_it(box: tuple[int, int, int, int]) -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 255, (576, 704), dtype=np.uint8)
    mask = cells_outside(704, 576, box)
    assert 0 < (~mask).sum() < 256
    x0, y0, w, h = box
    z = y.copy()
    z[y0:y0 + h, x0:x0 + w] = 255 - z[y0:y0 + h, x0:x0 + w]
    a = np.frombuffer(fingerprint(y), np.uint8)
    b = np.frombuffer(fingerprint(z), np.uint8)
    assert np.array_equal(a[mask], b[mask])


# -- the frame record's optional fingerprint ----------------------------------------------------

H = "ab" * 32
FP = base64.b64encode(bytes(range(256))).decode()


def test_frame_record_with_fingerprint_round_trips_and_chain_writes_the_same(
        tmp_path: Path) -> None:
    signer = Signer(Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
    log = tmp_path / "evidence.jsonl"
    chain = Chain("cam1", signer, EvidenceWriter(log), ChainState(0, GENESIS, GENESIS, "none"),
                  lambda: None)
    ctx = chain.context({"camera_id": "cam1", "location": LOC.to_json(),
                         "key": {"alg": "Ed25519", "id": signer.key_id}}, T0)
    chain.frame(utc_ns=T0, pts=0, dts=0, tb=(1, 90000), key=True, digest=H, params=H,
                cam_utc_ns=None, fp=FP)
    chain.frame(utc_ns=T0 + 1, pts=1, dts=1, tb=(1, 90000), key=False, digest=H, params=H,
                cam_utc_ns=None)
    chain.log.sync()
    lines = log.read_bytes().splitlines()
    with_fp, without = json.loads(lines[1]), json.loads(lines[2])
    rec = entry_from_json(with_fp)
    assert isinstance(rec, FrameRecord) and rec.fp == FP and rec.ctx == ctx
    assert canonical_bytes(record_to_json(rec)) == lines[1]
    rec2 = entry_from_json(without)
    assert isinstance(rec2, FrameRecord) and rec2.fp is None and "fp" not in without
    assert canonical_bytes(record_to_json(rec2)) == lines[2]


@pytest.mark.parametrize("bad", [
    "00" * 256,                          # hex, not base64
    FP[:-4],                             # 253 bytes
    FP[:-3] + "B==",                     # a non-canonical spelling of the last byte
    FP.replace("A", "-", 1),             # URL-safe alphabet
    FP[:100] + "\n" + FP[101:],          # a line break
    7, None, ["x"],
])
def test_malformed_fingerprint_is_refused(bad: Any) -> None:
    entry = {"v": "vidproof/1", "type": "frame", "camera": "cam1", "seq": 3, "prev": H,
             "utc_ns": T0, "ctx": H, "pts": 0, "dts": 0, "tb": [1, 90000], "key": True,
             "digest": H, "params": H, "cam_utc_ns": None, "fp": bad}
    with pytest.raises(RecordError, match="'fp'"):
        entry_from_json(entry)
