"""The optional C kernels give the numpy reference's bytes, and the package works
without them: disabled by VIDPROOF_NATIVE=0, absent, or never built (no compiler)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest

from vidproof.stamp import CORNERS, Stamper, StampStyle, fingerprint, native_built
from vidproof.stamp import kernels as kernels_module
from vidproof.stamp.fingerprint import copy_planes, fingerprint_numpy

ROOT = Path(__file__).resolve().parents[2]
PLACE = {"camera_id": "cam-7", "label": "Quai de la Gare, Lyon", "lat": "45.7485",
         "lon": "4.8467", "tz": ZoneInfo("America/St_Johns")}
T0 = 1_700_000_000_123_456_789
needs_native = pytest.mark.skipif(not native_built(),
                                  reason="the native kernels are not built (no C compiler?)")


def decoded_testsrc2(width: int, height: int, count: int) -> list[np.ndarray]:
    out = []
    with av.open(f"testsrc2=size={width}x{height}:rate=25", format="lavfi") as graph:
        for frame in graph.decode(video=0):
            out.append(frame.to_ndarray(format="yuv420p"))
            if len(out) == count:
                break
    return out


def _stamp_sequence(frames: list[np.ndarray], width: int, height: int, style: StampStyle,
                    native: bool) -> list[np.ndarray]:
    s = Stamper(width, height, style=style, native=native, **PLACE)  # type: ignore[arg-type]
    assert s.native is native
    out = []
    for i, f in enumerate(frames):
        g = f.copy()
        s.apply_i420(g, T0 + i * 33_366_667 + i * i * 1_000_003)
        out.append(g)
    return out


@needs_native
@pytest.mark.parametrize("kind", ["box", "outline"])
@pytest.mark.parametrize("width,height", [(704, 576), (1280, 720), (1920, 1080), (320, 240)])
def test_native_stamp_is_byte_identical(kind: str, width: int, height: int) -> None:
    rng = np.random.default_rng(width + height)
    frames = decoded_testsrc2(width, height, 3)
    frames += [rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8) for _ in range(3)]
    frames += [np.full((height * 3 // 2, width), v, np.uint8) for v in (0, 255)]
    for corner in CORNERS:
        style = StampStyle(kind=kind, corner=corner, full_range=corner == "top-left")
        a = _stamp_sequence(frames, width, height, style, native=False)
        b = _stamp_sequence(frames, width, height, style, native=True)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert np.array_equal(x, y), (corner, i)
            assert not np.array_equal(x, frames[i])


@needs_native
def test_native_stamp_into_padded_planes_is_byte_identical() -> None:
    """Planes whose rows are padded (as in an AVFrame with a larger line size)."""
    w, h = 704, 576
    rng = np.random.default_rng(1)
    base = [rng.integers(0, 256, (h, w + 64), dtype=np.uint8),
            rng.integers(0, 256, (h // 2, w // 2 + 32), dtype=np.uint8),
            rng.integers(0, 256, (h // 2, w // 2 + 32), dtype=np.uint8)]
    results = []
    for native in (False, True):
        y, u, v = (b.copy() for b in base)
        s = Stamper(w, h, native=native, **PLACE)  # type: ignore[arg-type]
        s.apply(y[:, :w], u[:, :w // 2], v[:, :w // 2], T0)
        results.append((y, u, v))
    for a, b, orig in zip(*results, base, strict=True):
        assert np.array_equal(a, b)
        assert np.array_equal(a[:, -32:], orig[:, -32:])  # the padding is left alone


@needs_native
def test_native_fingerprint_is_byte_identical() -> None:
    rng = np.random.default_rng(5)
    planes = [f[:576] for f in decoded_testsrc2(704, 576, 3)]
    planes += [rng.integers(0, 256, (h, w), dtype=np.uint8)
               for h, w in ((16, 16), (17, 33), (255, 257), (513, 1000), (1080, 1920),
                            (2160, 3840), (1920, 1080), (300, 5000))]
    planes.append(rng.integers(0, 256, (720, 1344), dtype=np.uint8)[:, :1280])  # padded rows
    planes.append(np.full((1080, 1920), 255, np.uint8))
    for p in planes:
        assert fingerprint(p, native=True) == fingerprint_numpy(p), p.shape


@needs_native
@pytest.mark.parametrize(("h", "w", "pad"), [
    (576, 704, 64), (1080, 1920, 0), (240, 320, 32), (16, 16, 0), (18, 34, 6),
    (4320, 300, 4),   # step 1, 270 sampled rows a grid row: the accumulator is folded
    (2160, 3840, 0),  # step 8
])
def test_native_copy_gives_the_planes_and_the_fingerprint_sums(h: int, w: int,
                                                               pad: int) -> None:
    """copy() gives the planes, byte for byte, and sums from which fingerprint()
    reading again only the grid rows of a changed band gives the reference bytes."""
    rng = np.random.default_rng(h * w + pad)
    src = [rng.integers(0, 256, (rows, cols + pad), dtype=np.uint8)
           for rows, cols in ((h, w), (h // 2, w // 2), (h // 2, w // 2))]
    dst = [np.full((rows, cols - pad), 7, np.uint8) for rows, cols in
           ((p.shape[0], p.shape[1]) for p in src)]
    sums = copy_planes([p.reshape(-1) for p in src], [w + pad, w // 2 + pad, w // 2 + pad],
                       dst, native=True)
    assert sums is not None and len(sums) == 8 * 256
    for a, b in zip(src, dst, strict=True):
        assert np.array_equal(a[:, :b.shape[1]], b)
    y = dst[0]
    assert fingerprint(y, native=True, sums=sums, changed=(0, 0)) == fingerprint_numpy(y)
    # A band of rows changed after the copy (the stamp's box): only its grid rows are
    # read again, and the result is the changed plane's reference fingerprint.
    for top, rows in ((0, 1), (h // 3, max(1, h // 5)), (h - 1, 1), (0, h)):
        z = y.copy()
        z[top:top + rows] = 255 - z[top:top + rows]
        assert fingerprint(z, native=True, sums=sums, changed=(top, rows)) == \
            fingerprint_numpy(z), (top, rows)
    # The numpy path copies the same bytes and gives no sums.
    dst2 = [np.zeros_like(b) for b in dst]
    assert copy_planes([p.reshape(-1) for p in src], [w + pad, w // 2 + pad, w // 2 + pad],
                       dst2, native=False) is None
    for a, b in zip(dst, dst2, strict=True):
        assert np.array_equal(a, b)


@needs_native
def test_native_kernels_refuse_bad_arguments_without_crashing() -> None:
    mod = kernels_module.native_module(True)
    assert mod is not None
    y = np.zeros((64, 64), np.uint8)
    c = np.zeros((32, 32), np.uint8)
    inv = np.zeros((16, 16), np.uint16)
    inv_c = np.zeros((8, 8), np.uint16)
    with pytest.raises(ValueError, match="does not fit"):
        mod.blend(y, c, c, 56, 0, inv, inv, inv_c, inv_c)
    with pytest.raises(ValueError, match="odd"):
        mod.blend(y, c, c, 1, 0, inv, inv, inv_c, inv_c)
    with pytest.raises(ValueError, match="uint16"):
        mod.blend(y, c, c, 0, 0, inv.astype(np.uint32), inv, inv_c, inv_c)
    with pytest.raises(ValueError, match="uint8"):
        mod.blend(y.astype(np.uint16), c, c, 0, 0, inv, inv, inv_c, inv_c)
    with pytest.raises((ValueError, TypeError, BufferError)):
        mod.blend(y[::-1], c, c, 0, 0, inv, inv, inv_c, inv_c)
    readonly = y.copy()
    readonly.setflags(write=False)
    with pytest.raises((ValueError, TypeError, BufferError)):
        mod.blend(readonly, c, c, 0, 0, inv, inv, inv_c, inv_c)
    with pytest.raises(ValueError, match="smaller than the grid"):
        mod.fingerprint(np.zeros((8, 8), np.uint8), 16, 1)
    plane = np.zeros((64, 64), np.uint8)
    small = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="smaller than 64 rows"):
        mod.copy(b"\0" * 100, small, small, (64, 32, 32), plane, small, small, 16, 1)
    with pytest.raises(ValueError, match="smaller than"):
        mod.copy(plane, small, small, (63, 32, 32), plane.copy(), small, small, 16, 1)
    with pytest.raises((ValueError, TypeError, BufferError)):
        mod.copy(plane, small, small, (64, 32, 32), readonly, small, small, 16, 1)
    with pytest.raises(TypeError):
        mod.copy(plane, small, small, (64, 32), plane.copy(), small, small, 16, 1)
    with pytest.raises(ValueError, match="sums"):
        mod.fingerprint(plane, 16, 1, b"\0" * 10, 0, 16)
    with pytest.raises(ValueError, match="rows out of range"):
        mod.fingerprint(plane, 16, 1, b"\0" * 2048, 3, 17)


def test_a_native_module_of_another_interface_is_not_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale build (a _native module from another version of native/, which lacks
    or changes functions) is refused: numpy is used instead."""
    import types

    stale = types.ModuleType("vidproof.stamp._native")
    real_import = kernels_module.importlib.import_module

    def importing(name: str, *args: object) -> object:
        return stale if name.endswith("._native") else real_import(name)

    monkeypatch.setattr(kernels_module.importlib, "import_module", importing)
    assert kernels_module._import_native() is None  # no ABI: an old build
    stale.ABI = kernels_module.ABI + 1  # type: ignore[attr-defined]
    assert kernels_module._import_native() is None
    stale.ABI = kernels_module.ABI  # type: ignore[attr-defined]
    assert kernels_module._import_native() is stale
    if native_built():
        assert kernels_module._NATIVE.ABI == kernels_module.ABI  # the build in place


