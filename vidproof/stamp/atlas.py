"""Glyph atlas: a TrueType font rasterized once per pixel size into coverage masks.

The default font is the one that Pillow ships inside its wheel (Aileron Regular,
``ImageFont.load_default(size=...)``, Pillow >= 10.1): it works offline on any
machine where Pillow installs, and its digits are tabular (all the same advance),
which is what lets the stamp swap the time digits in place. Any other TrueType or
OpenType font can be given by path.

Glyphs are rasterized lazily, one character at a time, and kept: a location label
with characters outside ASCII costs one rasterization per new character, once.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DIGITS = "0123456789"
_SURELY_MISSING = "\U000f0000"  # a private-use code point: fonts draw their .notdef box


@dataclass(frozen=True)
class Glyph:
    """One character: its advance and its ink as an 8-bit coverage mask.

    ``mask`` (uint8, 0..255) is the tight box around the ink; ``left`` and ``top``
    place it relative to the pen position on the baseline (``top`` is negative for
    ink above the baseline).
    """

    char: str
    advance: int
    left: int
    top: int
    mask: np.ndarray

    @property
    def right(self) -> int:
        return self.left + int(self.mask.shape[1])

    @property
    def bottom(self) -> int:
        return self.top + int(self.mask.shape[0])


def load_font(size: int, path: str | Path | None = None) -> ImageFont.FreeTypeFont:
    """The font at ``size`` pixels: ``path`` if given, else the font Pillow ships."""
    if size < 4:
        raise ValueError(f"font size {size} px is too small: expected at least 4")
    if path is not None:
        return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow without FreeType
        raise RuntimeError("Pillow was built without FreeType: cannot rasterize the stamp font")
    return font


class GlyphAtlas:
    """Coverage masks of the characters of one font at one pixel size."""

    def __init__(self, size: int, font_path: str | Path | None = None) -> None:
        self.size = size
        self.font_path = None if font_path is None else str(font_path)
        self._font = load_font(size, font_path)
        ascent, descent = self._font.getmetrics()
        self.ascent = int(ascent)
        self.descent = int(descent)
        self._glyphs: dict[str, Glyph] = {}
        self._notdef = self._rasterize(_SURELY_MISSING)
        digits = [self.glyph(d) for d in DIGITS]
        #: advance of every digit when the font's digits are tabular, else None
        self.digit_advance = digits[0].advance if len({g.advance for g in digits}) == 1 else None

    @property
    def line_height(self) -> int:
        return self.ascent + self.descent

    def glyph(self, char: str) -> Glyph:
        g = self._glyphs.get(char)
        if g is None:
            g = self._glyphs[char] = self._rasterize(char)
        return g

    def has_glyph(self, char: str) -> bool:
        """Whether the font draws ``char`` (rather than its .notdef box)."""
        g, nd = self.glyph(char), self._notdef
        return not (g.advance == nd.advance and g.mask.shape == nd.mask.shape
                    and nd.mask.size > 0 and bool((g.mask == nd.mask).all()))

    def displayable(self, text: str) -> str:
        """``text`` with what the font cannot draw replaced: a letter with an accent
        the font lacks by its base letter ("É" -> "E"), anything else by "?"."""
        out = []
        for char in text:
            if self.has_glyph(char):
                out.append(char)
                continue
            base = "".join(c for c in unicodedata.normalize("NFKD", char)
                           if not unicodedata.combining(c) and self.has_glyph(c))
            out.append(base or "?")
        return "".join(out)

    def _rasterize(self, char: str) -> Glyph:
        if len(char) != 1:
            raise ValueError(f"a glyph is one character, got {char!r}")
        advance = max(0, round(self._font.getlength(char)))
        margin = self.size  # generous: ink may lean out of the advance box
        width = advance + 2 * margin
        height = self.ascent + self.descent + 2 * margin
        image = Image.new("L", (width, height), 0)
        ImageDraw.Draw(image).text((margin, margin + self.ascent), char, font=self._font,
                                   fill=255, anchor="ls")
        ink = np.asarray(image, dtype=np.uint8)
        rows = np.flatnonzero(ink.any(axis=1))
        cols = np.flatnonzero(ink.any(axis=0))
        if rows.size == 0:  # a space, or a character the font leaves blank
            return Glyph(char, advance, 0, 0, np.zeros((0, 0), np.uint8))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        mask = np.ascontiguousarray(ink[r0:r1, c0:c1])
        mask.setflags(write=False)
        return Glyph(char, advance, c0 - margin, r0 - margin - self.ascent, mask)
