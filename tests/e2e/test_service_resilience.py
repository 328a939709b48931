"""One camera failing must not disturb the others, and every gap must be explained.

The real `vidproof serve` records three cameras: two synthetic ones (cam-a, cam-b) and
a real RTSP camera (cam-rtsp: GStreamer's RTSP server, tests/servers/rtsp_camera.py,
started as tests/e2e/test_rtsp.py does) whose credentials come from a file.

1. cam-b's worker is killed with SIGKILL: cam-a keeps recording at its frame rate with
   the same worker, the supervisor restarts cam-b's worker, and cam-b's store then
   shows the gap as a signed `recorder_start` event (previous_run "interrupted").
2. The RTSP camera's server is stopped and started again: cam-a is not disturbed, and
   cam-rtsp's worker (not restarted) signs camera_lost / camera_back around the gap.
3. The service is killed: its workers stop by themselves, and each store is verified
   with the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import vidproof
from tests.e2e.service_harness import (
    CameraSpec,
    Service,
    alive,
    cmdline,
    running_service,
    wait_until,
)
from tests.e2e.test_rtsp import RtspCamera

pytestmark = pytest.mark.slow

FPS = 12
RTSP_PASSWORD = "Rtsp-Secret-71x"


@pytest.fixture(scope="module")
def rtsp_camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspCamera]:
    cam = RtspCamera(tmp_path_factory.mktemp("rtsp-camera"))
    cam.start()
    yield cam
    cam.stop()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, rtsp_camera: RtspCamera) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service-resilience")
    cred = root / "rtsp.credentials"
    cred.write_text(f"admin:{RTSP_PASSWORD}\n")
    cameras = [CameraSpec("cam-a", f"testsrc:320x240@{FPS}"),
               CameraSpec("cam-b", f"testsrc:320x240@{FPS}"),
               CameraSpec("cam-rtsp", rtsp_camera.url, {"credentials_file": str(cred)})]
    with running_service(root, cameras, roles=("operator",)) as s:
        wait_until("all cameras recording", lambda: all(
            c["state"] == "recording" and c["frames_out"] > FPS
            for c in s.cameras().values()), 60)
        yield s


class Watch:
    """Samples cam-a's health while something else happens to the other cameras."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        first = svc.cameras()["cam-a"]
        self.pid = first["worker_pid"]
        self.samples: list[tuple[float, int]] = [(time.monotonic(), first["frames_out"])]

    def sample(self) -> dict[str, dict[str, Any]]:
        cams = self.svc.cameras()
        a = cams["cam-a"]
        assert a["worker_pid"] == self.pid and a["restarts"] == 0, a
        assert a["state"] == "recording" and a["dropped_frames"] == 0, a
        assert a["frames_out"] >= self.samples[-1][1], (a, self.samples[-1])
        self.samples.append((time.monotonic(), a["frames_out"]))
        return cams

    def check_rate(self) -> None:
        """cam-a recorded in real time through it all. Its status file is refreshed at
        checkpoints, at most 2 s apart: allow that much lag at either end."""
        (t0, f0), (t1, f1) = self.samples[0], self.samples[-1]
        assert t1 - t0 > 4, "not watched long enough to tell"
        assert f1 - f0 >= (t1 - t0 - 4.5) * FPS, self.samples
        assert f1 - f0 <= (t1 - t0 + 4.5) * FPS, self.samples


def frames(svc: Service, camera: str) -> list[dict[str, Any]]:
    raw = (svc.store / camera / "evidence.jsonl").read_bytes().split(b"\n")[:-1]
    return [e for e in map(json.loads, raw) if e["type"] == "frame"]


def events(svc: Service, camera: str) -> list[dict[str, Any]]:
    raw = (svc.store / camera / "evidence.jsonl").read_bytes().split(b"\n")[:-1]
    return [e for e in map(json.loads, raw) if e["type"] == "event"]


