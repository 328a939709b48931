"""Container-independent frame digests for H.264 and H.265.

A frame digest is SHA-256 over the frame's VCL NAL units in decoding order,
each prefixed with its length as 4 bytes big-endian. Container framing (Annex B
start codes or length prefixes), access-unit delimiters, SEI and parameter sets
that muxers move between the bitstream and the extradata do not enter it.

The parameter sets in force (SPS/PPS, and VPS for H.265) get their own digest,
recorded beside the frame digest, so a change to them is detected too.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

H264 = "h264"
HEVC = "hevc"
SUPPORTED_CODECS = (H264, HEVC)

_VCL = {H264: frozenset(range(1, 6)), HEVC: frozenset(range(0, 32))}
_PARAM_SETS = {H264: frozenset((7, 8)), HEVC: frozenset((32, 33, 34))}
_LEN = struct.Struct(">I")


class BitstreamError(ValueError):
    """Packet data is not a well-formed H.264/H.265 access unit."""


def nal_type(codec: str, nal: bytes | memoryview) -> int:
    if not nal:
        raise BitstreamError("empty NAL unit")
    first = nal[0]
    return first & 0x1F if codec == H264 else (first >> 1) & 0x3F


def is_annexb(data: bytes) -> bool:
    return data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"


def split_annexb(data: bytes) -> list[bytes]:
    """Split Annex B data on start codes; trailing zero bytes belong to no NAL unit."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        nal = data[begin:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        start = nxt
    return nals


def split_length_prefixed(data: bytes, length_size: int = 4) -> list[bytes]:
    nals: list[bytes] = []
    pos, size = 0, len(data)
    while pos < size:
        if pos + length_size > size:
            raise BitstreamError("truncated NAL length prefix")
        n = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if n == 0 or pos + n > size:
            raise BitstreamError(f"NAL length {n} overruns the packet ({size - pos} bytes left)")
        nals.append(data[pos : pos + n])
        pos += n
    return nals


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise BitstreamError("truncated decoder configuration record")
    return int.from_bytes(data[pos : pos + 2], "big")


def _avcc_param_sets(extradata: bytes) -> tuple[int, list[bytes]]:
    if len(extradata) < 7:
        raise BitstreamError("avcC record too short")
    length_size = (extradata[4] & 3) + 1
    nals: list[bytes] = []
    pos = 5
    for group in range(2):
        count = extradata[pos] & (0x1F if group == 0 else 0xFF)
        pos += 1
        for _ in range(count):
            n = _u16(extradata, pos)
            nals.append(extradata[pos + 2 : pos + 2 + n])
            pos += 2 + n
        if pos >= len(extradata) and group == 0:
            raise BitstreamError("avcC record has no PPS count")
    return length_size, nals


def _hvcc_param_sets(extradata: bytes) -> tuple[int, list[bytes]]:
    if len(extradata) < 23:
        raise BitstreamError("hvcC record too short")
    length_size = (extradata[21] & 3) + 1
    nals: list[bytes] = []
    arrays = extradata[22]
    pos = 23
    for _ in range(arrays):
        pos += 1  # array_completeness, reserved, NAL_unit_type
        count = _u16(extradata, pos)
        pos += 2
        for _ in range(count):
            n = _u16(extradata, pos)
            nals.append(extradata[pos + 2 : pos + 2 + n])
            pos += 2 + n
    return length_size, nals


def _digest_nals(nals: list[bytes]) -> str:
    h = hashlib.sha256()
    for nal in nals:
        h.update(_LEN.pack(len(nal)))
        h.update(nal)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class FrameDigest:
    digest: str
    params: str
    vcl_units: int


class FrameHasher:
    """Digests the access units of one video stream, tracking the parameter sets in force."""

    def __init__(self, codec: str, extradata: bytes | None) -> None:
        if codec not in SUPPORTED_CODECS:
            raise BitstreamError(f"codec {codec!r} is not supported (expected h264 or hevc)")
        self.codec = codec
        self._vcl = _VCL[codec]
        self._ps_types = _PARAM_SETS[codec]
        self.length_size: int | None = None
        params: list[bytes] = []
        if extradata:
            if extradata[0] == 1:
                parse = _avcc_param_sets if codec == H264 else _hvcc_param_sets
                self.length_size, params = parse(bytes(extradata))
            else:
                params = split_annexb(bytes(extradata))
        self._params = [p for p in params if p and nal_type(codec, p) in self._ps_types]
        self._params_digest = _digest_nals(sorted(self._params))

    @property
    def params_digest(self) -> str:
        return self._params_digest

    def nal_units(self, data: bytes) -> list[bytes]:
        if self.length_size is not None and data[:4] != b"\x00\x00\x00\x01":
            # A 4-byte length of 256..511 starts with 00 00 01 too: with avcC/hvcC
            # extradata, length prefixes come first; Annex B only if they do not fit.
            try:
                return split_length_prefixed(data, self.length_size)
            except BitstreamError:
                if not is_annexb(data):
                    raise
        if is_annexb(data):
            return split_annexb(data)
        return split_length_prefixed(data, self.length_size or 4)

    def digest(self, data: bytes) -> FrameDigest:
        vcl: list[bytes] = []
        params: list[bytes] = []
        for nal in self.nal_units(data):
            kind = nal_type(self.codec, nal)
            if kind in self._vcl:
                vcl.append(nal)
            elif kind in self._ps_types:
                params.append(nal)
        if params:
            ordered = sorted(params)
            if ordered != sorted(self._params):
                self._params = params
                self._params_digest = _digest_nals(ordered)
        if not vcl:
            raise BitstreamError("access unit has no picture data (no VCL NAL unit)")
        return FrameDigest(_digest_nals(vcl), self._params_digest, len(vcl))
