"""A recording remuxed by stock ffmpeg (``-c copy``) still matches its evidence; a
re-encoded copy does not.

The store's MPEG-TS segments are joined with ffmpeg's concat protocol and remuxed into
other containers, which change the framing of every coded frame (Annex B start codes
become length prefixes, parameter sets move into the extradata, access-unit delimiters
come and go). ``vidproof verify STORE --trust PUB --media COPY`` checks the copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from conftest import Keys, ffmpeg, vidproof

CAM = "cam1"


@pytest.fixture(scope="module")
def joined(pristine_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The camera's whole recording in one MPEG-TS file, joined by stock ffmpeg."""
    segments = sorted((pristine_store / CAM / "segments").glob("*.ts"))
    assert len(segments) >= 3
    out = tmp_path_factory.mktemp("remux") / "joined.ts"
    ffmpeg("-i", "concat:" + "|".join(map(str, segments)), "-map", "0:v", "-c", "copy", out)
    return out


def remux(src: Path, dst: Path) -> Path:
    ffmpeg("-i", src, "-map", "0:v", "-c", "copy", dst)
    return dst


def verify_media(store: Path, trust: Path, media: Path) -> tuple[int, dict[str, Any]]:
    r = vidproof("verify", store, "--trust", trust, "--media", media, "--json")
    assert r.code in (0, 1), f"exit {r.code}: {r.err}"
    assert "Traceback" not in r.err
    return r.code, r.json


def packets(path: Path) -> tuple[int, bytes]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        extradata = bytes(s.codec_context.extradata or b"")
        return sum(1 for p in c.demux(s) if p.size), extradata


def assert_authentic(code: int, report: dict[str, Any]) -> None:
    bad = [f for f in report["findings"] if f["severity"] in ("error", "warning")]
    assert code == 0 and report["verdict"] == "authentic", bad[:10]
    assert not bad
    cam = report["cameras"][0]
    assert report["frames"] == cam["observed_frames"] == 200


@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts", "mov"])
def test_remuxed_copy_matches_evidence(pristine_store: Path, keys: Keys, joined: Path,
                                       tmp_path: Path, ext: str) -> None:
    copy = remux(joined, tmp_path / f"copy.{ext}")
    count, extradata = packets(copy)
    assert count == 200
    if ext != "ts":  # the framing really changed: length-prefixed NAL units, avcC extradata
        assert extradata[:1] == b"\x01"
    assert_authentic(*verify_media(pristine_store, keys.pub, copy))


def test_remux_chain_still_matches(pristine_store: Path, keys: Keys, joined: Path,
                                   tmp_path: Path) -> None:
    """MPEG-TS -> MP4 -> MKV -> MPEG-TS, each step a stock ffmpeg ``-c copy``."""
    mp4 = remux(joined, tmp_path / "a.mp4")
    mkv = remux(mp4, tmp_path / "b.mkv")
    ts = remux(mkv, tmp_path / "c.ts")
    for copy in (mp4, mkv, ts):
        assert_authentic(*verify_media(pristine_store, keys.pub, copy))


def test_reencoded_copy_does_not_match(pristine_store: Path, keys: Keys, joined: Path,
                                       tmp_path: Path) -> None:
    copy = tmp_path / "reencoded.mp4"
    ffmpeg("-i", joined, "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0",
           copy)
    assert packets(copy)[0] == 200
    code, report = verify_media(pristine_store, keys.pub, copy)
    assert code == 1 and report["verdict"] == "not_authentic"
    modified = [f for f in report["findings"]
                if f["kind"] == "frame_modified" and f["severity"] == "error"]
    cam = report["cameras"][0]
    for seq in range(cam["first_frame"], cam["last_frame"] + 1):
        assert any(f["first_frame"] <= seq <= f["last_frame"] for f in modified), (
            f"frame seq {seq} not reported as modified: {report['findings'][:5]}")


def test_remuxed_copy_with_a_frame_cut_does_not_match(pristine_store: Path, keys: Keys,
                                                      joined: Path, tmp_path: Path) -> None:
    """Control: the remuxed copy verifies because it is intact, not because --media
    checks nothing. Stock ffmpeg drops frame 120 while remuxing into MP4."""
    copy = tmp_path / "cut.mp4"
    ffmpeg("-i", joined, "-map", "0:v", "-c", "copy", "-bsf:v", "noise=drop=eq(n\\,120)", copy)
    code, report = verify_media(pristine_store, keys.pub, copy)
    assert code == 1
    seq = report["cameras"][0]["first_frame"] + 120
    assert any(f["kind"] == "frame_missing" and f["first_frame"] <= seq <= f["last_frame"]
               for f in report["findings"]), report["findings"][:5]
