"""One capture worker process per camera, restarted when it fails.

A worker is ``python -m vidproof record`` for one camera, with no duration. The
source URL (which may hold credentials) reaches it through its environment, never
its command line. A worker that dies is restarted with back-off; the restarted
recorder continues the camera's chain and signs a ``recorder_start`` event that
explains the gap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capture.sources import redact
from .config import CameraConfig, SiteConfig

log = logging.getLogger(__name__)
SOURCE_ENV = "VIDPROOF_SOURCE_URL"
# A worker must not outlive the service (killed, or crashed): a new service would start
# a second recorder on the same camera, and two writers ruin its chain. util-linux's
# setpriv sets the parent-death signal before it execs the worker (Linux).
_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
_DIE_WITH_SERVICE = [_SETPRIV, "--pdeathsig", "TERM", "--"] if _SETPRIV else []


@dataclass
class WorkerState:
    camera: CameraConfig
    process: subprocess.Popen[bytes] | None = None
    state: str = "starting"
    restarts: int = 0
    started_at: float = 0.0
    last_exit: int | None = None
    last_error: str = ""
    backoff: float = 1.0
    stderr_path: Path | None = None
    history: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, config: SiteConfig, python: str = sys.executable) -> None:
        self.config = config
        self.python = python
        self.workers = {c.id: WorkerState(c) for c in config.cameras if c.enabled}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _command(self, cam: CameraConfig) -> list[str]:
        c = self.config
        loc = cam.location
        cmd = [self.python, "-m", "vidproof", "record", "--source", f"env:{SOURCE_ENV}",
               "--camera-id", cam.id, "--location", f"{loc.label};{loc.lat},{loc.lon}",
               "--key", str(c.key), "--store", str(c.store),
               "--segment-seconds", str(c.segment_seconds),
               "--status-file", str(self.status_path(cam.id)),
               "--retention-days", repr(c.retention_days)]  # the worker purges its camera
        if c.cert is not None:
            cmd += ["--cert", str(c.cert)]
        if c.retention_override:
            cmd.append("--retention-override")
        if cam.stamp:
            cmd.append("--stamp")
        if not cam.close_shot:
            cmd.append("--wide-shot")
        if c.ntp is not None:  # clock discipline and trusted time, as record takes them
            cmd += c.ntp.flags()
        if c.tsa is not None:
            cmd += c.tsa.flags()
        return cmd

    def status_path(self, camera_id: str) -> Path:
        return self.config.data_dir / "run" / f"{camera_id}.status.json"

    def _spawn(self, w: WorkerState) -> None:
        run_dir = self.config.data_dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env[SOURCE_ENV] = w.camera.source_with_credentials()
        w.stderr_path = run_dir / f"{w.camera.id}.stderr"
        with open(w.stderr_path, "ab") as err:
            w.process = subprocess.Popen([*_DIE_WITH_SERVICE, *self._command(w.camera)],
                                         env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
        w.started_at = time.monotonic()
        w.state = "running"
        log.info("camera %s: worker started (pid %d, source %s)", w.camera.id, w.process.pid,
                 redact(w.camera.source))

    def start(self) -> None:
        for w in self.workers.values():
            try:
                self._spawn(w)
            except Exception as exc:  # noqa: BLE001 - one camera must not stop the others
                w.state, w.last_error = "failed", str(exc)
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for w in self.workers.values():
                with self._lock:
                    self._check(w)

    def _check(self, w: WorkerState) -> None:
        now = time.monotonic()
        p = w.process
        if p is not None and p.poll() is None:
            if now - w.started_at > 60:
                w.backoff = 1.0
            return
        if p is not None and w.state == "running":
            w.last_exit = p.returncode
            w.last_error = _last_line(w.stderr_path)
            w.state = "restarting"
            w.history.append(time.time())
            log.warning("camera %s: worker exited with %s (%s); restarting in %.0f s",
                        w.camera.id, p.returncode, w.last_error, w.backoff)
            w.started_at = now
            return
        if w.state in ("restarting", "failed") and now - w.started_at >= w.backoff:
            w.backoff = min(w.backoff * 2, 30.0)
            w.restarts += 1
            try:
                self._spawn(w)
            except Exception as exc:  # noqa: BLE001
                w.state, w.last_error, w.started_at = "failed", str(exc), now

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        procs = [w.process for w in self.workers.values()
                 if w.process is not None and w.process.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for w in self.workers.values():
            w.state = "stopped"

    def health(self, camera_id: str) -> dict[str, Any]:
        w = self.workers[camera_id]
        status = _read_json(self.status_path(camera_id))
        alive = w.process is not None and w.process.poll() is None
        if alive and w.process is not None and status.get("pid") != w.process.pid:
            status = {}  # the file is still the previous worker's: this one is starting
        cam_dir = self.config.store / camera_id
        used = _dir_size(cam_dir)
        free = shutil.disk_usage(self.config.data_dir).free if self.config.data_dir.exists() \
            else 0
        rate = status.get("bytes_per_second") or 0
        return {
            "camera_id": camera_id,
            "state": (status.get("state", "starting") if alive else w.state),
            "worker_pid": w.process.pid if alive and w.process else None,
            "restarts": w.restarts,
            "last_error": w.last_error,
            "frames_in": status.get("frames_in", 0),
            "frames_out": status.get("frames_out", 0),
            "dropped_frames": status.get("dropped_frames", 0),
            "last_frame_utc_ns": status.get("last_frame_utc_ns"),
            "clock_offset_ms": status.get("clock_offset_ms"),
            "stream": status.get("stream"),
            "disk_used_bytes": used,
            "disk_free_bytes": free,
            "seconds_left": (free / rate) if rate else None,
        }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def _last_line(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""
