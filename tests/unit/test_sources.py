"""Unit tests of the RTSP source's pure parts: back-off, camera clock, URL handling.
The source against a real camera: tests/e2e/test_rtsp.py."""

from __future__ import annotations

import socket
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import pytest

from vidproof.capture.sources import Backoff, _camera_clock_ns, open_source, redact, rtsp
from vidproof.errors import SourceError, UsageError


def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    b = Backoff(first=0.5, maximum=5.0)
    assert [b.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    b.reset()
    assert b.next() == 0.5


@pytest.mark.parametrize(("first", "maximum"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_rejects_nonsense(first: float, maximum: float) -> None:
    with pytest.raises(ValueError):
        Backoff(first=first, maximum=maximum)


def test_camera_clock_maps_pts_zero_to_start_time_realtime() -> None:
    # FFmpeg's RTSP demuxer sets start_time_realtime to the first sender report's
    # NTP time moved back to pts 0 (libavformat/rtsp.c, rtcp_ts_offset), in µs.
    container = SimpleNamespace(start_time_realtime=1_700_000_000_123_456)
    tb = Fraction(1, 90000)
    assert _camera_clock_ns(container, 0, tb) == 1_700_000_000_123_456_000
    assert _camera_clock_ns(container, 3600, tb) == 1_700_000_000_163_456_000  # +40 ms
    assert _camera_clock_ns(container, 1, tb) == 1_700_000_000_123_467_111  # 11.1 µs
    assert _camera_clock_ns(container, None, tb) is None


@pytest.mark.parametrize("realtime", [None, 0, -5])
def test_camera_clock_is_unknown_before_a_sender_report(realtime: int | None) -> None:
    container = SimpleNamespace(start_time_realtime=realtime)
    assert _camera_clock_ns(container, 3600, Fraction(1, 90000)) is None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rtsp_and_rtsps_take_the_same_path_and_connect_lazily() -> None:
    port = closed_port()
    for scheme in ("rtsp", "rtsps"):
        source = open_source(f"{scheme}://127.0.0.1:{port}/cam", fast=False, duration=1)
        with pytest.raises(SourceError, match=f"cannot open {scheme}://127.0.0.1:{port}/cam: "
                           "Connection refused"):
            next(source)


def test_unsupported_scheme_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="rtsp:// or rtsps://"):
        open_source("http://127.0.0.1/cam", fast=False, duration=1)


def test_errors_never_carry_credentials() -> None:
    assert redact("rtsps://admin:s3cret@cam.local:322/live") == "rtsps://cam.local:322/live"
    with pytest.raises(SourceError) as err:
        next(rtsp(f"rtsp://admin:s3cret@127.0.0.1:{closed_port()}/cam", duration=1,
                  clock=time.time_ns))
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)


def test_missing_tls_ca_is_a_usage_error(tmp_path: Path) -> None:
    source = rtsp("rtsps://127.0.0.1:9/cam", duration=1, clock=time.time_ns,
                  tls_ca=tmp_path / "no-such-ca.pem")
    with pytest.raises(UsageError, match="does not exist"):
        next(source)
