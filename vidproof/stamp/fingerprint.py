"""A small perceptual signature of a frame, robust to re-encoding and scaling.

Version 1: the luma plane is sampled every ``step = max(1, min(h, w) // 256)``
pixels in both directions (about 256 samples along the short side, whatever the
resolution: a half-size copy is sampled as densely, relative to the picture, as
its original), the samples are split into a 16 x 16 grid (sample row ``k`` is in
grid row ``i`` when ``floor(i*hs/16) <= k < floor((i+1)*hs/16)``, ``hs`` the
number of sampled rows; columns alike), and each cell gives its mean luma,
rounded half up: ``(2*sum + n) // (2*n)``. The 256 bytes, row by row, are the
fingerprint.

Block means average away coding noise and resampling, so a copy at another
bitrate or size gives nearly the same bytes; the distance is the mean absolute
difference, in luma levels (0..255).

In transcode mode every decoded picture is copied once into a frame of our own
(:func:`copy_planes`); the C kernels add up the fingerprint's samples as they copy,
and after the stamp only the grid rows that the stamp reaches are read again
(``fingerprint(y, sums=..., changed=...)``): the same bytes, one pass over the
picture fewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from . import kernels

VERSION = 1
GRID = 16
SIZE = GRID * GRID


def sampling_step(height: int, width: int) -> int:
    return max(1, min(height, width) // 256)


def fingerprint_numpy(y: np.ndarray, grid: int = GRID) -> bytes:
    """The reference implementation."""
    h, w = y.shape
    step = sampling_step(h, w)
    ys = y[::step, ::step]
    hs, ws = ys.shape
    if hs < grid or ws < grid:
        raise ValueError(f"a {w}x{h} plane is too small for a {grid}x{grid} fingerprint")
    rows = (np.arange(grid + 1) * hs) // grid
    cols = (np.arange(grid + 1) * ws) // grid
    sums = np.add.reduceat(ys, rows[:-1], axis=0, dtype=np.uint64)
    sums = np.add.reduceat(sums, cols[:-1], axis=1, dtype=np.uint64)
    counts = (np.diff(rows)[:, None] * np.diff(cols)[None, :]).astype(np.uint64)
    means = (2 * sums + counts) // (2 * counts)
    return bytes(means.astype(np.uint8).tobytes())


@lru_cache(maxsize=64)
def grid_rows(height: int, width: int, top: int, rows: int) -> tuple[int, int]:
    """The grid rows ``[first, stop)`` that plane rows ``top .. top+rows-1`` may reach."""
    step = sampling_step(height, width)
    hs = -(-height // step)
    edges = [(i * hs) // GRID * step for i in range(GRID + 1)]  # first plane row of each
    hit = [i for i in range(GRID) if edges[i] < top + rows and edges[i + 1] > top]
    return (hit[0], hit[-1] + 1) if hit else (0, 0)


def _rows_ok(a: np.ndarray) -> bool:
    return a.ndim == 2 and a.dtype == np.uint8 and a.strides[1] == 1 and \
        a.strides[0] >= a.shape[1]


def copy_planes(src: Sequence[Any], strides: Sequence[int], dst: Sequence[np.ndarray], *,
                native: bool | None = None) -> bytes | None:
    """Copy a picture's Y, U and V planes into ``dst`` (three writable 2-D uint8 arrays
    with contiguous rows; their shapes are the planes').

    ``src``: three contiguous buffers (PyAV planes, numpy arrays, bytes) whose rows are
    ``strides`` bytes apart. With the C kernels, returns the luma's fingerprint sums
    for ``fingerprint(dst[0], sums=...)``; with numpy, None."""
    if len(src) != 3 or len(strides) != 3 or len(dst) != 3:
        raise ValueError("copy_planes: expected three planes")
    mod = kernels.native_module(native)
    h, w = dst[0].shape
    step = sampling_step(h, w)
    if mod is not None and -(-h // step) >= GRID and -(-w // step) >= GRID:
        return bytes(mod.copy(*src, tuple(strides), *dst, GRID, step))
    for a, stride, b in zip(src, strides, dst, strict=True):
        rows, width = b.shape
        if stride < width:
            raise ValueError(f"copy_planes: rows {stride} bytes apart, narrower than {width}")
        flat = np.frombuffer(a, np.uint8)
        if flat.size < (rows - 1) * stride + width:
            raise ValueError("copy_planes: a source plane is smaller than its rows")
        view = np.lib.stride_tricks.as_strided(flat, (rows, width), (stride, 1),
                                               writeable=False)
        np.copyto(b, view)
    return None


def fingerprint(y: np.ndarray, *, native: bool | None = None, sums: bytes | None = None,
                changed: tuple[int, int] | None = None) -> bytes:
    """The 256-byte fingerprint of a luma plane (2-D uint8, rows contiguous).

    ``native``: as for :class:`~vidproof.stamp.Stamper` (None: ``VIDPROOF_NATIVE``).
    ``sums``: what :func:`copy_planes` returned when it copied ``y``, and
    ``changed``: ``(top, rows)``, the plane rows written since (the stamp's box):
    only the grid rows that these reach are read again. Without ``changed``, or
    with numpy, the whole plane is read.
    """
    if y.ndim != 2 or y.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 luma plane, got {y.dtype} {y.shape}")
    mod = kernels.native_module(native)
    h, w = y.shape
    step = sampling_step(h, w)
    if -(-h // step) < GRID or -(-w // step) < GRID:
        raise ValueError(f"a {w}x{h} plane is too small for a {GRID}x{GRID} fingerprint")
    if mod is not None and _rows_ok(y):
        if sums is not None and changed is not None:
            first, stop = grid_rows(h, w, *changed)
            return bytes(mod.fingerprint(y, GRID, step, sums, first, stop))
        return bytes(mod.fingerprint(y, GRID, step))
    return fingerprint_numpy(y)


def as_array(fp: bytes | np.ndarray) -> np.ndarray:
    a = np.frombuffer(fp, np.uint8) if isinstance(fp, bytes | bytearray) else np.asarray(fp)
    if a.dtype != np.uint8 or a.shape[-1] != SIZE:
        raise ValueError(f"a fingerprint is {SIZE} bytes, got {a.dtype} {a.shape}")
    return a


def distance(a: bytes | np.ndarray, b: bytes | np.ndarray) -> float:
    """Mean absolute difference of two fingerprints, in luma levels (0 = same)."""
    x, y = as_array(a).astype(np.int16), as_array(b).astype(np.int16)
    return float(np.abs(x - y).mean())


def distances(fp: bytes | np.ndarray, many: np.ndarray) -> np.ndarray:
    """Distances from one fingerprint to each row of ``many`` (n x 256 uint8)."""
    x = as_array(fp).astype(np.int16)
    m = as_array(many).reshape(-1, SIZE).astype(np.int16)
    return np.asarray(np.abs(m - x).mean(axis=1), dtype=np.float64)
