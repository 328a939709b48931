"""The optimised hot paths give exactly what the plain definitions give.

Recording and verifying run these once per frame, so they take shortcuts:
canonical JSON skips sorting keys that are already in order, frame digests hash
NAL units in place (offsets into the packet, a memoryview, a regular expression
to find start codes), the chain builds frame entries itself, and segments are
written by FFmpeg's own I/O. Each shortcut is checked here against the plain
definition it replaces, and the benchmark script against rot.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Keys
from vidproof.canonical import CanonicalError, canonical_bytes, entry_hash
from vidproof.chain import Chain
from vidproof.digest import FrameHasher, annexb_spans, length_prefixed_spans
from vidproof.keys import load_signer
from vidproof.model import GENESIS, FrameRecord, record_to_json
from vidproof.store import ChainState, EvidenceWriter, SegmentWriter

ROOT = Path(__file__).resolve().parents[2]


# --- Canonical JSON: the in-order shortcut is the same encoding. ------------------------

def reference_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


keys = st.sampled_from(["a", "b", "c", "aa", "B", "_", "z1", "seq", "v", ""])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5).map(lambda d: dict(sorted(d.items()))),
        st.dictionaries(keys, inner, max_size=3).map(OrderedDict),
    ),
    max_leaves=20,
)


@given(values)
@settings(max_examples=400, deadline=None)
def test_canonical_bytes_equal_the_sorting_encoder(value: Any) -> None:
    try:
        expected = reference_canonical(value)
    except UnicodeEncodeError:  # a lone surrogate: refused by both
        with pytest.raises(CanonicalError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def test_canonical_out_of_order_keys_are_still_sorted() -> None:
    value = {"b": {"y": 1, "x": [{"d": 1, "c": 2}]}, "a": True}
    assert canonical_bytes(value) == b'{"a":true,"b":{"x":[{"c":2,"d":1}],"y":1}}'
    assert canonical_bytes(dict(sorted(value.items()))) == canonical_bytes(value)


@pytest.mark.parametrize("bad", [
    {"a": 1.5}, [{"b": [2**63]}], {"a": {"b": -(2**63) - 1}}, {"é": 1}, {1: 2},
    {"a": {"b": object()}}, {"a": (1, 2.0)},
])
def test_canonical_still_refuses(bad: Any) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(bad)


@pytest.mark.parametrize("depth, ok", [(16, True), (17, False)])
def test_canonical_depth_limit_unchanged(depth: int, ok: bool) -> None:
    for leaf in (1, "x", None, {}, []):
        value: Any = leaf
        for i in range(depth):
            value = [value] if i % 2 else {"k": value}
        if ok:
            assert canonical_bytes(value) == reference_canonical(value)
        else:
            with pytest.raises(CanonicalError, match="nesting"):
                canonical_bytes(value)


# --- Frame digests: spans and memoryviews give the plain digest. ------------------------

def reference_annexb(data: bytes) -> list[bytes]:
    nals, start = [], data.find(b"\x00\x00\x01")
    while start >= 0:
        nxt = data.find(b"\x00\x00\x01", start + 3)
        nal = data[start + 3 : len(data) if nxt < 0 else nxt].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        start = nxt
    return nals


@given(st.lists(st.sampled_from([b"\x00", b"\x01", b"\x03", b"\x65", b"\x41", b"\x00\x00"]),
                max_size=40).map(b"".join))
@settings(max_examples=500, deadline=None)
def test_annexb_spans_match_start_code_splitting(data: bytes) -> None:
    assert [data[b:e] for b, e in annexb_spans(data)] == reference_annexb(data)
    assert annexb_spans(memoryview(data)) == annexb_spans(data)


def test_length_prefixed_spans_drop_trailing_zero_bytes() -> None:
    data = b"\x00\x00\x00\x03\x65\x01\x00" + b"\x00\x00\x00\x02\x41\x02"
    assert [data[b:e] for b, e in length_prefixed_spans(data)] == [b"\x65\x01", b"\x41\x02"]


def reference_digest(hasher: FrameHasher, data: bytes) -> str:
    h = hashlib.sha256()
    for nal in hasher.nal_units(data):
        if nal[0] & 0x1F in (1, 2, 3, 4, 5):
            h.update(len(nal).to_bytes(4, "big") + nal)
    return h.hexdigest()


def test_frame_digest_of_real_segments(pristine_store: Path) -> None:
    """Every access unit of the recorded segments (Annex B, with SPS/PPS in band) and of
    an MP4 copy (length-prefixed): spans, memoryview and copy give the same digest."""
    segment = sorted((pristine_store / "cam1" / "segments").glob("*.ts"))[0]
    frames = 0
    with av.open(str(segment)) as c:
        s = c.streams.video[0]
        extradata = bytes(s.codec_context.extradata) if s.codec_context.extradata else None
        by_copy, by_view, plain = (FrameHasher("h264", extradata) for _ in range(3))
        for packet in c.demux(s):
            if not packet.size:
                continue
            data = bytes(packet)
            a, b = by_copy.digest(data), by_view.digest(memoryview(packet))
            assert a == b
            assert a.digest == reference_digest(plain, data)
            frames += 1
    assert frames > 50


# --- The chain's frame entries are record_to_json's. ------------------------------------

def test_chain_frame_entry_is_the_model_entry(tmp_path: Path, keys: Keys) -> None:
    log = EvidenceWriter(tmp_path / "evidence.jsonl")
    chain = Chain("cam1", load_signer(keys.key), log, ChainState(0, GENESIS, GENESIS, "none"),
                  lambda: None)
    chain.context({"camera_id": "cam1"}, 1)
    cases = [
        dict(utc_ns=1, pts=None, dts=None, tb=(1, 90000), key=True, digest="c" * 64,
             params="d" * 64, cam_utc_ns=None),
        dict(utc_ns=2**62, pts=-5, dts=7, tb=(1001, 30000), key=False, digest="e" * 64,
             params="f" * 64, cam_utc_ns=123),
    ]
    expected = []
    for case in cases:
        seq, head, ctx = chain.seq, chain.head, chain.ctx
        assert chain.frame(**case) == seq
        entry = record_to_json(FrameRecord(
            "cam1", seq, head, case["utc_ns"], ctx, case["pts"], case["dts"], case["tb"],
            case["key"], case["digest"], case["params"], case["cam_utc_ns"]))
        expected.append(canonical_bytes(entry))
        assert chain.head == entry_hash(entry)
    chain.checkpoint(3)
    log.close()
    lines = (tmp_path / "evidence.jsonl").read_bytes().splitlines()
    assert lines[1:3] == expected
    assert chain.last_checkpoint == entry_hash(json.loads(lines[-1]))


# --- Segments: FFmpeg's own I/O, each packet in the file as soon as it is muxed. --------

def test_segment_packets_reach_the_file_before_close(tmp_path: Path) -> None:
    path = tmp_path / "000001.ts"
    writer = SegmentWriter(path, None, "h264", Fraction(1, 90000))
    with av.open(str(ROOT / "tests" / "assets" / "clip.h264"), format="h264") as c:
        packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size][:10]
    for i, data in enumerate(packets):
        writer.write(data, i * 3600, i * 3600, Fraction(1, 90000), i == 0)
    writer.sync()
    size = path.stat().st_size  # read by another descriptor, the writer still open
    assert size >= sum(map(len, packets))
    with open(path, "rb") as f:
        assert f.read(1) == b"\x47"  # an MPEG-TS sync byte
    writer.close()
    with av.open(str(path)) as c:
        assert sum(1 for p in c.demux(c.streams.video[0]) if p.size) == len(packets)
    with pytest.raises(FileExistsError):
        SegmentWriter(path, None, "h264", Fraction(1, 90000))


# --- The benchmark script runs (a short input, one run each). ---------------------------

@pytest.mark.slow
def test_benchmark_script_runs(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "record.py"), "--seconds", "2",
         "--repeat", "1", "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    for row in ("record  vidproof", "record  floor", "verify  vidproof", "verify  floor"):
        assert row in proc.stdout
    assert proc.stdout.count("vidproof/floor =") == 2
    assert "50 frames" in proc.stdout
