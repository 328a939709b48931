"""The optional C start-code scanner (native/vidproof_bitstream.c) gives the offsets of
the Python reference, digest.annexb_spans_py, and the digest uses it only when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidproof import digest

try:
    from vidproof import _bitstream  # type: ignore[attr-defined]
except ImportError:  # no C compiler where the package was built
    _bitstream = None

needs_native = pytest.mark.skipif(_bitstream is None,
                                  reason="vidproof._bitstream is not built (no C compiler?)")

# Bytes that make start codes, near misses (00 00 02, 00 00 00 01) and padding likely.
_ALPHABET = st.sampled_from([0, 0, 0, 1, 3, 0x65, 0xFF])


@needs_native
@given(st.lists(_ALPHABET, max_size=300).map(bytes))
@settings(max_examples=3000, deadline=None)
def test_c_scanner_matches_the_reference(data: bytes) -> None:
    assert _bitstream.annexb_spans(data) == digest.annexb_spans_py(data)


@needs_native
@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00", b"\x00\x00\x01",
                                  b"\x00\x00\x01\x00", b"\x00\x00\x00\x01\x65\x00\x00",
                                  b"\x00\x00\x01\x67\x00\x00\x01\x68\x00\x00\x00\x01\x65\x01",
                                  b"\x65\x00\x00\x01", b"\x00\x00\x02\x00\x00\x01\x41"])
def test_c_scanner_edge_cases(data: bytes) -> None:
    assert _bitstream.annexb_spans(data) == digest.annexb_spans_py(data)
    assert _bitstream.annexb_spans(memoryview(data)) == digest.annexb_spans_py(data)


@needs_native
def test_c_scanner_on_a_real_stream() -> None:
    """Annex B access units from libx264 (SPS, PPS, SEI and slices): same offsets, and
    the module the digest took is the C one."""
    assert digest.annexb_spans is _bitstream.annexb_spans
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"x264-params": "keyint=10:bframes=0:slices=3"}
    packets = []
    with av.open("testsrc2=size=320x240:rate=25", format="lavfi") as graph:
        for i, frame in enumerate(graph.decode(video=0)):
            if i == 30:
                break
            frame.pts = i
            packets += codec.encode(frame)
    packets += codec.encode(None)
    assert len(packets) == 30
    for p in packets:
        spans = _bitstream.annexb_spans(memoryview(p))
        assert spans == digest.annexb_spans_py(bytes(p))
        assert len(spans) >= 3  # three slices, at least


def test_the_reference_is_used_when_native_code_is_turned_off() -> None:
    env = dict(os.environ, VIDPROOF_NATIVE="0")
    out = subprocess.run([sys.executable, "-c", "from vidproof import digest; "
                          "print(digest.annexb_spans is digest.annexb_spans_py)"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
