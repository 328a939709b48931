"""End to end over RTSP: a real camera (GStreamer's RTSP server on 127.0.0.1, run by
Debian's python3: tests/servers/rtsp_camera.py) recorded by the real CLI.

The camera is stopped and restarted while the recorder runs; the recording must
verify, with signed camera-lost / camera-back events around the gap and the
camera's own clock (RTCP sender reports) in the frame records.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import LOCATION, Keys, free_port, vidproof
from vidproof.capture.sources import Backoff, CodedFrame, SourceLost, StreamInfo, rtsp
from vidproof.errors import SourceError

pytestmark = pytest.mark.slow

SERVER = Path(__file__).resolve().parents[1] / "servers" / "rtsp_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # has the GStreamer bindings (python3-gi); the venv has not
FPS = 25
READY_TIMEOUT = 20.0


class RtspCamera:
    """One real RTSP camera process; start() again to bring it back on the same port."""

    def __init__(self, log_dir: Path, *, port: int = 0, tls: tuple[Path, Path] | None = None):
        self.port = port
        self.tls = tls
        self.log_dir = log_dir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.starts = 0
        self.log = log_dir / "rtsp-camera.log"

    def start(self) -> str:
        assert self.proc is None
        self.starts += 1
        cmd = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port),
               "--width", "640", "--height", "360", "--fps", str(FPS)]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        self.log = self.log_dir / f"rtsp-camera-{id(self):x}-{self.starts}.log"
        err = open(self.log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(READY_TIMEOUT)
        sel.close()
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            log = self.log.read_text()
            raise RuntimeError(f"RTSP camera did not start: {line!r} {log[-2000:]}")
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        return self.url

    def stop(self) -> int | None:
        """SIGTERM (continue it first if frozen), then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
        return proc.returncode

    def freeze(self) -> None:
        """A camera that hangs: its sockets stay open, nothing more comes out."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    cam = RtspCamera(tmp_path)
    cam.start()
    yield cam
    cam.stop()


def start_record(store: Path, keys: Keys, url: str, duration: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vidproof", "record", "--source", url, "--camera-id", "cam1",
         "--location", LOCATION, "--key", str(keys.key), "--store", str(store),
         "--duration", str(duration), "--segment-seconds", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def evidence(store: Path, camera: str = "cam1") -> list[dict[str, Any]]:
    path = store / camera / "evidence.jsonl"
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [json.loads(line) for line in lines[:-1]]  # the last one may still be being written


def wait_frames(store: Path, recorder: subprocess.Popen[str], count: int,
                timeout: float = 30) -> None:
    """Wait until the recorder has written ``count`` more frame records (checkpointed ones
    reach the file at least every 2 s)."""
    start = sum(1 for e in evidence(store) if e["type"] == "frame")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert recorder.poll() is None, recorder.communicate()
        if sum(1 for e in evidence(store) if e["type"] == "frame") >= start + count:
            return
        time.sleep(0.2)
    raise AssertionError(f"the recorder did not write {count} frames in {timeout} s")


def finish(recorder: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = recorder.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        recorder.kill()
        out, err = recorder.communicate()
        raise AssertionError(f"the recorder was still running {timeout} s later: {err}") from None
    return recorder.returncode, out, err


def sessions(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Frame records, split at the context records that each (re)connection writes."""
    out: list[list[dict[str, Any]]] = []
    for e in entries:
        if e["type"] == "context":
            out.append([])
        elif e["type"] == "frame":
            out[-1].append(e)
    return out


