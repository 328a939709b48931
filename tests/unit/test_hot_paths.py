"""The optimised hot paths give exactly what the plain definitions give.

Recording and verifying run these once per frame, so they take shortcuts:
canonical JSON skips sorting keys that are already in order and encodes frame
entries through a template, the verifier parses canonical frame lines with one
regular expression and validates frame entries in fewer steps, frame digests hash
NAL units in place (offsets into the packet, a memoryview, a regular expression
to find start codes), the chain builds frame entries itself, and segments are
written by FFmpeg's own I/O, flushed before each checkpoint rather than after each
packet. Start-up takes shortcuts too: modules imported on first use, the keys
'vidproof keygen' writes read without cryptography's serialization module, only
the parser of the command being run built. Each shortcut is checked here against
the plain definition it replaces, and the benchmark script against rot.
"""

from __future__ import annotations

import base64
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

from tests.conftest import Keys, vidproof
from vidproof import canonical
from vidproof.canonical import CanonicalError, canonical_bytes, entry_hash, parse_frame_line
from vidproof.chain import Chain
from vidproof.digest import FrameHasher, annexb_spans, length_prefixed_spans
from vidproof.errors import KeyFormatError
from vidproof.keys import load_private_key, load_signer
from vidproof.model import GENESIS, FrameRecord, RecordError, entry_from_json, record_to_json
from vidproof.store import ChainState, EvidenceWriter, SegmentWriter
from vidproof.trust.keytypes import load_public_pem, raw_public

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


# --- Frame entries: the template, the line parser and the model's fast path. -----------

HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
INT64 = st.integers(-(2**63), 2**63 - 1)
CAMERA = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
FP = st.binary(min_size=256, max_size=256).map(lambda b: base64.b64encode(b).decode("ascii"))
TYPICAL = {
    "cam_utc_ns": st.one_of(st.none(), INT64), "camera": CAMERA, "ctx": HEX64,
    "digest": HEX64, "dts": st.one_of(st.none(), INT64), "key": st.booleans(),
    "params": HEX64, "prev": HEX64, "pts": st.one_of(st.none(), INT64),
    "seq": st.integers(0, 2**63 - 1), "tb": st.lists(st.integers(1, 2**63 - 1), min_size=2,
                                                      max_size=2),
    "type": st.just("frame"), "utc_ns": INT64, "v": st.just("vidproof/1"),
}
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False),
    st.text(max_size=4), st.text(alphabet='"\\\x00\x7fé\ud800aF', max_size=3), HEX64.map(str.upper),
    st.lists(st.integers(-2, 3), max_size=3), st.just({"a": 1}),
)


@st.composite
def frame_entries(draw: st.DrawFn, odd: bool = False) -> dict[str, Any]:
    """A frame entry, keys in canonical order, with "fp" or not; with ``odd``, some members
    of another type or value, missing, or added."""
    entry = {k: draw(v) for k, v in TYPICAL.items()}
    if draw(st.booleans()):
        items = list(entry.items())
        entry = dict(items[:5] + [("fp", draw(FP))] + items[5:])
    if odd:
        for k in draw(st.lists(st.sampled_from(sorted(entry)), max_size=3)):
            entry[k] = draw(ODD)  # an existing key keeps its place
        if draw(st.integers(0, 9)) == 0:
            del entry[draw(st.sampled_from(sorted(entry)))]
        if draw(st.integers(0, 9)) == 0:
            entry[draw(st.sampled_from(["zz", "a", "fp"]))] = draw(ODD)
    return entry


def general_bytes(value: Any) -> bytes:
    """canonical_bytes without its frame template: the general encoder."""
    text = (canonical._ENCODER_IN_ORDER if canonical._check(value) else canonical._ENCODER
            ).encode(value)
    return text.encode("utf-8")


@given(frame_entries(odd=True))
@settings(max_examples=600, deadline=None)
def test_frame_template_gives_the_general_encoding(entry: dict[str, Any]) -> None:
    fast = canonical._frame_bytes(entry)
    try:
        expected = general_bytes(entry)
    except (CanonicalError, UnicodeEncodeError):  # refused by the general path: no template
        assert fast is None
        with pytest.raises(CanonicalError):
            canonical_bytes(entry)
        return
    assert fast is None or fast == expected
    assert canonical_bytes(entry) == expected


