"""Frame fingerprints: exact on known planes, robust to re-encoding and scaling,
and far apart for unrelated pictures."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import ffmpeg
from vidproof.stamp import FINGERPRINT_SIZE, distance, distances, fingerprint
from vidproof.stamp.fingerprint import sampling_step


def test_uniform_plane_gives_its_value_everywhere() -> None:
    for value in (0, 17, 128, 255):
        fp = fingerprint(np.full((360, 640), value, np.uint8))
        assert fp == bytes([value]) * FINGERPRINT_SIZE


def test_each_cell_is_the_rounded_mean_of_its_block() -> None:
    # 256 x 256: one sample per pixel, 16 x 16 pixels per cell.
    cells = np.arange(256, dtype=np.uint8).reshape(16, 16)
    plane = np.kron(cells, np.ones((16, 16), np.uint8))
    assert fingerprint(plane) == cells.tobytes()
    # Half up: a cell whose pixels are half 10 and half 11 reads 11; a quarter 11, 10.
    plane = np.full((256, 256), 10, np.uint8)
    plane[:16, 0:16:2] = 11           # cell (0, 0): mean 10.5
    plane[16:32, 16:20] = 11          # cell (1, 1): mean 10.25
    fp = np.frombuffer(fingerprint(plane), np.uint8).reshape(16, 16)
    assert fp[0, 0] == 11 and fp[1, 1] == 10 and fp[2, 2] == 10


def test_sampling_keeps_about_256_samples_on_the_short_side() -> None:
    assert [sampling_step(h, w) for h, w in ((180, 320), (576, 704), (1080, 1920),
                                             (2160, 3840), (1920, 1080))] == [1, 2, 4, 8, 4]


def test_rows_with_padding_and_views_are_read_correctly() -> None:
    rng = np.random.default_rng(3)
    padded = rng.integers(0, 256, (720, 1344), dtype=np.uint8)
    assert fingerprint(padded[:, :1280]) == fingerprint(padded[:, :1280].copy())


def test_distance() -> None:
    a = bytes(range(256))
    b = bytes((x + 3) % 256 for x in range(256))
    assert distance(a, a) == 0
    assert distance(a, b) == pytest.approx((253 * 3 + 3 * 253) / 256)
    many = np.stack([np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)])
    assert distances(a, many).tolist() == [0, distance(a, b)]
    with pytest.raises(ValueError, match="256 bytes"):
        distance(a, b"short")


def test_too_small_or_wrong_planes_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        fingerprint(np.zeros((8, 640), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        fingerprint(np.zeros((360, 640), np.uint16))


def _fingerprints(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([
            np.frombuffer(fingerprint(f.to_ndarray(format="yuv420p")[:f.height]), np.uint8)
            for f in c.decode(video=0)])


def test_a_smaller_cheaper_copy_matches_its_own_frames(tmp_path: Path) -> None:
    """A copy at a third of the bitrate and half the size: every frame's nearest
    original is the frame it was made from, with a margin; unrelated footage (other
    patterns) is far from every original frame."""
    orig, copy, other = tmp_path / "orig.mp4", tmp_path / "copy.mp4", tmp_path / "other.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=960x540:rate=25", "-frames:v", "50",
           "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2000k", "-pix_fmt", "yuv420p", orig)
    ffmpeg("-i", orig, "-vf", "scale=480:270", "-c:v", "libx264", "-preset", "veryfast",
           "-b:v", "667k", copy)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=960x540:rate=25,trim=end_frame=25",
           "-f", "lavfi", "-i", "cellauto=size=960x540:rate=25,trim=end_frame=25",
           "-filter_complex", "[0][1]concat=n=2,format=yuv420p", "-c:v", "libx264",
           "-preset", "veryfast", other)
    o, c, x = _fingerprints(orig), _fingerprints(copy), _fingerprints(other)
    assert len(o) == len(c) == 50
    nearest, margin = [], []
    for fp in c:
        d = distances(fp, o)
        nearest.append(int(d.argmin()))
        margin.append(float(np.sort(d)[1] - d.min()))
    assert nearest == list(range(50))
    same = [distance(c[i], o[i]) for i in range(50)]
    assert max(same) < 1.0 and min(margin) > 2 * max(same)
    assert min(float(distances(fp, o).min()) for fp in x) > 10 * max(same) + 10
