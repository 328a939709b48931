"""The decree's minimum profiles (vidproof/capture/profile.py)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from vidproof.canonical import canonical_bytes
from vidproof.capture.profile import (
    CLOSE_SHOT,
    OVERRIDE_FLAG,
    WIDE_SHOT,
    ProfileRefused,
    assess,
    enforce,
)
from vidproof.errors import UsageError


@pytest.mark.parametrize(("w", "h", "fps", "wide", "ok"), [
    (704, 576, 12, False, True),
    (1920, 1080, 25, False, True),
    (576, 704, 12, False, True),      # portrait: orientation-free
    (720, 576, Fraction(25), False, True),
    (703, 576, 25, False, False),
    (704, 574, 25, False, False),
    (640, 480, 30, False, False),
    (1280, 720, 11, False, False),
    (1280, 720, Fraction(12000, 1001), False, False),  # 11.988 fps
    (352, 288, 6, True, True),
    (1280, 720, 6, True, True),
    (350, 288, 6, True, False),
    (352, 288, 5, True, False),
    (704, 576, 6, False, False),      # enough for a wide shot, not for a close shot
])
def test_minimums(w: int, h: int, fps: float, wide: bool, ok: bool) -> None:
    a = assess(w, h, fps, wide_shot=wide, override=False)
    assert a.minimum is (WIDE_SHOT if wide else CLOSE_SHOT)
    assert a.meets_minimum is ok
    assert a.to_json()["meets_minimum"] is ok
    if ok:
        assert enforce(a) is a
        assert a.shortfalls() == []
    else:
        with pytest.raises(ProfileRefused):
            enforce(a)


def test_minimum_values_are_the_decree_s() -> None:
    assert (CLOSE_SHOT.width, CLOSE_SHOT.height, CLOSE_SHOT.fps) == (704, 576, 12)
    assert (WIDE_SHOT.width, WIDE_SHOT.height, WIDE_SHOT.fps) == (352, 288, 6)


def test_refusal_names_the_rule_and_the_override() -> None:
    a = assess(640, 360, 25, wide_shot=False, override=False)
    with pytest.raises(UsageError) as exc:  # the CLI turns it into exit 2, one line
        enforce(a)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "decree of 3 August 2007" in msg
    assert OVERRIDE_FLAG in msg and "--wide-shot" in msg
    assert "640x360 is below 704x576" in msg
    assert "fps is below" not in msg  # 25 fps is fine: only what falls short is named
    wide = assess(320, 240, 5, wide_shot=True, override=False)
    msg = wide.refusal()
    assert "320x240 is below 352x288" in msg and "5 fps is below 6 fps" in msg
    assert "--wide-shot" not in msg  # already a wide shot: nothing lower to suggest


def test_override_lets_it_through_and_is_recorded() -> None:
    a = enforce(assess(640, 360, 25, wide_shot=False, override=True))
    j = a.to_json()
    assert (j["meets_minimum"], j["override"], j["enforced"]) == (False, True, True)
    # An override that was not needed is not recorded as one.
    assert assess(1920, 1080, 25, wide_shot=False, override=True).to_json()["override"] is False


def test_passthrough_assessment_is_not_enforced() -> None:
    a = assess(320, 240, 25, wide_shot=False, override=False, enforced=False)
    assert enforce(a) is a and not a.meets_minimum
    assert a.to_json()["enforced"] is False


def test_undeclared_rate_is_not_checked_but_said() -> None:
    a = assess(1280, 720, None, wide_shot=False, override=False)
    assert a.fps_ok is None and a.meets_minimum
    j = a.to_json()
    assert j["fps"] is None and j["fps_checked"] is False
    assert not assess(640, 480, None, wide_shot=False, override=False).meets_minimum


def test_context_member_is_canonical_json() -> None:
    """No floats: a rate of 29.97 fps is written as a fraction."""
    j = assess(1920, 1080, 30000 / 1001, wide_shot=False, override=False).to_json()
    assert j["fps"] == [30000, 1001]
    canonical_bytes(j)  # raises on a float