def test_killed_worker_is_restarted_without_disturbing_the_others(svc: Service) -> None:
    watch = Watch(svc)
    before = svc.cameras()
    victim = before["cam-b"]["worker_pid"]
    a_frames_before = len(frames(svc, "cam-a"))
    os.kill(victim, signal.SIGKILL)

    def back() -> bool:
        b = watch.sample()["cam-b"]
        return bool(b["restarts"] >= 1 and b["worker_pid"] not in (None, victim)
                    and b["state"] == "recording" and b["frames_out"] > FPS)

    wait_until("cam-b's worker back and recording", back, 60, 0.25)
    while time.monotonic() - watch.samples[0][0] < 6:  # long enough to tell cam-a's rate
        watch.sample()
        time.sleep(0.25)
    watch.check_rate()
    cams = svc.cameras()
    b = cams["cam-b"]
    assert b["restarts"] == 1
    assert cams["cam-rtsp"]["restarts"] == 0
    # cam-a: one unbroken run in the evidence, consecutive frames, no restart event.
    a = frames(svc, "cam-a")
    assert len(a) > a_frames_before
    assert [f["seq"] for f in a] == sorted(f["seq"] for f in a)
    assert [e["event"] for e in events(svc, "cam-a")] == ["recorder_start"]
    rec_a = svc.get("/api/recordings", "operator", params={"camera": "cam-a"}).json()
    assert len(rec_a["ranges"]) == 1 and rec_a["gaps"] == []
    # cam-b: two runs with a gap between them, and the new run starts with a signed
    # recorder_start event that says the previous run was interrupted.
    before_b = len(frames(svc, "cam-b"))
    rec_b = svc.get("/api/recordings", "operator", params={"camera": "cam-b"}).json()
    after_b = len(frames(svc, "cam-b"))
    assert len(rec_b["ranges"]) == 2 and len(rec_b["gaps"]) == 1, rec_b
    # The ranges count the frames of the evidence log as it is after recovery (the
    # unsigned tail of the killed run, if any, was moved out to crash/).
    assert before_b <= sum(r["frames"] for r in rec_b["ranges"]) <= after_b
    starts = [e for e in events(svc, "cam-b") if e["event"] == "recorder_start"]
    assert len(starts) == 2
    assert starts[1]["detail"]["previous_run"] == "interrupted", starts[1]


def test_rtsp_outage_does_not_disturb_the_others(svc: Service, rtsp_camera: RtspCamera) -> None:
    watch = Watch(svc)
    rtsp_pid = watch.sample()["cam-rtsp"]["worker_pid"]
    # The credentials from the file reach the worker, in the URL in its environment
    # (only the service's user can read that), and not on its command line.
    environ = Path(f"/proc/{rtsp_pid}/environ").read_bytes().split(b"\0")
    url = rtsp_camera.url.replace("rtsp://", f"rtsp://admin:{RTSP_PASSWORD}@", 1)
    assert f"VIDPROOF_SOURCE_URL={url}".encode() in environ
    assert RTSP_PASSWORD not in " ".join(cmdline(rtsp_pid))
    assert rtsp_camera.stop() == 0  # the camera goes away
    lost_at = time.monotonic()
    wait_until("cam-rtsp lost", lambda: watch.sample()["cam-rtsp"]["state"] == "camera_lost",
               30)
    while time.monotonic() - lost_at < 2.5:  # stays away for a while
        watch.sample()
        time.sleep(0.25)
    rtsp_camera.start()  # the same port, a new server process
    frames_lost = watch.sample()["cam-rtsp"]["frames_out"]

    def back() -> bool:
        c = watch.sample()["cam-rtsp"]
        return c["state"] == "recording" and c["frames_out"] > frames_lost + 25

    wait_until("cam-rtsp back", back, 60, 0.25)
    watch.check_rate()
    c = svc.cameras()["cam-rtsp"]
    # The worker rode it out: reconnected by itself, no restart by the supervisor.
    assert c["worker_pid"] == rtsp_pid and c["restarts"] == 0
    names = [e["event"] for e in events(svc, "cam-rtsp")]
    assert names == ["recorder_start", "camera_lost", "camera_back"], names
    lost, back_ev = events(svc, "cam-rtsp")[1:]
    assert back_ev["detail"]["lost_utc_ns"] == lost["utc_ns"]
    assert back_ev["detail"]["gap_ns"] >= 2.5e9
    assert lost["detail"]["reason"]
    rec = svc.get("/api/recordings", "operator", params={"camera": "cam-rtsp"}).json()
    assert len(rec["ranges"]) == 2 and len(rec["gaps"]) == 1, rec


