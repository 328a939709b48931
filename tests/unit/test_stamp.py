"""The burned-in stamp: its text, its pixels, its cache, and that OCR reads it back."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidproof.stamp import CORNERS, Stamper, StampStyle, frame_planes, split_i420
from vidproof.stamp.blend import Typesetter
from vidproof.stamp.text import StampClock

PARIS = ZoneInfo("Europe/Paris")
ZONES = [ZoneInfo(z) for z in ("UTC", "Europe/Paris", "America/St_Johns", "Asia/Kolkata",
                               "Pacific/Chatham", "America/Los_Angeles")]
T0 = 1715954602_123_456_789  # 2024-05-17 14:03:22.123456789 UTC
PLACE = {"camera_id": "cam1", "label": "12 rue de Rivoli, Paris", "lat": "48.8566",
         "lon": "2.3522"}


def decoded_testsrc2(width: int, height: int, index: int = 5) -> np.ndarray:
    """Frame ``index`` of FFmpeg's testsrc2, as PyAV gives it to an encoder."""
    with av.open(f"testsrc2=size={width}x{height}:rate=25", format="lavfi") as graph:
        for i, frame in enumerate(graph.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="yuv420p")
    raise AssertionError("unreachable")


def oracle(utc_ns: int, tz: dt.tzinfo) -> tuple[str, str]:
    """The two time lines, from datetime's own formatting."""
    sec, rem = divmod(utc_ns, 1_000_000_000)
    when = dt.datetime.fromtimestamp(sec, dt.UTC).replace(microsecond=rem // 1_000_000 * 1000)
    utc = when.isoformat(sep=" ", timespec="milliseconds").replace("+00:00", " UTC")
    local = when.astimezone(tz).isoformat(sep=" ", timespec="milliseconds")
    m = re.fullmatch(r"(.{23})([+-].*)", local)
    assert m, local
    return utc, f"{m.group(1)} {m.group(2)}"


# -- text ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(utc_ns=st.integers(-2_208_988_800 * 10**9, 4_102_444_800 * 10**9),
       zone=st.sampled_from(ZONES))
def test_time_lines_match_datetime(utc_ns: int, zone: ZoneInfo) -> None:
    utc, local = StampClock(zone).lines(utc_ns)
    assert (utc.text, local.text) == oracle(utc_ns, zone)


def test_time_is_truncated_to_the_millisecond_not_rounded() -> None:
    utc, _ = StampClock(PARIS).lines(T0 + 999_999 - 456_789)  # .123999999
    assert utc.text == "2024-05-17 14:03:22.123 UTC"


def test_local_offset_changes_at_the_dst_transition() -> None:
    clock = StampClock(PARIS)
    change = int(dt.datetime(2024, 3, 31, 1, 0, tzinfo=dt.UTC).timestamp()) * 10**9
    assert clock.lines(change - 1_000_000)[1].text == "2024-03-31 01:59:59.999 +01:00"
    assert clock.lines(change)[1].text == "2024-03-31 03:00:00.000 +02:00"


def test_location_lines_and_all_lines() -> None:
    s = Stamper(1280, 720, tz=PARIS, **PLACE)
    assert s.lines(T0) == ("2024-05-17 14:03:22.123 UTC", "2024-05-17 16:03:22.123 +02:00",
                           "cam1 | 12 rue de Rivoli, Paris", "48.8566, 2.3522")


# -- pixels -------------------------------------------------------------------------

