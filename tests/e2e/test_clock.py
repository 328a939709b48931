"""Clock discipline end to end, against real NTP servers: Debian's chronyd, run by the
test on 127.0.0.1 (an unprivileged port, ``-x``: it never touches the system clock).

- A chronyd serving its own clock (``local stratum 8``): the recorder measures its
  offset and records it in the signed context.
- A chronyd whose reference clock says the true time is some seconds ahead: chrony's
  SOCK reference-clock driver reads samples from a Unix socket (as from gpsd); the test
  feeds it samples with that offset, and chronyd, which with ``-x`` keeps its
  correction to itself, serves the skewed time over NTP. To the recorder, its own clock
  is then off by that much: it refuses to record unless overridden.
- A clock step during a recording: the wall clock given to the Recorder jumps; the
  signed ``clock_jump`` event is in the report.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LOCATION, Keys, vidproof
from vidproof.capture.worker import Recorder, RecordSettings
from vidproof.keys import load_signer, load_trusted
from vidproof.model import Location
from vidproof.timestamp.clock import ClockSettings, ClockWatch
from vidproof.timestamp.ntp import NtpError, Server, query
from vidproof.verify.load import inspect_path
from vidproof.verify.report import report_text

pytestmark = pytest.mark.slow

CHRONYD = shutil.which("chronyd") or "/usr/sbin/chronyd"
SOCK_MAGIC = 0x534F434B


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Chrony:
    """One chronyd serving NTP on 127.0.0.1:PORT. With ``skew`` it follows a SOCK
    reference clock that the test feeds: the time it serves is off by ``skew`` seconds."""

    def __init__(self, work: Path, skew: float | None = None) -> None:
        self.work = work
        self.port = free_udp_port()
        self.skew = skew
        self.sock_path = work / "refclock.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._feeding = threading.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Chrony:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = [f"port {self.port}", "bindaddress 127.0.0.1", "allow 127.0.0.1", "cmdport 0",
                "bindcmdaddress /", f"pidfile {self.work / 'chronyd.pid'}",
                f"driftfile {self.work / 'drift'}"]
        if self.skew is None:
            conf.append("local stratum 8")
        else:
            conf += [f"refclock SOCK {self.sock_path} refid SKEW poll -2 filter 2",
                     "maxslewrate 500000"]
        (self.work / "chrony.conf").write_text("\n".join(conf) + "\n")
        user = ["-u", "root"] if os.geteuid() == 0 else ["-U"]
        self.proc = subprocess.Popen(
            [CHRONYD, "-f", str(self.work / "chrony.conf"), "-d", "-x", *user],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "chronyd.log", "wb"))  # noqa: SIM115
        if self.skew is not None:
            self._feeding.set()
            threading.Thread(target=self._feed, daemon=True).start()
        self.wait_synchronized()
        return self

    def _feed(self) -> None:
        """Samples for chrony's SOCK driver (struct sock_sample of refclock_sock.c):
        the reference time is ``skew`` seconds after the system time."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            while self._feeding.is_set():
                now = time.time()
                sample = struct.pack("=qqdiiii", int(now), int(now % 1 * 1e6), self.skew,
                                     0, 0, 0, SOCK_MAGIC)
                with contextlib.suppress(OSError):  # chronyd has not made its socket yet
                    s.sendto(sample, str(self.sock_path))
                time.sleep(0.05)

    def wait_synchronized(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                sample = query(Server("127.0.0.1", self.port), timeout_s=0.3)
                if self.skew is None or abs(sample.offset_ns / 1e9 - self.skew) < 0.05:
                    return
                last = f"offset {sample.offset_ns / 1e9}"
            except NtpError as exc:
                last = str(exc)
            time.sleep(0.2)
        log = (self.work / "chronyd.log").read_text(errors="replace")
        raise RuntimeError(f"chronyd did not get ready: {last}; {log[-1500:]}")

    def set_skew(self, skew: float) -> None:
        self.skew = skew
        self.wait_synchronized()

    def stop(self) -> None:
        self._feeding.clear()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def chrony(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrony]:
    server = Chrony(tmp_path_factory.mktemp("chrony")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrony]:
    server = Chrony(tmp_path_factory.mktemp("chrony-skew"), skew=3.0).start()
    yield server
    server.stop()


def record(store: Path, keys: Keys, *extra: str) -> list[str]:
    return ["record", "--source", "testsrc:160x120@25", "--camera-id", "cam1", "--location",
            LOCATION, "--key", str(keys.key), "--store", str(store), "--duration", "1",
            "--fast", *extra]


def test_measured_offset_is_recorded(chrony: Chrony, keys: Keys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    r = vidproof(*record(store, keys, "--ntp", chrony.address))
    assert r.code == 0, r.err
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out
    clock = r.json["cameras"][0]["clock"]
    assert clock["measured"] and clock["synchronized"] and not clock["override"]
    m = clock["measurements"][0]
    assert (m["status"], m["server"], m["stratum"]) == ("synchronized", chrony.address, 8)
    assert abs(m["offset_ns"]) < 50_000_000  # chronyd serves this machine's own clock
    text = vidproof("verify", store, "--trust", keys.pub).out
    assert "Clock: synchronized at the start (offset" in text and chrony.address in text


def test_refuses_without_a_reachable_server(keys: Keys, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_udp_port()}"  # nothing listens there
    store = tmp_path / "store"
    r = vidproof(*record(store, keys, "--ntp", dead))
    assert r.code == 2
    assert r.err.count("\n") == 1 and "refusing to record: no NTP server answered" in r.err
    assert "Traceback" not in r.err and not (store / "cam1").exists()
    # The override records, and says so in the signed evidence.
    r = vidproof(*record(store, keys, "--ntp", dead, "--allow-unsynced-clock"))
    assert r.code == 0, r.err
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0
    clock = r.json["cameras"][0]["clock"]
    assert clock["override"] and clock["measurements"][0]["status"] == "unreachable"
    assert "clock_unsynced" in {f["kind"] for f in r.json["findings"]}


def test_refuses_a_clock_off_by_more_than_the_threshold(skewed: Chrony, keys: Keys,
                                                        tmp_path: Path) -> None:
    store = tmp_path / "store"
    r = vidproof(*record(store, keys, "--ntp", skewed.address))
    assert r.code == 2 and "--allow-unsynced-clock" in r.err, r.err
    offset = re.search(r"off by ([+-][0-9.]+) s", r.err)
    assert offset and abs(float(offset.group(1)) - 3.0) < 0.05, r.err
    assert not (store / "cam1").exists()
    # A threshold above the offset: recorded, with the offset measured.
    r = vidproof(*record(store, keys, "--ntp", skewed.address, "--max-clock-offset-ms", "5000"))
    assert r.code == 0, r.err
    m = vidproof("verify", store, "--trust", keys.pub, "--json").json["cameras"][0]["clock"]
    assert m["synchronized"] and abs(m["measurements"][0]["offset_ns"] - 3_000_000_000) < 5e7
    # The override: recorded, flagged as not synchronized.
    store2 = tmp_path / "store2"
    r = vidproof(*record(store2, keys, "--ntp", skewed.address, "--allow-unsynced-clock"))
    assert r.code == 0, r.err
    r = vidproof("verify", store2, "--trust", keys.pub, "--json")
    clock = r.json["cameras"][0]["clock"]
    assert clock["override"] and clock["measurements"][0]["status"] == "offset_too_large"
    unsynced = [f for f in r.json["findings"] if f["kind"] == "clock_unsynced"]
    assert unsynced and "offset_too_large: offset +" in unsynced[0]["message"]


def test_offset_change_while_recording_is_an_event(tmp_path: Path) -> None:
    """The background re-measure against a real server whose time moves by 0.4 s."""
    server = Chrony(tmp_path / "chrony", skew=0.0).start()
    try:
        watch = ClockWatch(ClockSettings((Server("127.0.0.1", server.port),),
                                         max_offset_ns=1_000_000_000, interval_s=0.2))
        watch.start_check()
        assert watch.context() is not None and watch.context()["status"] == "synchronized"
        assert watch.poll() == []
        server.set_skew(0.4)
        events: list[tuple[str, int, dict]] = []
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            events = [e for e in watch.poll() if e[0] == "clock_offset"]
            time.sleep(0.05)
        watch.close()
    finally:
        server.stop()
    assert events, "no clock_offset event"
    detail = events[0][2]
    # Signed as soon as it moved notably (100 ms or more), perhaps while chrony still slews.
    assert 100_000_000 <= detail["offset_ns"] <= 450_000_000
    assert abs(detail["previous_offset_ns"]) < 50_000_000


def test_clock_step_during_recording_is_signed(keys: Keys, tmp_path: Path) -> None:
    """The Recorder's wall clock steps 5 s ahead mid-recording (as when an NTP daemon
    steps the system clock): a signed clock_jump event, shown in the report."""
    calls = [0]
    step_ns = 5_000_000_000

    def clock() -> int:
        calls[0] += 1
        return time.time_ns() + (step_ns if calls[0] > 30 else 0)

    store = tmp_path / "store"
    settings = RecordSettings("testsrc:160x120@25", "cam1", Location.parse(LOCATION), store,
                              duration=2, fast=True)
    result = Recorder(settings, load_signer(keys.key), clock=clock).run()
    assert result.frames == 50
    report = inspect_path(store, load_trusted(keys.pub))
    assert report.authentic  # the jump is explained and signed, not tampering
    jumps = report.cameras[0].clock["jumps"]
    assert len(jumps) == 1 and abs(jumps[0]["jump_ns"] - step_ns) < 50_000_000
    assert [f.kind for f in report.findings if f.kind == "clock_jump"] == ["clock_jump"]
    assert "the wall clock jumped by +5.0" in report_text(report)
    r = vidproof("verify", store, "--trust", keys.pub)  # and by the CLI
    assert r.code == 0 and "clock_jump" in r.out