def test_forced_numpy_and_required_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDPROOF_NATIVE", "0")
    assert not Stamper(640, 360, **PLACE).native  # type: ignore[arg-type]
    monkeypatch.setenv("VIDPROOF_NATIVE", "1")
    if native_built():
        assert Stamper(640, 360, **PLACE).native  # type: ignore[arg-type]
    else:
        with pytest.raises(ImportError, match="not built"):
            Stamper(640, 360, **PLACE)  # type: ignore[arg-type]


_CHILD = """
import hashlib, sys
import numpy as np
import vidproof
from vidproof.stamp import Stamper, fingerprint, native_built
from vidproof.stamp import kernels
rng = np.random.default_rng(11)
frame = rng.integers(0, 256, (720 * 3 // 2, 1280), dtype=np.uint8)
s = Stamper(1280, 720, camera_id="c1", label="L", lat="1.5", lon="-2.25")
for i in range(10):
    s.apply_i420(frame, 1_700_000_000_000_000_000 + i * 40_000_000)
print(vidproof.__file__, native_built(), s.native, hashlib.sha256(frame.tobytes()).hexdigest(),
      fingerprint(frame[:720]).hex())
"""


def _reference_output() -> str:
    rng = np.random.default_rng(11)
    frame = rng.integers(0, 256, (720 * 3 // 2, 1280), dtype=np.uint8)
    s = Stamper(1280, 720, camera_id="c1", label="L", lat="1.5", lon="-2.25", native=False)
    for i in range(10):
        s.apply_i420(frame, 1_700_000_000_000_000_000 + i * 40_000_000)
    import hashlib

    return f"{hashlib.sha256(frame.tobytes()).hexdigest()} {fingerprint_numpy(frame[:720]).hex()}"


def _run_child(env_extra: dict[str, str], path: list[str] | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIDPROOF_NATIVE"}
    env.update(env_extra)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(path)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=120, cwd=path[0] if path else None)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_package_works_with_native_disabled() -> None:
    _, built, used, *rest = _run_child({"VIDPROOF_NATIVE": "0"})
    assert used == "False"
    assert " ".join(rest) == _reference_output()


def test_package_works_where_the_native_module_was_never_built(tmp_path: Path) -> None:
    """A copy of the package without the compiled module, as a machine with no C
    compiler installs it, imported first: it runs on numpy, with the same bytes."""
    copy = tmp_path / "site"
    shutil.copytree(ROOT / "vidproof", copy / "vidproof",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    where, built, used, *rest = _run_child({}, [str(copy)])
    assert Path(where).is_relative_to(copy)
    assert (built, used) == ("False", "False")
    assert " ".join(rest) == _reference_output()


def test_build_without_a_compiler_succeeds_and_skips_the_extension(tmp_path: Path) -> None:
    """setup.py marks the extension optional: no compiler, no failure, no module."""
    pytest.importorskip("setuptools")
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib",
                          str(tmp_path / "lib"), "--build-temp", str(tmp_path / "tmp")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "vidproof.stamp._native" in out.stderr and "failed" in out.stderr
    assert "vidproof._bitstream" in out.stderr
    assert not list((tmp_path / "lib").rglob("_native*"))
    assert not list((tmp_path / "lib").rglob("_bitstream*"))
