"""Recording media files, bit-exact: H.264 and H.265 in MP4, MKV and MPEG-TS.

The files are made by stock ffmpeg (B-frames included) and, as a real camera's
output, the ONVIF Media Signing test recordings in ../shared/vectors.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from tests.conftest import Keys, ffmpeg, record, vidproof

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "onvif-media-signing"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("media")
    for codec, enc in (("h264", "libx264"), ("hevc", "libx265")):
        base = d / f"{codec}.mkv"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4",
               "-c:v", enc, "-g", "25", "-bf", "2", "-pix_fmt", "yuv420p",
               *(["-x265-params", "log-level=error"] if enc == "libx265" else []), base)
        for ext in ("mp4", "ts"):
            ffmpeg("-i", base, "-c", "copy", d / f"{codec}.{ext}")
    return d


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts"])
def test_file_is_recorded_and_verifies(media_dir: Path, keys: Keys, tmp_path: Path,
                                       codec: str, ext: str) -> None:
    src = media_dir / f"{codec}.{ext}"
    r = record(tmp_path / "store", keys, source=str(src), segment_seconds=1.5, duration=100)
    assert r.code == 0, r.err
    v = vidproof("verify", tmp_path / "store", "--trust", keys.pub, "--json")
    assert v.code == 0, v.out
    report = v.json
    assert report["verdict"] == "authentic"
    assert report["frames"] == len(packets(src)) == 100
    assert report["cameras"][0]["streams"][0]["codec"] == codec
    assert not [f for f in report["findings"] if f["severity"] != "info"]


def test_stock_ffmpeg_sees_the_source_frames_unchanged(media_dir: Path, keys: Keys,
                                                       tmp_path: Path) -> None:
    """The segments hold the camera's coded frames: stock ffmpeg extracts the same
    Annex B elementary stream from the source and from the recording."""
    src = media_dir / "h264.mkv"
    assert record(tmp_path / "store", keys, source=str(src), segment_seconds=100).code == 0
    segments = sorted((tmp_path / "store" / "cam1" / "segments").glob("*.ts"))
    assert len(segments) == 1

    def elementary(path: Path) -> bytes:
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v",
                              "-c", "copy", "-bsf:v", "h264_mp4toannexb,filter_units=remove_types=9|6",
                              "-f", "h264", "-"], capture_output=True, check=True)
        return out.stdout

    assert elementary(src) == elementary(segments[0])


@pytest.mark.skipif(not VECTORS.is_dir(), reason="shared ONVIF vectors not present")
@pytest.mark.parametrize("name", ["test_h264.mp4", "test_h265.mp4", "test_signed_h264.mp4"])
def test_onvif_camera_recordings(keys: Keys, tmp_path: Path, name: str) -> None:
    r = record(tmp_path / "store", keys, source=str(VECTORS / name), duration=1000)
    assert r.code == 0, r.err
    v = vidproof("verify", tmp_path / "store", "--trust", keys.pub, "--json")
    assert v.code == 0, v.out
    assert v.json["frames"] == len(packets(VECTORS / name))
