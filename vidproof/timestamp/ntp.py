"""SNTP client (RFC 4330 / RFC 5905 client mode): how far the recorder's clock is off.

One 48-byte request per server over UDP; the reply gives the server's receive (T2)
and transmit (T3) times, the client notes its own send (T1) and receive (T4) times
with the clock under test (the recorder's wall clock):

    offset = ((T2 - T1) + (T3 - T4)) / 2      delay = (T4 - T1) - (T3 - T2)

A positive offset means the recorder's clock is behind the server's. A reply counts
only if it is a server-mode reply to this very request (its originate timestamp is
our transmit timestamp), from a synchronized server (leap indicator not 3, stratum
1-15); a kiss-o'-death (stratum 0) does not count. Times are integer nanoseconds.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import UsageError

if TYPE_CHECKING:
    import secrets
    import socket
else:  # imported when a server is measured: every recorder imports this module
    secrets, socket = lazy_module("secrets"), lazy_module("socket")

NTP_PORT = 123
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBbb4s4s4s8s8s8s8s")  # the 48-byte NTP header


@dataclass(frozen=True)
class Server:
    host: str
    port: int = NTP_PORT

    @classmethod
    def parse(cls, text: str) -> Server:
        """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT``."""
        host, port = text.strip(), NTP_PORT
        if host.startswith("["):
            end = host.find("]")
            rest = host[end + 1:] if end > 0 else "!"
            if end < 0 or (rest and not rest.startswith(":")):
                raise UsageError(f"--ntp {text!r}: expected HOST[:PORT] or [IPv6]:PORT")
            host, port_text = host[1:end], rest[1:]
        elif host.count(":") == 1:
            host, port_text = host.split(":")
        else:
            port_text = ""
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise UsageError(f"--ntp {text!r}: the port must be 1-65535")
            port = int(port_text)
        if not host:
            raise UsageError(f"--ntp {text!r}: no host")
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Sample:
    """One answer from one server."""

    server: str
    offset_ns: int
    delay_ns: int
    stratum: int
    leap: int
    ref_id: str
    measured_utc_ns: int

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "offset_ns": self.offset_ns, "delay_ns": self.delay_ns,
                "stratum": self.stratum, "leap": self.leap, "ref_id": self.ref_id}


class NtpError(Exception):
    """No usable answer from one server."""


def _to_ntp(ns: int) -> bytes:
    secs, frac_ns = divmod(ns, 10**9)
    frac = (frac_ns << 32) // 10**9
    # The low bits are random (RFC 5905 section 9.1): a reply must echo them back.
    frac = (frac & ~0xFFFF) | secrets.randbits(16)
    return struct.pack("!II", (secs + NTP_EPOCH_OFFSET) & 0xFFFFFFFF, frac)


def _from_ntp(raw: bytes) -> int:
    secs, frac = (int(x) for x in struct.unpack("!II", raw))
    unix = secs - NTP_EPOCH_OFFSET
    if not secs & 0x80000000:  # era 1: from 2036-02-07 (RFC 4330 section 3)
        unix += 1 << 32
    return unix * 10**9 + ((frac * 10**9) >> 32)


def _ref_id(stratum: int, raw: bytes) -> str:
    if stratum <= 1:
        return raw.rstrip(b"\0").decode("ascii", "replace")
    return ".".join(str(b) for b in raw)


def query(server: Server, clock: Callable[[], int] = time.time_ns,
          timeout_s: float = 1.0) -> Sample:
    """Ask one server once. Raises :class:`NtpError` without a usable answer."""
    try:
        infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NtpError(f"{server}: cannot resolve ({exc})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        t1 = clock()
        xmt = _to_ntp(t1)
        request = bytes([(0 << 6) | (4 << 3) | 3]) + bytes(39) + xmt  # LI 0, VN 4, client
        try:
            sock.connect(addr)
            sock.send(request)
            deadline = time.monotonic() + timeout_s
            while True:
                data = sock.recv(1024)
                t4 = clock()
                if len(data) >= PACKET.size and data[24:32] == xmt:
                    break  # else a stray or late datagram: keep waiting for ours
                if time.monotonic() >= deadline:
                    raise TimeoutError
        except TimeoutError:
            raise NtpError(f"{server}: no answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise NtpError(f"{server}: {exc.strerror or exc}") from None
    first, stratum, _, _, _, _, ref, _, _, rec, xmt_srv = PACKET.unpack_from(data)
    leap, version, mode = first >> 6, (first >> 3) & 7, first & 7
    if mode != 4 or version not in (3, 4):
        raise NtpError(f"{server}: not an NTP server reply (mode {mode}, version {version})")
    if stratum == 0:
        code = ref.decode("ascii", "replace")
        raise NtpError(f"{server}: kiss-o'-death {code!r}")
    if leap == 3 or stratum >= 16:
        raise NtpError(f"{server}: the server's own clock is not synchronized")
    if xmt_srv == bytes(8):
        raise NtpError(f"{server}: the reply has no transmit time")
    t2, t3 = _from_ntp(rec), _from_ntp(xmt_srv)
    offset = ((t2 - t1) + (t3 - t4)) // 2
    delay = (t4 - t1) - (t3 - t2)
    return Sample(str(server), offset, delay, stratum, leap, _ref_id(stratum, ref), t4)


@dataclass(frozen=True)
class Measurement:
    """The recorder's clock against its NTP servers, at one moment."""

    servers: tuple[str, ...]
    samples: tuple[Sample, ...]
    errors: tuple[str, ...]
    measured_utc_ns: int

    @property
    def best(self) -> Sample | None:
        """The answer with the shortest round trip (the least uncertain offset)."""
        return min(self.samples, key=lambda s: s.delay_ns, default=None)


def measure(servers: Sequence[Server], clock: Callable[[], int] = time.time_ns,
            timeout_s: float = 1.0) -> Measurement:
    samples: list[Sample] = []
    errors: list[str] = []
    for server in servers:
        try:
            samples.append(query(server, clock, timeout_s))
        except NtpError as exc:
            errors.append(str(exc))
    return Measurement(tuple(map(str, servers)), tuple(samples), tuple(errors), clock())