@given(frame_entries())
@settings(max_examples=300, deadline=None)
def test_frame_entries_take_the_template_and_parse_back_as_json_does(
        entry: dict[str, Any]) -> None:
    assert canonical._frame_bytes(entry) == general_bytes(entry)  # the template is used
    line = canonical_bytes(entry) + b"\n"
    value, loaded = parse_frame_line(line), json.loads(line)
    assert value is not None
    assert list(value.items()) == list(loaded.items())
    assert [type(x) for x in value.values()] == [type(x) for x in loaded.values()]


@given(frame_entries(), st.data())
@settings(max_examples=800, deadline=None)
def test_a_changed_frame_line_parses_only_when_still_canonical(
        entry: dict[str, Any], data: st.DataObject) -> None:
    line = bytearray(canonical_bytes(entry) + b"\n")
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(line) - 1))
        byte = data.draw(st.sampled_from(b' "\\0159afAF,:{}[]-.ln\xc3\x00\n'))
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "replace":
            line[i] = byte
        elif op == "insert":
            line.insert(i, byte)
        else:
            del line[i]
    raw = bytes(line)
    value = parse_frame_line(raw)
    if value is None:
        return  # the general path (json.loads, then the canonical check) decides
    loaded = json.loads(raw)
    assert list(value.items()) == list(loaded.items())
    assert [type(x) for x in value.values()] == [type(x) for x in loaded.values()]
    assert canonical_bytes(value) + b"\n" == raw


class _NotPlainDict(dict):  # type: ignore[type-arg]
    """A dict that entry_from_json's fast path does not take: the general path decides."""


@given(frame_entries(odd=True))
@settings(max_examples=600, deadline=None)
def test_frame_fast_path_decides_as_the_general_path(entry: dict[str, Any]) -> None:
    outcomes = []
    for obj in (entry, _NotPlainDict(entry)):
        try:
            outcomes.append(entry_from_json(obj))
        except RecordError as exc:
            outcomes.append(f"RecordError: {exc}")
    assert outcomes[0] == outcomes[1]


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


def test_segment_flushed_only_before_checkpoints(tmp_path: Path) -> None:
    """The recorder's segments (flush_each=False): FFmpeg's buffer reaches the file only
    after a packet written with flush=True, and sync() refuses to run before that (an
    fsync would not cover what is still in the buffer)."""
    with av.open(str(ROOT / "tests" / "assets" / "clip.h264"), format="h264") as c:
        packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size][:10]
    tb = Fraction(1, 90000)
    path = tmp_path / "000001.ts"
    writer = SegmentWriter(path, None, "h264", tb, flush_each=False)
    for i, data in enumerate(packets[:5]):
        writer.write(data, i * 3600, i * 3600, tb, i == 0)
    with pytest.raises(RuntimeError, match="flush"):
        writer.sync()
    for i, data in enumerate(packets[5:], start=5):
        writer.write(data, i * 3600, i * 3600, tb, False, flush=i == len(packets) - 1)
    writer.sync()
    with open(path, "rb") as f:  # another descriptor, the writer still open
        flushed = f.read()
    writer.close()
    assert flushed == path.read_bytes()  # nothing was left in the buffer
    with av.open(str(path)) as c:
        muxed = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    hasher = FrameHasher("h264", None)  # MPEG-TS adds access unit delimiters: compare digests
    assert [hasher.digest(d) for d in muxed] == [hasher.digest(d) for d in packets]


def test_segment_muxes_a_demuxed_packet_as_it_is(tmp_path: Path) -> None:
    """packet=: the demuxed packet itself is muxed (no copy); the segment is the one
    made from copies of its data, timestamps and flags."""
    src = tmp_path / "src.mp4"
    with av.open(str(ROOT / "tests" / "assets" / "clip.h264"), format="h264") as c, \
            av.open(str(src), "w") as out:
        st_in = c.streams.video[0]
        st_out = out.add_stream_from_template(st_in)
        for i, p in enumerate(q for q in c.demux(st_in) if q.size):
            p.pts = p.dts = i * 3600
            p.time_base = Fraction(1, 90000)
            p.stream = st_out
            out.mux(p)
    segments = []
    for reuse in (True, False):
        path = tmp_path / f"{reuse}.ts"
        with av.open(str(src)) as c:
            stream = c.streams.video[0]
            writer = SegmentWriter(path, stream, "h264", stream.time_base, flush_each=False)
            for p in c.demux(stream):
                if p.size:
                    writer.write(bytes(p), p.pts, p.dts, p.time_base, p.is_keyframe,
                                 packet=p if reuse else None)
            writer.close()
        segments.append(path.read_bytes())
    assert segments[0] == segments[1]


