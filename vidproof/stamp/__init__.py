"""Burned-in stamp and frame fingerprints: the hot path of transcode mode.

* :class:`Stamper` burns date and time (UTC and local, to the millisecond), camera
  and location into YUV 4:2:0 planes, in place, redrawing only what changed.
* :func:`fingerprint` gives a 256-byte perceptual signature of a luma plane, and
  :func:`distance` / :func:`distances` compare them.

Both run in numpy, or in the optional C kernels (``native/``) when built; the
results are the same bytes. ``VIDPROOF_NATIVE=0`` forces numpy.
"""

from .blend import CORNERS, STYLES, Stamper, StampStyle, frame_planes, split_i420
from .fingerprint import GRID as FINGERPRINT_GRID
from .fingerprint import SIZE as FINGERPRINT_SIZE
from .fingerprint import VERSION as FINGERPRINT_VERSION
from .fingerprint import distance, distances, fingerprint
from .kernels import NativeUnavailable, native_built

__all__ = [
    "CORNERS", "FINGERPRINT_GRID", "FINGERPRINT_SIZE", "FINGERPRINT_VERSION", "STYLES",
    "NativeUnavailable", "StampStyle", "Stamper", "distance", "distances", "fingerprint",
    "frame_planes", "native_built", "split_i420",
]
