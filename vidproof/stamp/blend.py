"""Burn the stamp into YUV 4:2:0 planes, redrawing only what changed.

Layout. Every character sits in a *cell*: its advance plus ``r`` pixels on each
side (``r`` is the outline radius, about 1/16 of the font size), rounded up to an
even width; all digits get the same cell (the widest digit's). A line is a *band*
of cells, ``ascent + descent + 2r`` high, rounded up to even. Bands are stacked
into a *block* placed, at even coordinates, in a corner of the frame. Everything
is even so that a cell covers whole 2x2 chroma samples: a cell's chroma does not
depend on its neighbours.

Rendering a block (once per distinct text) gives, for every pixel, the coverage
``f`` of the white fill (0..255) and ``o`` of the dark surround: the fill dilated
by ``r`` (outlined text) or a constant ``box_opacity`` (boxed text). With white
``W`` and black ``K`` (16 and 235 in limited range), the stamped luma is
``bg*(1-o)(1-f) + K*o*(1-f) + W*f``, stored as two uint16 arrays::

    inv = floor(256 * (255-o) * (255-f) / 65025)                 # 0..256
    ta  = floor(256 * (K*o*(255-f) + W*f*255) / 65025) + 128
    out = (bg * inv + ta) >> 8                                   # kernels.py

Since ``255*inv + ta <= 65280 + 128``, the sum fits in uint16 and ``out`` in a
byte. Chroma is pulled towards neutral (128) with the 2x2 mean of ``inv``::

    inv_c = (i00 + i01 + i10 + i11 + 2) >> 2 ;  ta_c = 128 * (256 - inv_c) + 128

Per frame, only the time digits change. The block of the two time lines is
rendered with their nine digit cells left empty (the *template*, cached by its
text: it changes once a day, or when the local offset does); each digit's cell
is rendered once (``inv``, ``ta``, ``inv_c``, ``ta_c``), and a frame pastes the
digits that differ from the previous frame, then blends the block. When a font
does not allow this (ink that leaves its cell), the block is rendered in full for
every frame instead: slower, same pixels.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from . import kernels
from .atlas import DIGITS, GlyphAtlas
from .text import StampClock, TimeLine, location_lines

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
STYLES: tuple[str, ...] = ("box", "outline")
MIN_FONT_PX = 8


@dataclass(frozen=True)
class StampStyle:
    """How the stamp looks.

    ``scale``: font size in pixels per pixel of frame height (0.03: 32 px at 1080p).
    ``margin``: distance to the frame's edges, per pixel of frame height.
    ``full_range``: the planes use full-range luma (0..255) rather than 16..235.
    """

    corner: str = "bottom-left"
    kind: str = "box"
    scale: float = 0.03
    margin: float = 0.02
    box_opacity: float = 0.6
    full_range: bool = False
    font_path: str | None = None

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise ValueError(f"stamp corner {self.corner!r} is invalid: expected one of "
                             + ", ".join(CORNERS))
        if self.kind not in STYLES:
            raise ValueError(f"stamp style {self.kind!r} is invalid: expected box or outline")
        if not (0 < self.scale <= 0.5 and 0 <= self.margin <= 0.25
                and 0 <= self.box_opacity <= 1):
            raise ValueError("stamp scale must be in (0, 0.5], margin in [0, 0.25] and "
                             "box opacity in [0, 1]")


def _even(n: int) -> int:
    return n + (n & 1)


@dataclass(frozen=True)
class BlockArrays:
    """What is blended: per-pixel weights for the luma block and the chroma block.

    ``inv`` and ``ta`` are the two halves of one (2, h, w) array, ``luma`` (each a
    C-contiguous view), and ``inv_c`` and ``ta_c`` of ``chroma``: a digit cell is
    pasted into both with one assignment each."""

    luma: np.ndarray    # uint16 (2, h, w): inv, ta
    chroma: np.ndarray  # uint16 (2, h/2, w/2): inv_c, ta_c

    @classmethod
    def of(cls, inv: np.ndarray, ta: np.ndarray, inv_c: np.ndarray,
           ta_c: np.ndarray) -> BlockArrays:
        return cls(np.stack([inv, ta]).astype(np.uint16, copy=False),
                   np.stack([inv_c, ta_c]).astype(np.uint16, copy=False))

    @property
    def inv(self) -> np.ndarray:
        half: np.ndarray = self.luma[0]
        return half

    @property
    def ta(self) -> np.ndarray:
        half: np.ndarray = self.luma[1]
        return half

    @property
    def inv_c(self) -> np.ndarray:
        half: np.ndarray = self.chroma[0]
        return half

    @property
    def ta_c(self) -> np.ndarray:
        half: np.ndarray = self.chroma[1]
        return half

    def copy(self) -> BlockArrays:
        return BlockArrays(self.luma.copy(), self.chroma.copy())


def weights(fill: np.ndarray, surround: np.ndarray, black: int,
            white: int) -> tuple[np.ndarray, np.ndarray]:
    """``inv`` and ``ta`` (uint16) from fill and surround coverage (0..255)."""
    f = fill.astype(np.int64)
    o = surround.astype(np.int64)
    inv = (256 * (255 - o) * (255 - f)) // 65025
    ta = (256 * (black * o * (255 - f) + white * f * 255)) // 65025 + 128
    return inv.astype(np.uint16), ta.astype(np.uint16)


def chroma_weights(inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``inv_c`` and ``ta_c`` (uint16) of the chroma samples under a luma block."""
    i = inv.astype(np.uint32)
    s = i[0::2, 0::2] + i[0::2, 1::2] + i[1::2, 0::2] + i[1::2, 1::2]
    inv_c = (s + 2) >> 2
    ta_c = 128 * (256 - inv_c) + 128
    return inv_c.astype(np.uint16), ta_c.astype(np.uint16)