def _changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((before != after).any(axis=1))
    cols = np.flatnonzero((before != after).any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@pytest.mark.parametrize("corner", CORNERS)
@pytest.mark.parametrize("kind", ["box", "outline"])
def test_only_the_stamp_box_changes_and_it_sits_in_its_corner(corner: str, kind: str) -> None:
    w, h = 1280, 720
    frame = decoded_testsrc2(w, h)
    stamped = frame.copy()
    s = Stamper(w, h, tz=PARIS, style=StampStyle(corner=corner, kind=kind), **PLACE)
    s.apply_i420(stamped, T0)
    box = s.box()
    assert box is not None
    x, y, bw, bh = box
    margin = round(0.02 * h) + round(0.02 * h) % 2
    assert x == (margin if corner.endswith("left") else w - margin - bw)
    assert y == (margin if corner.startswith("top") else h - margin - bh)
    y0, u0, v0 = split_i420(frame, w, h)
    y1, u1, v1 = split_i420(stamped, w, h)
    cx0, cy0, cx1, cy1 = _changed_box(y0, y1)
    assert x <= cx0 and y <= cy0 and cx1 <= x + bw and cy1 <= y + bh
    for a, b in ((u0, u1), (v0, v1)):
        cx0, cy0, cx1, cy1 = _changed_box(a, b)
        assert x // 2 <= cx0 and y // 2 <= cy0 and cx1 <= (x + bw) // 2 and cy1 <= (y + bh) // 2
    # Nothing outside the box moved, and the box holds real text (many changed pixels).
    outside = np.ones_like(y0, dtype=bool)
    outside[y:y + bh, x:x + bw] = False
    assert np.array_equal(y0[outside], y1[outside])
    assert (y0 != y1).sum() > 0.1 * bw * bh


def test_glyph_size_is_proportional_to_frame_height() -> None:
    sizes = {h: Stamper(w, h, **PLACE).font_size
             for w, h in ((704, 576), (1280, 720), (1920, 1080), (3840, 2160))}
    assert sizes[2160] == pytest.approx(2 * sizes[1080], abs=1)
    assert sizes[1080] == pytest.approx(1.5 * sizes[720], abs=1)
    assert sizes[576] == round(0.03 * 576)


@pytest.mark.parametrize("kind", ["box", "outline"])
@pytest.mark.parametrize("background", [16, 128, 235])
def test_text_contrasts_with_any_background(kind: str, background: int) -> None:
    """Where the glyphs are fully inked the luma is white; right around them it is dark."""
    w, h = 1280, 720
    frame = np.full((h * 3 // 2, w), 128, np.uint8)
    frame[:h] = background
    s = Stamper(w, h, tz=PARIS, style=StampStyle(kind=kind), **PLACE)
    s.apply_i420(frame, T0)
    ts = s.typesetter
    utc, local = s.clock.lines(T0)
    _, fill = ts.render(s._lines_spec(utc, local, templated=False))
    box = s.box()
    assert box is not None
    x, y, bw, bh = box
    region = frame[y:y + bh, x:x + bw].astype(int)
    ink = fill == 255
    beside = np.roll(ink, ts.r, axis=1) | np.roll(ink, -ts.r, axis=1)
    near = (fill == 0) & beside  # just beside a stroke
    assert ink.sum() > 500 and near.sum() > 100
    assert region[ink].min() == 235
    assert np.median(region[near]) <= (16 + 0.4 * (235 - 16) if kind == "box" else 16)
    assert region[ink].min() - np.median(region[near]) >= 100


def test_long_labels_are_cut_to_fit_the_frame() -> None:
    label = "Entrepôt logistique, quai de déchargement numéro 7, " * 4
    s = Stamper(704, 576, camera_id="dock-7", label=label, lat="45.75", lon="4.85")
    line = s.lines(T0)[2]
    assert line.endswith("...") and line.startswith("dock-7 | Entrepot logistique")
    frame = np.zeros((576 * 3 // 2, 704), np.uint8)
    s.apply_i420(frame, T0)
    box = s.box()
    assert box is not None
    x, y, bw, bh = box
    assert x >= 0 and x + bw <= 704 and y >= 0 and y + bh <= 576


def test_changing_digits_are_pasted_and_equal_a_full_render(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Across midnight, hours and a DST change, the block assembled from cached digit
    cells is the block rendered from scratch; whole lines are rendered only when the
    date or the offset changes."""
    renders = []
    real_render = Typesetter.render

    def counting(self: Typesetter, *args: object, **kwargs: object) -> object:
        renders.append(args[0])
        return real_render(self, *args, **kwargs)  # type: ignore[arg-type]

    for kind in ("box", "outline"):
        s = Stamper(704, 576, tz=PARIS, style=StampStyle(kind=kind), **PLACE)
        frame = np.zeros((576 * 3 // 2, 704), np.uint8)
        monkeypatch.setattr(Typesetter, "render", counting)
        renders.clear()
        starts = [int(when.timestamp()) * 10**9 for when in (
            dt.datetime(2024, 3, 30, 23, 59, 58, tzinfo=PARIS),  # local midnight
            dt.datetime(2024, 3, 30, 23, 59, 58, tzinfo=dt.UTC),  # UTC midnight
            dt.datetime(2024, 3, 31, 0, 59, 58, tzinfo=dt.UTC),  # DST starts at 01:00 UTC
        )]
        for start in starts:
            for i in range(75):  # 3 s at 25 fps, with a millisecond that wanders
                t = start + i * 40_000_000 + (i * 7_919_000 % 3_000_000)
                s.apply_i420(frame, t)
                assert s._block is not None
                expected = real_render(s.typesetter, s._lines_spec(*s.clock.lines(t),
                                                                   templated=False))[0]
                for a, b in zip((s._block.inv, s._block.ta, s._block.inv_c, s._block.ta_c),
                                (expected.inv, expected.ta, expected.inv_c, expected.ta_c),
                                strict=True):
                    assert np.array_equal(a, b), (kind, t)
        monkeypatch.undo()
        # The first frame, local midnight, UTC midnight and the DST change: 4 renders.
        assert len(renders) == 4, renders


def test_characters_the_font_lacks_fall_back_to_base_letters() -> None:
    """Pillow's bundled font has no accented letters: "É" is drawn as "E" (and what
    has no base letter as "?"), and lines() says so; the frame shows exactly that."""
    frames = []
    for label in ("Place de l'Eglise", "Place de l'Église"):
        s = Stamper(1280, 720, camera_id="c", label=label + " 東", lat="1", lon="2")
        assert s.lines(T0)[2] == "c | Place de l'Eglise ?"
        f = np.full((720 * 3 // 2, 1280), 128, np.uint8)
        s.apply_i420(f, T0)
        frames.append(f)
    assert np.array_equal(frames[0], frames[1])


def test_stamping_a_pyav_frame_in_place_equals_stamping_its_array() -> None:
    w, h = 704, 576
    arr = decoded_testsrc2(w, h)
    frame = av.VideoFrame.from_ndarray(arr.copy(), format="yuv420p")
    Stamper(w, h, tz=PARIS, **PLACE).apply(*frame_planes(frame), T0)
    Stamper(w, h, tz=PARIS, **PLACE).apply_i420(arr, T0)
    assert np.array_equal(frame.to_ndarray(format="yuv420p"), arr)


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="even sizes"):
        Stamper(641, 360, **PLACE)
    with pytest.raises(ValueError, match="corner"):
        StampStyle(corner="middle")
    with pytest.raises(ValueError, match="style"):
        StampStyle(kind="neon")
    s = Stamper(640, 360, **PLACE)
    big = split_i420(np.zeros((720 * 3 // 2, 1280), np.uint8), 1280, 720)
    with pytest.raises(ValueError, match="do not match"):
        s.apply(*big, T0)
    with pytest.raises(ValueError, match="I420"):
        s.apply_i420(np.zeros((360, 640), np.uint8), T0)
    with pytest.raises(ValueError, match="too small"):
        Stamper(16, 16, **PLACE)


# -- OCR reads it back ---------------------------------------------------------------

TESSERACT = shutil.which("tesseract")


def _ocr(gray: np.ndarray, path: Path) -> str:
    from PIL import Image

    Image.fromarray(gray).save(path)
    out = subprocess.run([str(TESSERACT), str(path), "-", "--psm", "6"], capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout


@pytest.mark.skipif(TESSERACT is None, reason="tesseract (Debian tesseract-ocr) is not installed")
@pytest.mark.parametrize("size,background", [((1920, 1080), "testsrc2"), ((704, 576), "testsrc2"),
                                             ((1280, 720), "white"), ((1280, 720), "noise")])
def test_ocr_reads_back_the_date_and_time(size: tuple[int, int], background: str,
                                          tmp_path: Path) -> None:
    w, h = size
    if background == "testsrc2":
        frame = decoded_testsrc2(w, h)
    else:
        frame = np.full((h * 3 // 2, w), 128, np.uint8)
        frame[:h] = 235 if background == "white" else \
            np.random.default_rng(7).integers(16, 236, (h, w), dtype=np.uint8)
    t = T0 + 7_777_000_000_000
    s = Stamper(w, h, tz=PARIS, **PLACE)
    s.apply_i420(frame, t)
    box = s.box()
    assert box is not None
    x, y, bw, bh = box
    text = _ocr(255 - frame[y:y + bh, x:x + bw], tmp_path / "stamp.png")
    utc, local = oracle(t, PARIS)
    assert utc in text and local in text, text


def test_full_render_fallback_gives_the_same_pixels() -> None:
    """Fonts whose ink leaves a digit's cell are rendered whole for every frame: the
    pixels must be those of the digit cache."""
    frames = []
    for paste in (True, False):
        s = Stamper(704, 576, tz=PARIS, **PLACE)
        s._paste = paste
        f = decoded_testsrc2(704, 576)
        for i in range(30):
            s.apply_i420(f, T0 + i * 40_000_000)
        frames.append(f)
    assert np.array_equal(frames[0], frames[1])


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")


@pytest.mark.skipif(not DEJAVU.is_file(), reason="Debian's fonts-dejavu-core is not installed")
def test_another_truetype_font_can_be_given() -> None:
    frames = []
    for label in ("Place de l'Eglise", "Place de l'Église"):
        s = Stamper(1280, 720, tz=PARIS, style=StampStyle(font_path=str(DEJAVU)),
                    camera_id="c", label=label, lat="1", lon="2")
        assert s.lines(T0)[2] == f"c | {label}"
        f = np.full((720 * 3 // 2, 1280), 128, np.uint8)
        s.apply_i420(f, T0)
        assert s._paste
        frames.append(f)
    assert not np.array_equal(frames[0], frames[1])
