"""``vidproof record --stamp``: transcode mode end to end, with the real CLI.

The 1080p, 10-s recording of issue 4 ("done" 1) verifies, and tesseract reads back from
decoded frames the date and time of their records; the decree's minimums refuse a
profile below them (and the override is recorded); a source that repeats frames is
flagged; the encoder's settings reach the evidence.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import Keys, ffmpeg, record, vidproof
from vidproof.stamp import distance, fingerprint, frame_planes

pytestmark = pytest.mark.slow

CAMERA = "cam1"
ZONE = "Europe/Paris"
TESSERACT = shutil.which("tesseract")


def one_line_error(r: Any) -> str:
    assert r.code == 2, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    return str(lines[0])


def entries(store: Path, camera: str = CAMERA) -> list[dict[str, Any]]:
    log = store / camera / "evidence.jsonl"
    return [json.loads(line) for line in log.read_bytes().splitlines()]


def stamp_record(store: Path, keys: Keys, source: str, duration: float,
                 *extra: str) -> Any:
    return record(store, keys, source=source, duration=duration, segment_seconds=4,
                  extra=("--stamp", "--timezone", ZONE, *extra))


def decoded_frames(store: Path, indices: set[int]) -> dict[int, Any]:
    """The decoded pictures at these positions of the whole recording (decoding order:
    no B-frames, so the n-th picture is the n-th frame record)."""
    out: dict[int, Any] = {}
    n = 0
    for seg in sorted((store / CAMERA / "segments").glob("*.ts")):
        with av.open(str(seg)) as c:
            for frame in c.decode(video=0):
                if n in indices:
                    out[n] = frame
                n += 1
    assert n > max(indices)
    return out


@pytest.fixture(scope="module")
def hd_store(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """Issue 4, done 1: 10 s of the test camera at 1920x1080, --stamp --fast.
    About 5 s of CPU on the 2-core CI machine (10-15 s wall when it is busy)."""
    store = tmp_path_factory.mktemp("stamp") / "store"
    r = record(store, keys, source="testsrc:1920x1080@25", duration=10, segment_seconds=4,
               extra=("--stamp", "--timezone", ZONE))
    assert r.code == 0, r.err
    assert "recorded 250 frames" in r.out
    return store


def test_stamped_1080p_recording_verifies(hd_store: Path, keys: Keys) -> None:
    r = vidproof("verify", hd_store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out + r.err
    report = r.json
    assert report["verdict"] == "authentic" and report["frames"] == 250
    assert not [f for f in report["findings"] if f["severity"] != "info"]
    kinds = {f["kind"] for f in report["findings"]}
    assert "transcoded" in kinds and "source_duplicates" not in kinds
    assert len(list((hd_store / CAMERA / "segments").glob("*.ts"))) == 3


def test_context_records_the_encoder_and_every_frame_its_fingerprint(hd_store: Path) -> None:
    log = entries(hd_store)
    ctx = log[0]["context"]
    assert ctx["mode"] == "transcode" and ctx["source"] == "testsrc:1920x1080@25"
    assert ctx["encoder"]["codec"] == "libx264" and ctx["encoder"]["preset"] == "veryfast"
    assert ctx["encoder"]["crf"] == 23 and ctx["encoder"]["gop"] == 25
    assert ctx["encoder"]["bframes"] == 0 and "vidproof" in ctx["encoder"]["software"]
    assert ctx["stream"]["codec"] == "h264"
    assert (ctx["stamp"]["style"], ctx["stamp"]["corner"]) == ("box", "bottom-left")
    assert ctx["stamp"]["time_zone"] == ZONE
    assert ctx["profile"]["meets_minimum"] is True and ctx["profile"]["override"] is False
    assert ctx["fingerprint"]["version"] == 1
    frames = [e for e in log if e["type"] == "frame"]
    assert len(frames) == 250 and all(len(base64.b64decode(f["fp"])) == 256 for f in frames)
    # A keyframe every second, as configured; no B-frames (dts = pts).
    assert [i for i, f in enumerate(frames) if f["key"]] == list(range(0, 250, 25))
    assert all(f["dts"] == f["pts"] for f in frames)
    # The recorded fingerprint is the certified (decoded) picture's, to within coding noise.
    pictures = decoded_frames(hd_store, {0, 137})
    for i, pic in pictures.items():
        fp = base64.b64decode(frames[i]["fp"])
        assert distance(fp, fingerprint(frame_planes(pic)[0])) < 1.0


def _ocr(gray: np.ndarray, path: Path) -> str:
    Image.fromarray(gray).save(path)
    out = subprocess.run([str(TESSERACT), str(path), "-", "--psm", "6"], capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout


@pytest.mark.skipif(TESSERACT is None, reason="tesseract (Debian tesseract-ocr) is not installed")
def test_ocr_reads_back_each_frame_s_recorded_time(hd_store: Path, tmp_path: Path) -> None:
    log = entries(hd_store)
    x, y, w, h = log[0]["context"]["stamp"]["box"]
    frames = [e for e in log if e["type"] == "frame"]
    picks = {37, 163}  # in the first and the second segment; not on a second boundary
    for i, pic in decoded_frames(hd_store, picks).items():
        gray = pic.to_ndarray(format="gray")
        text = _ocr(255 - gray[y:y + h, x:x + w], tmp_path / f"stamp-{i}.png")
        utc_ns = frames[i]["utc_ns"]
        when = dt.datetime.fromtimestamp(utc_ns // 10**9, dt.UTC)
        local = when.astimezone(ZoneInfo(ZONE))
        m = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) UTC", text)
        assert m, text
        assert m.group(1) == when.strftime("%Y-%m-%d %H:%M:%S"), (i, text)
        offset = local.strftime("%z")
        m = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d{3} ([+-]\d\d:\d\d)", text)
        assert m, text
        assert m.group(1) == local.strftime("%Y-%m-%d %H:%M:%S"), (i, text)
        assert m.group(2) == f"{offset[:3]}:{offset[3:]}"
        assert f"{CAMERA} | 12 rue de Rivoli, Paris" in text and "48.8566, 2.3522" in text


# -- the decree's minimums ---------------------------------------------------------------------

def test_profile_below_the_minimum_is_refused_with_the_rule_and_the_override(
        tmp_path: Path, keys: Keys) -> None:
    store = tmp_path / "store"
    msg = one_line_error(stamp_record(store, keys, "testsrc:640x360@25", 1))
    assert "decree of 3 August 2007" in msg and "--allow-below-minimum" in msg
    assert "close-shot" in msg and "704x576" in msg and "--wide-shot" in msg
    assert not list(store.glob("*/evidence.jsonl"))
    msg = one_line_error(stamp_record(store, keys, "testsrc:1280x720@10", 1))
    assert "10 fps is below 12 fps" in msg
    # A wide-shot camera has lower minimums: 352x288 at 6 fps.
    msg = one_line_error(stamp_record(store, keys, "testsrc:320x240@6", 1, "--wide-shot"))
    assert "wide-shot" in msg and "352x288" in msg and "--allow-below-minimum" in msg
    assert not list(store.glob("*/evidence.jsonl"))


def test_override_records_and_says_so(tmp_path: Path, keys: Keys) -> None:
    store = tmp_path / "store"
    r = stamp_record(store, keys, "testsrc:320x240@25", 1, "--allow-below-minimum")
    assert r.code == 0, r.err
    prof = entries(store)[0]["context"]["profile"]
    assert (prof["meets_minimum"], prof["override"], prof["camera"]) == (False, True,
                                                                         "close-shot")
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out
    below = [f for f in r.json["findings"] if f["kind"] == "profile_below_minimum"]
    assert len(below) == 1 and below[0]["severity"] == "info"
    assert "overrode" in below[0]["message"]


def test_wide_shot_at_its_minimum_records(tmp_path: Path, keys: Keys) -> None:
    store = tmp_path / "store"
    r = stamp_record(store, keys, "testsrc:352x288@6", 1, "--wide-shot")
    assert r.code == 0, r.err
    prof = entries(store)[0]["context"]["profile"]
    assert (prof["meets_minimum"], prof["camera"]) == (True, "wide-shot")


def test_passthrough_profile_is_recorded_not_enforced(pristine_store: Path, keys: Keys) -> None:
    """The shared 640x360 passthrough recording: below the close-shot minimum, recorded as
    the camera sends it, and the report says so without changing the verdict."""
    prof = entries(pristine_store)[0]["context"]["profile"]
    assert (prof["meets_minimum"], prof["enforced"], prof["override"]) == (False, False, False)
    r = vidproof("verify", pristine_store, "--trust", keys.pub, "--json")
    assert r.code == 0
    assert "profile_below_minimum" in {f["kind"] for f in r.json["findings"]}


# -- duplicates, encoder options, bad input ----------------------------------------------------

def test_a_source_that_repeats_frames_is_flagged(tmp_path: Path, keys: Keys) -> None:
    """A 12-fps file whose pictures come in pairs (6 distinct a second)."""
    src = tmp_path / "doubled.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=704x576:rate=6,fps=12", "-t", "3", "-c:v", "ffv1",
           src)
    store = tmp_path / "store"
    r = stamp_record(store, keys, str(src), 10)
    assert r.code == 0, r.err
    events = [e for e in entries(store) if e["type"] == "event"
              and e["event"] == "source_duplicates"]
    assert sum(e["detail"]["frames"] for e in events) == 18
    assert events[-1]["detail"]["total"] == 18
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out
    dup = [f for f in r.json["findings"] if f["kind"] == "source_duplicates"]
    assert len(dup) == 1 and dup[0]["severity"] == "info" and "18 pictures" in dup[0]["message"]


def test_encoder_options_reach_the_stream_and_the_evidence(tmp_path: Path, keys: Keys) -> None:
    store = tmp_path / "store"
    r = stamp_record(store, keys, "testsrc:704x576@12", 2, "--codec", "libx265", "--preset",
                     "ultrafast", "--bitrate", "400k", "--gop", "6", "--stamp-corner",
                     "top-right", "--stamp-style", "outline")
    assert r.code == 0, r.err
    log = entries(store)
    ctx = log[0]["context"]
    enc = ctx["encoder"]
    assert (enc["codec"], enc["preset"], enc["bitrate"], enc["crf"], enc["gop"]) == (
        "libx265", "ultrafast", 400_000, None, 6)
    assert ctx["stream"]["codec"] == "hevc"
    x, y, w, _ = ctx["stamp"]["box"]
    assert (ctx["stamp"]["corner"], ctx["stamp"]["style"]) == ("top-right", "outline")
    assert y < 576 // 4 and x + w > 704 * 3 // 4
    frames = [e for e in log if e["type"] == "frame"]
    assert [i for i, f in enumerate(frames) if f["key"]] == [0, 6, 12, 18]
    with av.open(str(store / CAMERA / "segments" / "000001.ts")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0 and r.json["verdict"] == "authentic", r.out


@pytest.mark.parametrize("extra", [
    ("--preset", "veryfast"),                      # an encoder option without --stamp
    ("--stamp", "--gop", "50"),                    # a 2-s GOP is the most: 50 frames at 12 fps
    ("--stamp", "--crf", "23", "--bitrate", "1M"),
    ("--stamp", "--crf", "60"),
    ("--stamp", "--bitrate", "lots"),
    ("--stamp", "--preset", "ludicrous"),
    ("--stamp", "--timezone", "Mars/Olympus_Mons"),
    ("--stamp", "--stamp-corner", "middle"),
])
def test_bad_transcode_options(extra: tuple[str, ...], tmp_path: Path, keys: Keys) -> None:
    store = tmp_path / "store"
    one_line_error(record(store, keys, source="testsrc:704x576@12", duration=1, extra=extra))
    assert not list(store.glob("*/evidence.jsonl"))


@pytest.mark.parametrize("stamp", [True, False])
def test_missing_device(stamp: bool, tmp_path: Path, keys: Keys) -> None:
    store = tmp_path / "store"
    r = record(store, keys, source="device:/dev/video99", duration=1,
               extra=("--stamp",) if stamp else ())
    msg = one_line_error(r)
    assert ("does not exist" in msg) if stamp else ("--stamp" in msg)


def test_rtsp_camera_in_transcode_mode(tmp_path: Path, keys: Keys) -> None:
    """A real RTSP camera (GStreamer's server, 640x360 at 25 fps: a wide shot's profile),
    decoded, stamped and encoded; capture times from the recorder's clock."""
    from tests.e2e.test_rtsp import RtspCamera

    cam = RtspCamera(tmp_path)
    url = cam.start()
    store = tmp_path / "store"
    try:
        r = stamp_record(store, keys, url, 3, "--wide-shot")
    finally:
        cam.stop()
    assert r.code == 0, r.err
    log = entries(store)
    ctx = log[0]["context"]
    assert ctx["mode"] == "transcode" and ctx["clock"]["kind"] == "wall"
    assert (ctx["input"]["kind"], ctx["input"]["codec"]) == ("rtsp", "h264")
    assert (ctx["stream"]["width"], ctx["stream"]["height"]) == (640, 360)
    frames = [e for e in log if e["type"] == "frame"]
    assert len(frames) >= 40 and frames[0]["key"]
    times = [f["utc_ns"] for f in frames]
    assert times == sorted(times)
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0 and r.json["frames"] == len(frames), r.out
