"""The two hot-path kernels, in numpy (the reference) and in C (optional).

Both are integer arithmetic with explicit rounding, so that the C kernels in
``native/`` give the same bytes as numpy:

* blend, per pixel of a plane under the stamp, with ``inv`` (0..256, the weight of
  the background) and ``ta`` (the stamp's contribution, pre-multiplied, plus 128
  for rounding), both uint16::

      out = (bg * inv + ta) >> 8

  ``bg * inv + ta`` never exceeds 65535 (see ``blend.py``), so uint16 holds it.
* fingerprint sums: see ``fingerprint.py``.

The C kernels are the extension module ``vidproof.stamp._native``, built by the
package build when a C compiler is present. ``VIDPROOF_NATIVE=0`` forces numpy;
``VIDPROOF_NATIVE=1`` makes a missing native module an error; unset (or ``auto``)
uses it when it is there.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np

ENV = "VIDPROOF_NATIVE"


class NativeUnavailable(ImportError):
    """The native kernels were required (``VIDPROOF_NATIVE=1``) but are not built."""


#: The C kernels' interface that this code calls (``ABI`` in native/vidproof_native.c).
ABI = 2


def _import_native() -> ModuleType | None:
    try:
        mod = importlib.import_module(f"{__package__}._native")
    except ImportError:
        return None
    # A module built from another version of native/ (a stale build in place): not used.
    return mod if getattr(mod, "ABI", None) == ABI else None


_NATIVE = _import_native()


def native_built() -> bool:
    """Whether the C kernels were built and import."""
    return _NATIVE is not None


def native_module(use: bool | None = None) -> ModuleType | None:
    """The C kernels to use, or None for numpy.

    ``use``: True requires them, False refuses them, None follows ``VIDPROOF_NATIVE``.
    """
    if use is None:
        setting = os.environ.get(ENV, "auto").strip().lower()
        if setting in ("0", "false", "no", "off"):
            return None
        use = True if setting in ("1", "true", "yes", "on") else None
    if use is False:
        return None
    if _NATIVE is None and use:
        raise NativeUnavailable(
            "the native stamp kernels (vidproof.stamp._native) are not built; "
            f"reinstall with a C compiler present, or set {ENV}=0 to use numpy")
    return _NATIVE


def blend_plane(plane: np.ndarray, x0: int, y0: int, inv: np.ndarray, ta: np.ndarray,
                tmp: np.ndarray) -> None:
    """numpy reference: blend one plane in place under the block at (x0, y0)."""
    h, w = inv.shape
    region = plane[y0:y0 + h, x0:x0 + w]
    np.copyto(tmp, region)  # widen first: same-type ufunc loops are the fast ones
    np.multiply(tmp, inv, out=tmp)
    np.add(tmp, ta, out=tmp)
    np.right_shift(tmp, 8, out=region, casting="unsafe")