def verify(svc: Service, camera: str) -> tuple[int, dict[str, Any]]:
    r = vidproof("verify", svc.store, "--trust", svc.pub, "--camera", camera, "--json")
    assert r.code in (0, 1), r.err
    assert "Traceback" not in r.err
    return r.code, r.json


def test_workers_stop_with_a_killed_service_and_the_stores_verify(svc: Service) -> None:
    # The service itself dies (SIGKILL: no orderly stop). Its workers must not outlive
    # it, or a restarted service would run two recorders on one camera: each gets
    # SIGTERM from the kernel (parent-death signal) and ends its recording cleanly.
    workers = svc.worker_pids()
    assert len(workers) == 3
    assert svc.proc is not None
    svc.proc.kill()
    svc.proc.wait()
    wait_until("the workers to stop", lambda: not any(alive(p) for p in workers), 20)
    # cam-a: untouched, authentic and complete.
    code, report = verify(svc, "cam-a")
    assert code == 0 and report["verdict"] == "authentic", report["findings"]
    assert [e["event"] for e in report["cameras"][0]["events"]] == [
        "recorder_start", "recorder_stop"]
    # cam-rtsp: the outage is explained by signed events; authentic and complete.
    code, report = verify(svc, "cam-rtsp")
    assert code == 0 and report["verdict"] == "authentic", report["findings"]
    info = [f["kind"] for f in report["findings"] if f["severity"] == "info"]
    assert len(info) == len(report["findings"]), report["findings"]
    # (other info findings, e.g. about the camera's profile, are not this test's business)
    assert [k for k in info if k.startswith(("camera_", "recorder_"))] == [
        "camera_lost", "camera_back"], report["findings"]
    assert [e["event"] for e in report["cameras"][0]["events"]] == [
        "recorder_start", "camera_lost", "camera_back", "recorder_stop"]
    # cam-b: the kill is explained by the signed recorder_start of the next run. What
    # the killed worker had written after its last checkpoint (at most 2 s of footage)
    # was never signed: the verifier reports it as a warning, never as tampering, and
    # so the store is "not complete" (exit 1) unless the kill fell right after a
    # checkpoint. Nothing is an error.
    code, report = verify(svc, "cam-b")
    findings = report["findings"]
    assert not [f for f in findings if f["severity"] == "error"], findings
    assert [f["kind"] for f in findings if f["severity"] == "info"
            and f["kind"].startswith(("camera_", "recorder_"))] == ["recorder_restart"]
    warnings = [f for f in findings if f["severity"] == "warning"]
    assert {f["kind"] for f in warnings} <= {"unsigned_frames", "unsigned_tail"}, warnings
    assert code == (1 if warnings else 0)
    assert report["verdict"] == ("not_authentic" if warnings else "authentic")
    for w in warnings:  # at most one checkpoint interval, 2 s of footage
        if w["first_frame"] is not None:  # a segment cut short names no frame
            assert w["last_frame"] - w["first_frame"] + 1 <= 2 * FPS + 1, w
    evs = report["cameras"][0]["events"]
    assert [e["event"] for e in evs] == ["recorder_start", "recorder_start", "recorder_stop"]
    assert evs[1]["detail"]["previous_run"] == "interrupted"
    # The RTSP camera's password is nowhere in what the service wrote or printed.
    for p in svc.data.rglob("*"):
        if p.is_file():
            assert RTSP_PASSWORD.encode() not in p.read_bytes(), p
    assert RTSP_PASSWORD not in svc.logs()
    assert svc.watcher is not None
    assert not [a for a in svc.watcher.command_lines() if RTSP_PASSWORD in " ".join(a)]