def dilate(cover: np.ndarray, r: int) -> np.ndarray:
    """Max of ``cover`` over a disc of radius ``r`` (the outline's coverage)."""
    h, w = cover.shape
    padded = np.zeros((h + 2 * r, w + 2 * r), np.uint8)
    padded[r:r + h, r:r + w] = cover
    out = np.zeros_like(cover)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy <= r * r + r:
                np.maximum(out, padded[r + dy:r + dy + h, r + dx:r + dx + w], out=out)
    return out


class Typesetter:
    """Cells, bands and blocks for one font size and style; renders coverage."""

    def __init__(self, atlas: GlyphAtlas, style: StampStyle) -> None:
        self.atlas = atlas
        self.style = style
        size = atlas.size
        self.r = max(1, round(size / 16))
        self.band = _even(atlas.line_height + 2 * self.r)
        self.pad = _even(round(size / 4)) if style.kind == "box" else 0
        self.digit_cell = _even(max(atlas.glyph(d).advance for d in DIGITS) + 2 * self.r)
        self.black, self.white = (0, 255) if style.full_range else (16, 235)
        self.box = round(255 * style.box_opacity)
        self.digit_cells: list[BlockArrays] | None = self._digit_cells()

    def cell_width(self, char: str) -> int:
        if char in DIGITS:
            return self.digit_cell
        return _even(self.atlas.glyph(char).advance + 2 * self.r)

    def line_width(self, text: str) -> int:
        return sum(self.cell_width(c) for c in text)

    def fit(self, text: str, width: int) -> str:
        """``text``, cut short with "..." if its band is wider than ``width``."""
        if self.line_width(text) <= width:
            return text
        while text and self.line_width(text + "...") > width:
            text = text[:-1]
        return text + "..." if text else ""

    def block_size(self, widths: list[int]) -> tuple[int, int]:
        return (len(widths) * self.band + 2 * self.pad, max(widths) + 2 * self.pad)

    def _place(self, fill: np.ndarray, char: str, x: int, top: int) -> None:
        """Draw ``char``'s ink into ``fill`` for the cell at (x, top), clipped."""
        g = self.atlas.glyph(char)
        if g.mask.size == 0:
            return
        offset = (self.digit_cell - 2 * self.r - g.advance) // 2 if char in DIGITS else 0
        gx = x + self.r + offset + g.left
        gy = top + self.r + self.atlas.ascent + g.top
        h, w = fill.shape
        x0, y0 = max(gx, 0), max(gy, 0)
        x1, y1 = min(gx + g.mask.shape[1], w), min(gy + g.mask.shape[0], h)
        if x0 < x1 and y0 < y1:
            sub = fill[y0:y1, x0:x1]
            np.maximum(sub, g.mask[y0 - gy:y1 - gy, x0 - gx:x1 - gx], out=sub)

    def _arrays(self, fill: np.ndarray) -> BlockArrays:
        if self.style.kind == "outline":
            surround = dilate(fill, self.r)
        else:
            surround = np.full(fill.shape, self.box, np.uint8)
        inv, ta = weights(fill, surround, self.black, self.white)
        inv_c, ta_c = chroma_weights(inv)
        return BlockArrays.of(inv, ta, inv_c, ta_c)

    def render(self, lines: list[tuple[str, frozenset[int]]]) -> tuple[BlockArrays, np.ndarray]:
        """Render lines (text, positions left empty) into a block; also its fill."""
        h, w = self.block_size([self.line_width(t) for t, _ in lines])
        fill = np.zeros((h, w), np.uint8)
        for i, (text, skip) in enumerate(lines):
            top = self.pad + i * self.band
            x = self.pad
            for j, char in enumerate(text):
                if j not in skip:
                    self._place(fill, char, x, top)
                x += self.cell_width(char)
        return self._arrays(fill), fill

    def _digit_cells(self) -> list[BlockArrays] | None:
        """Each digit's cell on its own, or None if some digit's ink (with its
        outline) would leave its cell: then digits cannot be pasted."""
        cells = []
        r = self.r
        for d in DIGITS:
            # Draw the digit with a margin around its cell to see whether ink leaves it.
            m = 2 * r + self.atlas.size
            fill = np.zeros((self.band + 2 * m, self.digit_cell + 2 * m), np.uint8)
            self._place(fill, d, m, m)
            grown = dilate(fill, r) if self.style.kind == "outline" else fill
            inside = np.zeros_like(grown, dtype=bool)
            inside[m:m + self.band, m:m + self.digit_cell] = True
            if grown[~inside].any():
                return None
            cells.append(self._arrays(fill[m:m + self.band, m:m + self.digit_cell]))
        return cells

    def empty_cell(self) -> BlockArrays:
        return self._arrays(np.zeros((self.band, self.digit_cell), np.uint8))


