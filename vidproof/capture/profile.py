"""The decree's minimum image profile, checked before a recording starts.

The French decree of 3 August 2007 (arrêté du 3 août 2007 portant définition des
normes techniques des systèmes de vidéoprotection) sets minimums for recorded
images: a camera that films people close enough to recognise them ("close-shot",
the default) needs at least 704x576 pixels (4CIF) and 12 frames per second; other
cameras (``--wide-shot``: general views, traffic) at least 352x288 (CIF) and 6 fps.

Sizes are compared orientation-free: the long side against 704 (352), the short
side against 576 (288). A frame rate the source does not declare cannot be checked;
the assessment says so. A source that repeats frames to reach its declared rate
(:mod:`vidproof.encode` counts them) is flagged separately: its real rate may be
below the minimum even when its declared rate is not.

:func:`assess` returns the assessment, recorded in the evidence context (member
``profile``); :func:`enforce` refuses a profile below the minimum unless the
operator overrides it (``--allow-below-minimum``), and the context records that
override.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..errors import UsageError

RULE = "the decree of 3 August 2007 (arrêté du 3 août 2007, video-surveillance standards)"
OVERRIDE_FLAG = "--allow-below-minimum"
WIDE_SHOT_FLAG = "--wide-shot"


@dataclass(frozen=True)
class Minimum:
    kind: str  # "close-shot" or "wide-shot"
    width: int
    height: int
    fps: int

    def describe(self) -> str:
        return f"{self.width}x{self.height} and {self.fps} fps"


CLOSE_SHOT = Minimum("close-shot", 704, 576, 12)
WIDE_SHOT = Minimum("wide-shot", 352, 288, 6)


class ProfileRefused(UsageError):
    """The source's profile is below the decree's minimum and no override was given."""


def _fps_text(fps: Fraction | None) -> str:
    if fps is None:
        return "an undeclared frame rate"
    value = float(fps)
    return f"{value:.3g} fps" if value != int(value) else f"{int(value)} fps"


@dataclass(frozen=True)
class Assessment:
    """A stream's profile against the minimum for its kind of camera."""

    minimum: Minimum
    width: int
    height: int
    fps: Fraction | None
    override: bool
    enforced: bool

    @property
    def size_ok(self) -> bool:
        long_side, short_side = max(self.width, self.height), min(self.width, self.height)
        return long_side >= self.minimum.width and short_side >= self.minimum.height

    @property
    def fps_ok(self) -> bool | None:
        """None when the source declares no frame rate (it cannot be checked)."""
        return None if self.fps is None else self.fps >= self.minimum.fps

    @property
    def meets_minimum(self) -> bool:
        return self.size_ok and self.fps_ok is not False

    def shortfalls(self) -> list[str]:
        out = []
        if not self.size_ok:
            out.append(f"{self.width}x{self.height} is below {self.minimum.width}x"
                       f"{self.minimum.height}")
        if self.fps_ok is False:
            out.append(f"{_fps_text(self.fps)} is below {self.minimum.fps} fps")
        return out

    def refusal(self) -> str:
        """The one-line message of a refused profile: the rule and how to override it."""
        other = ("" if self.minimum is WIDE_SHOT else
                 f", or {WIDE_SHOT_FLAG} if the camera does not film people close up "
                 f"({WIDE_SHOT.describe()})")
        return (f"the source's profile ({self.width}x{self.height} at {_fps_text(self.fps)}) "
                f"is below the minimum for a {self.minimum.kind} camera "
                f"({self.minimum.describe()}) set by {RULE}: "
                + "; ".join(self.shortfalls())
                + f"; record with {OVERRIDE_FLAG} to override (the override is recorded in "
                f"the evidence){other}")

    def to_json(self) -> dict[str, Any]:
        """The context's ``profile`` member (canonical JSON: integers and strings only)."""
        return {
            "camera": self.minimum.kind,
            "rule": "decree of 3 August 2007",
            "minimum": {"width": self.minimum.width, "height": self.minimum.height,
                        "fps": self.minimum.fps},
            "width": self.width, "height": self.height,
            "fps": None if self.fps is None else [self.fps.numerator, self.fps.denominator],
            "meets_minimum": self.meets_minimum,
            "fps_checked": self.fps is not None,
            "override": self.override and not self.meets_minimum,
            "enforced": self.enforced,
        }


def assess(width: int, height: int, fps: Fraction | float | None, *, wide_shot: bool,
           override: bool, enforced: bool = True) -> Assessment:
    """The profile of a ``width`` x ``height`` stream at ``fps`` against the minimum.

    ``enforced``: whether the recorder refuses a profile below the minimum (transcode
    mode; see :func:`enforce`) or only records the assessment (passthrough)."""
    rate = None if fps is None or not fps or fps != fps else Fraction(fps).limit_denominator(1001)
    return Assessment(WIDE_SHOT if wide_shot else CLOSE_SHOT, width, height, rate, override,
                      enforced)


def enforce(assessment: Assessment) -> Assessment:
    """Refuse (:class:`ProfileRefused`) a profile below the minimum, unless overridden."""
    if assessment.enforced and not assessment.meets_minimum and not assessment.override:
        raise ProfileRefused(assessment.refusal())
    return assessment