# --- Start-up: only what the command needs. ----------------------------------------------

def test_keygen_keys_read_without_the_serialization_module(keys: Keys, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from vidproof.keys import write_private_key

    data = keys.key.read_bytes()
    general = serialization.load_pem_private_key(data, None)
    fast = load_private_key(keys.key, None)
    assert fast.private_bytes_raw() == general.private_bytes_raw()  # type: ignore[union-attr]
    pub = keys.pub.read_bytes()
    assert raw_public(load_public_pem(pub)) == serialization.load_pem_public_key(
        pub).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # Other forms take cryptography's loader: a P-256 key, an encrypted key, text around.
    p256 = tmp_path / "p256.key"
    write_private_key(p256, ec.generate_private_key(ec.SECP256R1()))
    assert isinstance(load_private_key(p256, None), ec.EllipticCurvePrivateKey)
    enc = tmp_path / "enc.key"
    write_private_key(enc, general, b"secret")  # type: ignore[arg-type]
    assert load_private_key(enc, b"secret").private_bytes_raw() == general.private_bytes_raw()  # type: ignore[union-attr]
    noted = tmp_path / "noted.key"
    noted.write_bytes(b"a note before the key\n" + data)
    assert load_private_key(noted, None).private_bytes_raw() == general.private_bytes_raw()  # type: ignore[union-attr]
    # A damaged key is refused as before.
    broken = tmp_path / "broken.key"
    broken.write_bytes(data.replace(data[40:44], b"!!!!"))
    with pytest.raises(KeyFormatError, match="not a PEM PKCS#8 private key"):
        load_private_key(broken, None)


def test_only_the_parser_of_the_command_is_built() -> None:
    from vidproof.cli import build_parser

    for argv in (
        ["record", "--source", "x.mp4", "--camera-id", "c", "--location", "L;1,2", "--key",
         "k", "--store", "s", "--fast", "--duration", "3"],
        ["verify", "s", "--trust", "t.pub", "--json", "--crl", "a", "--crl", "b"],
        ["export", "--store", "s", "--camera", "c", "--from", "a", "--to", "b", "--out",
         "o.zip", "--case", "1", "--officer", "me"],
        ["keygen", "--out", "d"],
        ["journal", "verify", "s", "--trust", "t.pub"],
    ):
        assert vars(build_parser(argv[0]).parse_args(argv)) == vars(
            build_parser().parse_args(argv))
    r = vidproof("--help")
    assert r.code == 0 and "record" in r.out and "verify" in r.out and "export" in r.out
    r = vidproof("recrod")
    assert r.code == 2 and "'record'" in r.err and "'verify'" in r.err


def test_record_and_verify_import_only_what_they_use(keys: Keys) -> None:
    """Certificates, CRLs, time-stamp tokens, NTP, export bundles and cryptography's
    serialization module are imported when they are met, not at every start-up."""
    code = f"""
import sys
from pathlib import Path
import vidproof.cli as cli
cli.build_parser("record"); cli.build_parser("verify")
import vidproof.capture.worker, vidproof.verify.load, vidproof.verify.report
from vidproof.keys import load_signer
from vidproof.trust.policy import load_policy
load_signer(Path({str(keys.key)!r})).key_id
load_policy(Path({str(keys.pub)!r}))
lazy = ("cryptography.x509", "cryptography.hazmat.primitives.serialization", "asn1crypto",
        "urllib.request", "http.client", "socket", "vidproof.timestamp.tsa",
        "vidproof.timestamp.ntp", "vidproof.verify.bundle", "zipfile")
print(sorted(m for m in sys.modules if m.startswith(lazy)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "[]", (
        f"imported at every start-up of record/verify: {proc.stdout.strip()}; import them "
        "where they are used (vidproof/_lazy.py), see benchmarks/README.md")


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