@lru_cache(maxsize=32)
def _typesetter(size: int, style: StampStyle) -> Typesetter:
    return Typesetter(GlyphAtlas(size, style.font_path), style)


@dataclass
class _TimeSlots:
    """Where one time line's nine digit cells are in the block, and what they show."""

    luma: list[tuple[slice, slice, slice]]    # each cell's place in BlockArrays.luma
    chroma: list[tuple[slice, slice, slice]]  # the same in BlockArrays.chroma
    shown: tuple[int, ...]  # the digits pasted now (-1: none yet)


class Stamper:
    """Burns date, time, camera and location into the frames of one camera.

    One per camera stream (it keeps the last frame's block): not thread-safe.
    ``native``: True requires the C kernels, False uses numpy, None follows
    ``VIDPROOF_NATIVE`` (default: C when built).
    """

    def __init__(self, width: int, height: int, *, camera_id: str, label: str = "",
                 lat: str = "", lon: str = "", tz: dt.tzinfo | None = None,
                 style: StampStyle | None = None, native: bool | None = None) -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError(f"frame size {width}x{height} is invalid for YUV 4:2:0 stamping: "
                             "expected even sizes of at least 16")
        self.width, self.height = width, height
        self.style = style or StampStyle()
        self.clock = StampClock(tz)
        self._native = kernels.native_module(native)
        margin = _even(round(self.style.margin * height))
        if 2 * margin + 64 > min(width, height):
            margin = 0
        # The widest time line: a local offset with seconds ("+00:09:21").
        widest = TimeLine("0000-00-00", "+00:00:00", (0,) * 9).layout
        size = max(MIN_FONT_PX, round(self.style.scale * height))
        while True:
            ts = _typesetter(size, self.style)
            bh, bw = ts.block_size([ts.line_width(widest)] * 4)
            if bw + 2 * margin <= width and bh + 2 * margin <= height:
                break
            if size <= MIN_FONT_PX:
                raise ValueError(f"frame size {width}x{height} is too small for the stamp")
            size -= 1
        self.typesetter = ts
        inner = width - 2 * margin - 2 * ts.pad
        self.static_lines = tuple(ts.fit(ts.atlas.displayable(t), inner)
                                  for t in location_lines(camera_id, label, lat, lon))
        self._margin = margin
        self._paste = ts.digit_cells is not None
        self._key: tuple[str, str] | None = None
        self._sec: int | None = None  # the second of the last frame stamped (digit pastes)
        self._block: BlockArrays | None = None
        self._slots: list[_TimeSlots] = []
        self._x0 = self._y0 = 0
        self._tmp = self._tmp_c = np.zeros((0, 0), np.uint16)
        self._full_cache: OrderedDict[tuple[str, ...], BlockArrays] = OrderedDict()

    @property
    def native(self) -> bool:
        """Whether this stamper blends with the C kernel."""
        return self._native is not None

    @property
    def font_size(self) -> int:
        return self.typesetter.atlas.size

    def lines(self, utc_ns: int) -> tuple[str, ...]:
        """The text that :meth:`apply` burns for a frame captured at ``utc_ns``."""
        utc, local = self.clock.lines(utc_ns)
        return (utc.text, local.text, *self.static_lines)

    def box(self) -> tuple[int, int, int, int] | None:
        """The luma rectangle (x, y, w, h) that the last frame's stamp covered."""
        if self._block is None:
            return None
        h, w = self._block.inv.shape
        return self._x0, self._y0, w, h

    # -- per frame ---------------------------------------------------------------

    def apply(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, utc_ns: int) -> None:
        """Stamp, in place, the planes of one frame captured at ``utc_ns`` (ns, UTC).

        ``y`` is (height, width) uint8, ``u`` and ``v`` (height/2, width/2); each
        row must be contiguous (a plane with padded rows is fine).
        """
        if y.shape != (self.height, self.width) or u.shape != v.shape or \
                u.shape != (self.height // 2, self.width // 2):
            raise ValueError(f"planes {y.shape}, {u.shape}, {v.shape} do not match the "
                             f"stamper's {self.width}x{self.height} YUV 4:2:0 frame")
        sec, ms = divmod(utc_ns // 1_000_000, 1000)
        if sec == self._sec and self._paste:
            # The same second as the frame before: only the milliseconds can differ
            # (the same in both lines: the local offset is whole seconds).
            block = self._paste_ms(ms)
        else:
            utc, local = self.clock.lines(utc_ns)
            block = self._update(utc, local)
            self._sec = sec if self._paste else None
        if self._native is not None:
            self._native.blend(y, u, v, self._x0, self._y0, block.inv, block.ta,
                               block.inv_c, block.ta_c)
        else:
            x0, y0 = self._x0, self._y0
            kernels.blend_plane(y, x0, y0, block.inv, block.ta, self._tmp)
            kernels.blend_plane(u, x0 // 2, y0 // 2, block.inv_c, block.ta_c, self._tmp_c)
            kernels.blend_plane(v, x0 // 2, y0 // 2, block.inv_c, block.ta_c, self._tmp_c)

    def apply_i420(self, frame: np.ndarray, utc_ns: int) -> None:
        """Stamp, in place, a frame as ``VideoFrame.to_ndarray(format="yuv420p")``
        gives it: one contiguous (height*3/2, width) array, Y then U then V."""
        y, u, v = split_i420(frame, self.width, self.height)
        self.apply(y, u, v, utc_ns)

    def _update(self, utc: TimeLine, local: TimeLine) -> BlockArrays:
        ts = self.typesetter
        key = (utc.template, local.template)
        if self._paste and (key != self._key or self._block is None):
            self._build(utc, local)
            self._key = key
        if not self._paste:
            return self._full_block(utc, local)
        block = self._block
        assert block is not None
        cells = ts.digit_cells
        assert cells is not None
        luma, chroma = block.luma, block.chroma
        for slots, digits in ((self._slots[0], utc.digits), (self._slots[1], local.digits)):
            shown = slots.shown
            if shown == digits:
                continue
            for k in range(9):
                d = digits[k]
                if shown[k] != d:
                    cell = cells[d]
                    luma[slots.luma[k]] = cell.luma
                    chroma[slots.chroma[k]] = cell.chroma
            slots.shown = digits
        return block

    def _paste_ms(self, ms: int) -> BlockArrays:
        """Paste the three millisecond digits of both time lines (see :meth:`_update`)."""
        block = self._block
        cells = self.typesetter.digit_cells
        assert block is not None and cells is not None
        new = (ms // 100, ms // 10 % 10, ms % 10)
        luma, chroma = block.luma, block.chroma
        for slots in self._slots:
            shown = slots.shown
            if shown[6:] == new:
                continue
            for k in range(6, 9):
                d = new[k - 6]
                if shown[k] != d:
                    cell = cells[d]
                    luma[slots.luma[k]] = cell.luma
                    chroma[slots.chroma[k]] = cell.chroma
            slots.shown = shown[:6] + new
        return block

    def _lines_spec(self, utc: TimeLine, local: TimeLine,
                    templated: bool) -> list[tuple[str, frozenset[int]]]:
        none: frozenset[int] = frozenset()
        if templated:
            return [(utc.layout, frozenset(utc.digit_positions)),
                    (local.layout, frozenset(local.digit_positions)),
                    (self.static_lines[0], none), (self.static_lines[1], none)]
        return [(utc.text, none), (local.text, none),
                (self.static_lines[0], none), (self.static_lines[1], none)]

    def _place_block(self, block: BlockArrays) -> None:
        h, w = block.inv.shape
        m = self._margin
        self._x0 = m if self.style.corner.endswith("left") else self.width - m - w
        self._y0 = m if self.style.corner.startswith("top") else self.height - m - h
        if self._tmp.shape != (h, w):
            self._tmp = np.empty((h, w), np.uint16)
            self._tmp_c = np.empty((h // 2, w // 2), np.uint16)

    def _build(self, utc: TimeLine, local: TimeLine) -> None:
        """Render the template block and find where the digits go; check that they can
        be pasted (no other ink reaches their cells), else fall back to full renders."""
        ts = self.typesetter
        block, _ = ts.render(self._lines_spec(utc, local, templated=True))
        empty = ts.empty_cell()
        band, dc = ts.band, ts.digit_cell
        slots: list[_TimeSlots] = []
        for i, line in enumerate((utc, local)):
            row = ts.pad + i * band
            positions = set(line.digit_positions)
            x = ts.pad
            luma, chroma = [], []
            for j, char in enumerate(line.layout):
                if j in positions:
                    at = (slice(row, row + band), slice(x, x + dc))
                    luma.append((slice(None), *at))  # both halves: inv and ta
                    chroma.append((slice(None), slice(row // 2, (row + band) // 2),
                                   slice(x // 2, (x + dc) // 2)))
                    if not (np.array_equal(block.inv[at], empty.inv)
                            and np.array_equal(block.ta[at], empty.ta)):
                        self._paste = False  # this font's ink reaches a digit's cell
                x += ts.cell_width(char)
            slots.append(_TimeSlots(luma, chroma, (-1,) * 9))
        self._block = block
        self._slots = slots
        self._place_block(block)

    def _full_block(self, utc: TimeLine, local: TimeLine) -> BlockArrays:
        """The whole block rendered for this frame's text (fonts whose digits cannot be
        pasted), with a small cache."""
        spec = self._lines_spec(utc, local, templated=False)
        key = tuple(t for t, _ in spec)
        block = self._full_cache.get(key)
        if block is None:
            block, _ = self.typesetter.render(spec)
            self._full_cache[key] = block
            if len(self._full_cache) > 64:
                self._full_cache.popitem(last=False)
        self._block = block
        self._place_block(block)
        return block

    def render_reference(self, utc_ns: int) -> BlockArrays:
        """The block for ``utc_ns`` rendered in full, without the digit cache (tests)."""
        utc, local = self.clock.lines(utc_ns)
        block, _ = self.typesetter.render(self._lines_spec(utc, local, templated=False))
        return block


def split_i420(frame: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Views of Y, U and V in a contiguous I420 array of shape (height*3/2, width)."""
    if frame.shape != (height * 3 // 2, width) or frame.dtype != np.uint8 or \
            not frame.flags.c_contiguous:
        raise ValueError(f"expected a contiguous uint8 I420 array of shape "
                         f"({height * 3 // 2}, {width}), got {frame.dtype} {frame.shape}")
    flat = frame.reshape(-1)
    n = width * height
    c = n // 4
    u = flat[n:n + c].reshape(height // 2, width // 2)
    v = flat[n + c:n + 2 * c].reshape(height // 2, width // 2)
    return frame[:height], u, v


def frame_planes(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable views of a PyAV ``yuv420p`` VideoFrame's planes (rows may be padded).

    Stamp only frames you own: a frame that a decoder returned may share its
    buffer with the decoder's reference pictures. ``frame.reformat()`` or
    ``VideoFrame.from_ndarray`` give frames of your own.
    """
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        raise ValueError(f"expected a yuv420p frame, got {frame.format.name}")
    out = []
    for plane in frame.planes:
        buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        out.append(buf[:, :plane.width])
    return out[0], out[1], out[2]

