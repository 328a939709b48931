"""Container-independent frame digests (docs/FORMAT.md section 3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ffmpeg
from vidproof.digest import (
    BitstreamError,
    FrameHasher,
    nal_type,
    split_annexb,
    split_length_prefixed,
)

CLIP = Path(__file__).resolve().parents[1] / "assets" / "clip.h264"
AUD = b"\x09\xf0"
SEI = b"\x06\x05\x01\x41\x80"  # user_data_unregistered, 1 byte, then rbsp trailing bits


def clip_packets() -> list[bytes]:
    """The test clip's access units (Annex B; SPS/PPS/SEI in the keyframes)."""
    with av.open(str(CLIP), format="h264") as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def annexb(nals: list[bytes], long_codes: bool = True) -> bytes:
    code = b"\x00\x00\x00\x01" if long_codes else b"\x00\x00\x01"
    return b"".join(code + n for n in nals)


def length_prefixed(nals: list[bytes], size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


def avcc(sps: bytes, pps: bytes, length_size: int = 4) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15) holding one SPS and one PPS."""
    return (bytes([1, sps[1], sps[2], sps[3], 0xFC | (length_size - 1), 0xE1])
            + len(sps).to_bytes(2, "big") + sps + b"\x01" + len(pps).to_bytes(2, "big") + pps)


def reference_digest(nals: list[bytes]) -> str:
    """The definition, written out: SHA-256 over 4-byte BE length || NAL unit, in order."""
    return hashlib.sha256(b"".join(len(n).to_bytes(4, "big") + n for n in nals)).hexdigest()


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    return clip_packets()


def test_digest_is_sha256_of_length_prefixed_vcl_units(packets: list[bytes]) -> None:
    hasher = FrameHasher("h264", None)
    for data in packets:
        nals = split_annexb(data)
        vcl = [n for n in nals if 1 <= n[0] & 0x1F <= 5]
        params = sorted(n for n in nals if n[0] & 0x1F in (7, 8))
        fd = hasher.digest(data)
        assert fd.digest == reference_digest(vcl)
        assert fd.vcl_units == len(vcl)
        if params:
            assert fd.params == reference_digest(params)


def test_annexb_and_length_prefixed_give_the_same_digests(packets: list[bytes]) -> None:
    first = split_annexb(packets[0])
    sps = next(n for n in first if n[0] & 0x1F == 7)
    pps = next(n for n in first if n[0] & 0x1F == 8)
    for length_size in (4, 2):
        a, b = FrameHasher("h264", None), FrameHasher("h264", avcc(sps, pps, length_size))
        assert b.length_size == length_size
        for data in packets:
            # MP4/MKV style: no parameter sets in band (they live in avcC), no AUD.
            nals = [n for n in split_annexb(data) if n[0] & 0x1F not in (7, 8)]
            da, db = a.digest(data), b.digest(length_prefixed(nals, length_size))
            assert (da.digest, da.params) == (db.digest, db.params)


def test_stock_ffmpeg_remux_to_mp4_keeps_every_digest(packets: list[bytes],
                                                      tmp_path: Path) -> None:
    mp4 = tmp_path / "clip.mp4"
    ffmpeg("-r", "10", "-i", CLIP, "-c", "copy", mp4)
    with av.open(str(mp4)) as c:
        stream = c.streams.video[0]
        extradata = bytes(stream.codec_context.extradata)
        assert extradata[0] == 1  # avcC: length-prefixed samples
        remuxed = FrameHasher("h264", extradata)
        got = [remuxed.digest(bytes(p)) for p in c.demux(stream) if p.size]
    original = FrameHasher("h264", None)
    want = [original.digest(p) for p in packets]
    assert [(g.digest, g.params) for g in got] == [(w.digest, w.params) for w in want]


def test_start_code_length_aud_sei_and_trailing_zeros_do_not_count(packets: list[bytes]) -> None:
    data = packets[1]
    nals = split_annexb(data)
    base = FrameHasher("h264", None).digest(data).digest
    variants = [
        annexb(nals, long_codes=False),
        annexb([AUD, *nals]),
        annexb([AUD, SEI, *nals]),
        annexb(nals) + b"\x00\x00\x00",  # trailing_zero_8bits
        annexb([AUD]) + b"\x00" + annexb([SEI]) + b"\x00\x00" + annexb(nals),
    ]
    for v in variants:
        assert FrameHasher("h264", None).digest(v).digest == base


def test_any_change_to_the_picture_changes_the_digest(packets: list[bytes]) -> None:
    data = bytearray(packets[1])
    base = FrameHasher("h264", None).digest(bytes(data)).digest
    data[-5] ^= 0x40
    assert FrameHasher("h264", None).digest(bytes(data)).digest != base


def test_parameter_set_change_changes_params_digest_only(packets: list[bytes]) -> None:
    nals = split_annexb(packets[0])
    sps = next(n for n in nals if n[0] & 0x1F == 7)
    other_sps = sps[:-1] + bytes([sps[-1] ^ 0x02])
    changed = [other_sps if n == sps else n for n in nals]
    h1, h2 = FrameHasher("h264", None), FrameHasher("h264", None)
    d1, d2 = h1.digest(packets[0]), h2.digest(annexb(changed))
    assert d1.digest == d2.digest
    assert d1.params != d2.params
    # The set in force carries over to the frames that follow, which bear no parameter sets.
    assert h1.digest(packets[1]).params == d1.params
    assert h2.digest(packets[1]).params == d2.params


def test_parameter_sets_in_extradata_and_in_band_agree(packets: list[bytes]) -> None:
    nals = split_annexb(packets[0])
    ps = [n for n in nals if n[0] & 0x1F in (7, 8)]
    from_band = FrameHasher("h264", None).digest(packets[0]).params
    assert FrameHasher("h264", annexb(ps)).params_digest == from_band       # Annex B extradata
    assert FrameHasher("h264", avcc(ps[0], ps[1])).params_digest == from_band  # avcC
    assert FrameHasher("h264", annexb(ps[::-1])).params_digest == from_band  # order-free


def test_without_parameter_sets_the_params_digest_is_that_of_nothing(
        packets: list[bytes]) -> None:
    assert FrameHasher("h264", None).digest(packets[1]).params == hashlib.sha256().hexdigest()


@pytest.mark.parametrize("data", [
    b"\x00\x00",                          # shorter than a length prefix
    b"\x00\x00\x00\x10\x65\x88",          # length overruns the packet
    b"\x00\x00\x00\x02\x65\x88\x00\x00",  # second prefix cut short
    b"\x00\x00\x00\x00",                  # zero length
])
def test_truncated_length_prefix_raises(data: bytes) -> None:
    with pytest.raises(BitstreamError):
        split_length_prefixed(data, 4)
    with pytest.raises(BitstreamError):
        FrameHasher("h264", None).digest(data)


def test_truncated_avcc_raises() -> None:
    with pytest.raises(BitstreamError):
        FrameHasher("h264", b"\x01\x42\xc0\x0a\xff\xe1\x00\x20\x67")


def test_access_unit_without_any_nal_unit_raises() -> None:
    with pytest.raises(BitstreamError):
        FrameHasher("h264", None).digest(b"")
    with pytest.raises(BitstreamError):
        FrameHasher("h264", None).digest(annexb([AUD]))


def test_unsupported_codec_refused() -> None:
    with pytest.raises(BitstreamError):
        FrameHasher("vp9", None)


def hevc_nal(kind: int, payload: bytes) -> bytes:
    return bytes([kind << 1, 0x01]) + payload


def test_hevc_types() -> None:
    vps, sps, pps = hevc_nal(32, b"\x0c"), hevc_nal(33, b"\x01\x60"), hevc_nal(34, b"\xc1")
    aud, sei = hevc_nal(35, b"\x50"), hevc_nal(39, b"\x05\x01\x41\x80")
    idr, trail = hevc_nal(19, b"\xaf\x12\x80"), hevc_nal(1, b"\x26\x80")
    assert [nal_type("hevc", n) for n in (vps, sps, pps, aud, sei, idr)] == [
        32, 33, 34, 35, 39, 19]
    h = FrameHasher("hevc", None)
    fd = h.digest(annexb([aud, vps, sps, pps, sei, idr, trail]))
    assert fd.digest == reference_digest([idr, trail])
    assert fd.params == reference_digest(sorted([vps, sps, pps]))
    assert fd.vcl_units == 2


def test_hvcc_extradata() -> None:
    vps, sps, pps = hevc_nal(32, b"\x0c\x01"), hevc_nal(33, b"\x01\x60"), hevc_nal(34, b"\xc1")
    record = bytearray(23)
    record[0] = 1
    record[21] = 0xFC | 3  # lengthSizeMinusOne = 3
    record[22] = 3
    for n in (vps, sps, pps):
        record += bytes([0x80 | nal_type("hevc", n)]) + b"\x00\x01" + len(n).to_bytes(2, "big") + n
    h = FrameHasher("hevc", bytes(record))
    assert h.length_size == 4
    assert h.params_digest == reference_digest(sorted([vps, sps, pps]))
    idr = hevc_nal(19, b"\xaf\x12\x80")
    assert h.digest(length_prefixed([idr])).digest == reference_digest([idr])


def escape(rbsp: bytes) -> bytes:
    """Emulation prevention (H.264 7.4.1): no 00 00 0x (x <= 3) inside a NAL unit."""
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    if out and out[-1] == 0:
        out.append(3)
    return bytes(out)


h264_nal = st.builds(
    lambda kind, body: bytes([0x60 | kind]) + escape(body),
    st.sampled_from([1, 5, 6, 9, 7, 8]), st.binary(min_size=1, max_size=300))


@given(st.lists(h264_nal, min_size=1, max_size=8).filter(
    lambda ns: any(1 <= n[0] & 0x1F <= 5 for n in ns)),
    st.booleans(), st.sampled_from([1, 2, 4]))
def test_framings_agree(nals: list[bytes], long_codes: bool, size: int) -> None:
    """Annex B (3- or 4-byte start codes) and length prefixes of any size: one digest."""
    vcl = [n for n in nals if 1 <= n[0] & 0x1F <= 5]
    if size == 1 and any(len(n) > 255 for n in nals):
        return
    assert split_annexb(annexb(nals, long_codes)) == nals
    assert split_length_prefixed(length_prefixed(nals, size), size) == nals
    a = FrameHasher("h264", None).digest(annexb(nals, long_codes))
    sps = b"\x67\x42\xc0\x0a"
    b = FrameHasher("h264", avcc(sps, b"\x68\xce", size))
    b_digest = b.digest(length_prefixed(nals, size))
    assert a.digest == b_digest.digest == reference_digest(vcl)
