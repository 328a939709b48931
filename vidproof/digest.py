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
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

H264 = "h264"
HEVC = "hevc"
SUPPORTED_CODECS = (H264, HEVC)

_VCL = {H264: frozenset(range(1, 6)), HEVC: frozenset(range(0, 32))}
_PARAM_SETS = {H264: frozenset((7, 8)), HEVC: frozenset((32, 33, 34))}
# Access unit delimiters, end of sequence/stream and filler data: framing that
# muxers add or drop; never digested.
_FRAMING = {H264: frozenset((9, 10, 11, 12)), HEVC: frozenset((35, 36, 37, 38))}
_LEN = struct.Struct(">I")
Buffer = bytes | bytearray | memoryview  # packet data; a memoryview avoids a copy


#: ``av.open`` options for a file that is only demuxed, never decoded (passthrough
#: recording, verification). By default FFmpeg's stream probe decodes the first
#: pictures (about 30 ms of CPU at 1080p) only to learn the pixel format; the codec,
#: picture size, frame rate, time base and parameter sets come without decoding.
NO_PROBE_DECODE = {"skip_frame": "all"}


class BitstreamError(ValueError):
    """Packet data is not a well-formed H.264/H.265 access unit."""


def nal_type(codec: str, nal: bytes | memoryview) -> int:
    if not nal:
        raise BitstreamError("empty NAL unit")
    first = nal[0]
    return first & 0x1F if codec == H264 else (first >> 1) & 0x3F


def is_annexb(data: Buffer) -> bool:
    return data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"


# NAL units are located as (begin, end) offsets into the packet, and hashed through a
# memoryview: no NAL unit is copied on the hot path (a 1080p frame is tens of kB).
Spans = list[tuple[int, int]]
# The regular expression engine scans for a literal about twice as fast as bytes.find.
_START = re.compile(b"\x00\x00\x01")


def annexb_spans_py(data: Buffer) -> Spans:
    """Offsets of the NAL units of Annex B data; trailing zero bytes belong to no NAL unit.

    The reference: :func:`annexb_spans` is this, or the same in C when it is built."""
    spans: Spans = []
    search = _START.search
    found = search(data)
    start = -1 if found is None else found.start()
    while start >= 0:
        begin = start + 3
        found = search(data, begin)
        nxt = -1 if found is None else found.start()
        end = len(data) if nxt < 0 else nxt
        while end > begin and data[end - 1] == 0:
            end -= 1
        if end > begin:
            spans.append((begin, end))
        start = nxt
    return spans


#: The C scanner's interface that this module calls (``ABI`` in native/vidproof_bitstream.c).
BITSTREAM_ABI = 1


def _native_annexb_spans() -> Callable[[Buffer], Spans] | None:
    """The optional C scanner (native/vidproof_bitstream.c, built with the package when
    there is a compiler), unless ``VIDPROOF_NATIVE=0`` or the build is stale."""
    if os.environ.get("VIDPROOF_NATIVE", "").strip() == "0":
        return None
    try:
        from . import _bitstream  # type: ignore[attr-defined]
    except ImportError:
        return None
    if getattr(_bitstream, "ABI", None) != BITSTREAM_ABI:
        return None
    spans: Callable[[Buffer], Spans] = _bitstream.annexb_spans
    return spans


#: Offsets of the NAL units of Annex B data (:func:`annexb_spans_py`, in C when built:
#: a start code is searched for from zero byte to zero byte, several times faster).
annexb_spans: Callable[[Buffer], Spans] = _native_annexb_spans() or annexb_spans_py


def length_prefixed_spans(data: Buffer, length_size: int = 4) -> Spans:
    """Offsets of the NAL units of length-prefixed (avcC/hvcC style) data."""
    spans: Spans = []
    pos, size = 0, len(data)
    unpack = _LEN.unpack_from
    while pos < size:
        if pos + length_size > size:
            raise BitstreamError("truncated NAL length prefix")
        if length_size == 4:
            n = unpack(data, pos)[0]
        else:
            n = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if n == 0 or pos + n > size:
            raise BitstreamError(f"NAL length {n} overruns the packet ({size - pos} bytes left)")
        # trailing_zero_8bits are byte-stream padding, not NAL data (a NAL unit never
        # ends in 0x00); Annex B cannot keep them apart from the next start code, so
        # they are dropped here too, or the digest would depend on the container.
        end = pos + n
        while end > pos and data[end - 1] == 0:
            end -= 1
        if end > pos:
            spans.append((pos, end))
        pos += n
    return spans


def split_annexb(data: bytes) -> list[bytes]:
    """Split Annex B data on start codes; trailing zero bytes belong to no NAL unit."""
    return [data[b:e] for b, e in annexb_spans(data)]


def split_length_prefixed(data: bytes, length_size: int = 4) -> list[bytes]:
    return [data[b:e] for b, e in length_prefixed_spans(data, length_size)]


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

    @classmethod
    def of_stream(cls, stream: Any) -> FrameHasher:
        """The hasher of a demuxed PyAV video stream (its codec and extradata)."""
        cc = stream.codec_context
        return cls(cc.name, bytes(cc.extradata) if cc.extradata else None)

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
        self._params = sorted(p for p in params if p and nal_type(codec, p) in self._ps_types)
        self._params_digest = _digest_nals(self._params)
        self._h264 = codec == H264
        self._framing = _FRAMING[codec]

    @property
    def params_digest(self) -> str:
        return self._params_digest

    def nal_spans(self, data: Buffer) -> Spans:
        if self.length_size is not None and data[:4] != b"\x00\x00\x00\x01":
            # A 4-byte length of 256..511 starts with 00 00 01 too: with avcC/hvcC
            # extradata, length prefixes come first; Annex B only if they do not fit.
            try:
                return length_prefixed_spans(data, self.length_size)
            except BitstreamError:
                if not is_annexb(data):
                    raise
        if is_annexb(data):
            return annexb_spans(data)
        return length_prefixed_spans(data, self.length_size or 4)

    def nal_units(self, data: bytes) -> list[bytes]:
        return [data[b:e] for b, e in self.nal_spans(data)]

    def digest(self, data: Buffer) -> FrameDigest:
        """Digest one access unit: ``bytes``, or a memoryview of a packet (no copy)."""
        # Same bytes as _digest_nals over the VCL NAL units, without copying them.
        h = hashlib.sha256()
        view = memoryview(data)
        vcl, ps_types, h264, pack = self._vcl, self._ps_types, self._h264, _LEN.pack
        units = 0
        params: list[bytes] = []
        other: Spans = []
        for begin, end in self.nal_spans(data):
            first = data[begin]
            kind = first & 0x1F if h264 else (first >> 1) & 0x3F
            if kind in vcl:
                h.update(pack(end - begin))
                h.update(view[begin:end])
                units += 1
            elif kind in ps_types:
                params.append(bytes(data[begin:end]))
                other.append((begin, end))
            elif kind not in self._framing:
                other.append((begin, end))
        if not units and other:
            # No picture: a packet of SEI and/or parameter sets only (an ONVIF Media
            # Signing SEI sent on its own; SPS/PPS sent apart by an RTSP camera). Its
            # digest covers those NAL units, in order, instead.
            for begin, end in other:
                h.update(pack(end - begin))
                h.update(view[begin:end])
            units = len(other)
        if params:
            params.sort()
            if params != self._params:
                self._params = params
                self._params_digest = _digest_nals(params)
        if not units:
            raise BitstreamError("access unit has no picture data and no SEI (no NAL unit "
                                 "to digest)")
        return FrameDigest(h.hexdigest(), self._params_digest, units)