def iso_ms(ns: int) -> str:
    """ISO 8601 UTC to the millisecond (truncated), as reports give times."""
    whole = datetime.datetime.fromtimestamp(ns // 10**9, datetime.UTC)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9 // 10**6:03d}Z"


def check_camera_clock(frames: list[dict[str, Any]]) -> int:
    """The camera's clock (RTCP sender reports) is recorded from the first report on,
    and runs with the stream's own timestamps, not with the times of reception.
    Returns how many frames carry it."""
    with_clock = [f for f in frames if f["cam_utc_ns"] is not None]
    assert with_clock, "no frame carries the camera's clock"
    first = frames.index(with_clock[0])
    assert all(f["cam_utc_ns"] is not None for f in frames[first:] if f["pts"] is not None)
    for a, b in zip(with_clock, with_clock[1:], strict=False):
        tb = a["tb"][0] / a["tb"][1]
        assert abs((b["cam_utc_ns"] - a["cam_utc_ns"]) - (b["pts"] - a["pts"]) * tb * 1e9) <= 1000
    # Camera and recorder share this host's clock: a misread NTP time (wrong field,
    # wrong epoch, wrong scale) would be off by hours or decades, not seconds.
    for f in with_clock:
        assert abs(f["utc_ns"] - f["cam_utc_ns"]) < 5e9, f
    return len(with_clock)


def test_camera_restart_is_signed_and_verifies(camera: RtspCamera, keys: Keys,
                                               tmp_path: Path) -> None:
    store = tmp_path / "store"
    outage = 2.5
    recorder = start_record(store, keys, camera.url, duration=16)
    wait_frames(store, recorder, 75)
    assert camera.stop() == 0  # the camera stopped cleanly: this is a real outage
    stopped = time.monotonic()
    time.sleep(outage)
    camera.start()  # same port, a new process: new RTP session, new clock mapping
    code, out, err = finish(recorder, timeout=16 + 30)
    assert code == 0, err
    assert "Traceback" not in err
    assert time.monotonic() - stopped >= outage

    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out + r.err
    report = r.json
    assert report["verdict"] == "authentic"
    assert report["camera_ids"] == ["cam1"]
    findings = {f["kind"]: f for f in report["findings"]}
    assert findings["camera_lost"]["severity"] == "info"
    assert findings["camera_back"]["severity"] == "info"
    assert not [f for f in report["findings"] if f["severity"] != "info"], report["findings"]
    events = [e["event"] for e in report["cameras"][0]["events"]]
    assert events == ["recorder_start", "camera_lost", "camera_back", "recorder_stop"], events

    entries = evidence(store)
    assert entries[-1]["type"] == "checkpoint"  # the recorder ended cleanly, all signed
    frames = [e for e in entries if e["type"] == "frame"]
    assert report["frames"] == len(frames)
    lost = next(e for e in entries if e["type"] == "event" and e["event"] == "camera_lost")
    back = next(e for e in entries if e["type"] == "event" and e["event"] == "camera_back")
    before = [f for f in frames if f["seq"] < lost["seq"]]
    after = [f for f in frames if f["seq"] > back["seq"]]
    assert len(before) >= 75 and len(after) >= FPS, (len(before), len(after))
    assert len(before) + len(after) == len(frames)
    # The events cover the gap: nothing was received between the last frame before
    # the outage and the first one after it, and the camera was away for at least
    # as long as the test kept it down.
    assert before[-1]["utc_ns"] <= lost["utc_ns"] < back["utc_ns"] <= after[0]["utc_ns"]
    assert after[0]["utc_ns"] - before[-1]["utc_ns"] >= outage * 1e9
    assert back["detail"]["lost_utc_ns"] == lost["utc_ns"]
    # …and the verifier's report shows that span, from the loss to the return.
    gap = findings["camera_back"]
    assert (gap["first_utc"], gap["last_utc"]) == (iso_ms(lost["utc_ns"]), iso_ms(back["utc_ns"]))
    assert back["detail"]["gap_ns"] == back["utc_ns"] - lost["utc_ns"]
    assert lost["detail"]["reason"]
    # Each connection starts at a keyframe, in a new segment.
    first, second = sessions(entries)
    assert first[0]["key"] and second[0]["key"]
    assert len(list((store / "cam1" / "segments").glob("*.ts"))) >= 3
    # The camera's own clock, once its first sender report has arrived (RTCP SR are
    # sent every few seconds), in both connections; restarted, the camera starts a
    # new RTP session, and the new mapping is picked up.
    assert check_camera_clock(first) > 0
    assert check_camera_clock(second) > 0


def test_frozen_camera_does_not_hang_the_recorder(camera: RtspCamera, keys: Keys,
                                                  tmp_path: Path) -> None:
    """A camera that stops sending but keeps its connection (and its port) open: the
    read timeout turns it into a signed camera-lost event, reconnection attempts time
    out, and the recorder still ends at its duration."""
    store = tmp_path / "store"
    recorder = start_record(store, keys, camera.url, duration=12)
    wait_frames(store, recorder, 1)  # frames reach the file within 2 s (checkpoints)
    camera.freeze()  # so the read timeout (5 s) fires well before the end
    code, out, err = finish(recorder, timeout=12 + 25)
    assert code == 0, err
    r = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out + r.err
    events = r.json["cameras"][0]["events"]
    assert [e["event"] for e in events] == ["recorder_start", "camera_lost", "recorder_stop"]
    assert "no answer from the camera within 5 s" in events[1]["detail"]["reason"]
    assert events[2]["detail"]["reason"] == "duration reached"


def test_unreachable_camera_is_one_line_error(keys: Keys, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    r = vidproof("record", "--source", f"rtsp://127.0.0.1:{port}/cam", "--camera-id", "cam1",
                 "--location", LOCATION, "--key", keys.key, "--store", tmp_path / "store",
                 "--duration", "30", timeout=20)
    assert r.code != 0
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert f"rtsp://127.0.0.1:{port}/cam" in lines[0] and "refused" in lines[0].lower()


def test_silent_server_hits_the_connect_timeout(keys: Keys, tmp_path: Path) -> None:
    """Something accepts the TCP connection but never answers RTSP: the open times out
    (bounded here by the 3-s duration) and the recorder fails with one line."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # the kernel completes handshakes; nobody ever answers
        port = listener.getsockname()[1]
        r = vidproof("record", "--source", f"rtsp://user:secret@127.0.0.1:{port}/cam",
                     "--camera-id", "cam1", "--location", LOCATION, "--key", keys.key,
                     "--store", tmp_path / "store", "--duration", "3", timeout=20)
    assert r.code != 0
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert "no answer from the camera within 3 s" in lines[0]
    assert "secret" not in lines[0]  # credentials never reach logs


# --- RTSPS: the same path over TLS, against a server with a self-signed certificate ---

def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test camera {host}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


@pytest.fixture
def tls_camera(tmp_path: Path) -> Iterator[tuple[RtspCamera, Path]]:
    cert, key = make_certificate(tmp_path / "tls")
    cam = RtspCamera(tmp_path, tls=(cert, key))
    cam.start()
    yield cam, cert
    cam.stop()


def test_rtsps_camera_records_and_verifies(tls_camera: tuple[RtspCamera, Path], keys: Keys,
                                           tmp_path: Path) -> None:
    cam, _ = tls_camera
    assert cam.url.startswith("rtsps://")
    store = tmp_path / "store"
    r = vidproof("record", "--source", cam.url, "--camera-id", "cam1", "--location", LOCATION,
                 "--key", keys.key, "--store", store, "--duration", "4", timeout=40)
    assert r.code == 0, r.err
    v = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert v.code == 0, v.out + v.err
    assert v.json["frames"] >= FPS
    # The server speaks TLS only: the same port over plain RTSP is refused, so the
    # recording above really went through TLS.
    plain = cam.url.replace("rtsps://", "rtsp://", 1)
    with pytest.raises(SourceError):
        next(rtsp(plain, duration=5, clock=time.time_ns, connect_timeout=5))


def test_rtsps_checks_the_camera_certificate(tls_camera: tuple[RtspCamera, Path],
                                             tmp_path: Path) -> None:
    cam, cert = tls_camera
    items = rtsp(cam.url, duration=3, clock=time.time_ns, tls_ca=cert)
    got = list(items)
    assert isinstance(got[0], StreamInfo)
    assert sum(isinstance(i, CodedFrame) for i in got) >= FPS
    assert not any(isinstance(i, SourceLost) for i in got)
    other_ca, _ = make_certificate(tmp_path / "other-ca")
    with pytest.raises(SourceError, match="may not be issued by"):
        next(rtsp(cam.url, duration=5, clock=time.time_ns, connect_timeout=5, tls_ca=other_ca))
    # A certificate from the right issuer, but for another host, is refused too.
    elsewhere = make_certificate(tmp_path / "elsewhere", host="127.0.0.2")
    impostor = RtspCamera(tmp_path, tls=elsewhere)
    impostor.start()
    try:
        with pytest.raises(SourceError, match="may not be issued by"):
            next(rtsp(impostor.url, duration=5, clock=time.time_ns, connect_timeout=5,
                      tls_ca=elsewhere[0]))
    finally:
        impostor.stop()


def test_camera_gone_for_good_ends_at_the_duration(camera: RtspCamera) -> None:
    """The source itself: once the camera has gone, it reports the loss once, calls
    again (connections refused) after back-off delays, and ends when the duration runs
    out in the middle of a delay, not when the delay is over."""
    duration = 6.0
    backoff = Backoff(first=3.0, maximum=60.0)
    started = time.monotonic()
    items = rtsp(camera.url, duration=duration, clock=time.time_ns, backoff=backoff)
    frames = 0
    for item in items:
        if isinstance(item, CodedFrame):
            frames += 1
            if frames == FPS:
                camera.stop()
        elif isinstance(item, SourceLost):
            break
    else:
        raise AssertionError("the camera was stopped but its loss was not reported")
    assert frames >= FPS
    assert list(items) == []  # nothing more: no second loss, no StreamInfo
    assert backoff.current >= 3.0  # it waited to call again at least once
    # Lost after about 2 s, called again 3 s later, then a 6-s delay that would end
    # near 11 s: ending within the duration plus a margin shows the wait was cut
    # short at the duration.
    assert time.monotonic() - started < duration + 2.5
