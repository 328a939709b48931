"""The real `vidproof serve` in a subprocess, for the service's end-to-end tests.

A test writes a site configuration, makes its users with `vidproof user add` (the real
CLI), and starts the service on a free 127.0.0.1 port; the helpers speak HTTP to it
with httpx (and, where a request target must reach the server byte for byte, with
http.client, which does not normalise paths). Stopping the service also makes sure no
capture worker it started is left behind, even when the test failed.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, vidproof

ROLES = ("installer", "operator", "police", "auditor")
USERS = {role: (f"{role}-1", f"{role} password 1") for role in ROLES}  # role: (name, password)
START_TIMEOUT = 60.0


@dataclass
class CameraSpec:
    id: str
    source: str
    extra: dict[str, str | bool] = field(default_factory=dict)


def toml_value(value: str | bool | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


def write_config(path: Path, cameras: list[CameraSpec], segment_seconds: float = 2,
                 tables: str = "", site: dict[str, str | list[str]] | None = None) -> Path:
    """A site config; ``tables``: more TOML tables ([ntp], [tsa]) as text; ``site``:
    more [site] settings."""
    lines = ['[site]', 'name = "vidproof test site"',
             *(f"{k} = {json.dumps(v)}" for k, v in (site or {}).items()), "",
             "[storage]", 'path = "data"', f"segment_seconds = {segment_seconds}", "",
             tables]
    for i, cam in enumerate(cameras):
        lines += ["[[cameras]]", f"id = {toml_value(cam.id)}",
                  f"source = {toml_value(cam.source)}",
                  f'location = "Test camera {i + 1}, 12 rue de Rivoli, Paris"',
                  f'lat = "48.{8566 + i}"', 'lon = "2.3522"']
        lines += [f"{k} = {toml_value(v)}" for k, v in cam.extra.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def add_users(users_file: Path, scratch: Path, roles: tuple[str, ...] = ROLES) -> None:
    """One `vidproof user add` per role; the password files are removed afterwards."""
    for role in roles:
        name, password = USERS[role]
        pw = scratch / f"{name}.pw"
        pw.write_text(password + "\n")
        r = vidproof("user", "add", name, "--role", role, "--password-file", pw,
                     "--users", users_file)
        pw.unlink()
        assert r.code == 0, r.err


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def all_cmdlines() -> dict[int, list[str]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = cmdline(int(entry))
            if args:
                out[int(entry)] = args
    return out


class ProcWatcher:
    """Watches every process's command line (what `ps` shows) while a test runs, so that
    short-lived processes, such as a worker that fails to connect, are seen too. A new
    process is read again for its first two seconds: a child shows its parent's command
    line until it calls exec."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.seen: dict[int, tuple[float, list[list[str]]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-watcher", daemon=True)

    def __enter__(self) -> ProcWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                first, lines = self.seen.get(pid, (now, []))
                if lines and now - first > 2:
                    continue
                args = cmdline(pid)
                if args and args not in lines:
                    lines.append(args)
                self.seen[pid] = (first, lines)

    def command_lines(self) -> list[list[str]]:
        return [args for _, lines in list(self.seen.values()) for args in lines]


def wait_until(what: str, check: Callable[[], Any], timeout: float,
               interval: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Service:
    def __init__(self, root: Path, config: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.config = config
        self.data = root / "data"
        self.users = root / "users.json"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.out = root / "serve.out"
        self.err = root / "serve.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.tokens: dict[str, str] = {}
        self.seen_workers: set[int] = set()
        self.watcher: ProcWatcher | None = None
        self.extra: dict[str, Any] = {}  # whatever a test module wants to keep with it

    @property
    def pub(self) -> Path:
        return self.data / "keys" / "device.pub"

    @property
    def store(self) -> Path:
        return self.data / "store"

    def start(self) -> None:
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vidproof", "serve", "--config", str(self.config),
                 "--data", str(self.data), "--users", str(self.users),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env)

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (
                f"vidproof serve exited: {self.err.read_text()}")
            try:
                return self.http.get("/api/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until("/api/health", healthy, START_TIMEOUT, 0.2)

    def logs(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    # --- HTTP ---------------------------------------------------------------------------

    def login(self, role: str) -> str:
        if role not in self.tokens:
            name, password = USERS[role]
            r = self.http.post("/api/login", json={"username": name, "password": password})
            assert r.status_code == 200, r.text
            assert r.json()["role"] == role
            self.tokens[role] = r.json()["token"]
        return self.tokens[role]

    def request(self, method: str, path: str, role: str | None = None,
                **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.login(role)}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, role: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, role, **kwargs)

    def raw(self, method: str, target: str, role: str | None = None,
            body: bytes | None = None, content_type: str | None = None
            ) -> tuple[int, bytes]:
        """A request whose target goes out exactly as given (no dot-segment removal)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.login(role)}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def cameras(self, role: str = "operator") -> dict[str, dict[str, Any]]:
        r = self.get("/api/cameras", role)
        assert r.status_code == 200, r.text
        cams = {c["camera_id"]: c for c in r.json()}
        self.seen_workers.update(c["worker_pid"] for c in cams.values() if c["worker_pid"])
        return cams

    # --- stopping -----------------------------------------------------------------------

    def worker_pids(self) -> set[int]:
        pids = set(self.seen_workers)
        for status in (self.data / "run").glob("*.status.json"):
            try:
                pids.add(int(json.loads(status.read_text())["pid"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        # Only our own workers: their command line names this data directory.
        return {p for p in pids if alive(p) and str(self.data) in " ".join(cmdline(p))}

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as an init system would; the service stops its workers."""
        proc = self.proc
        if proc is None:
            return None
        workers = self.worker_pids()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.reap(workers)
        return proc.returncode

    def reap(self, workers: set[int]) -> None:
        for pid in workers | self.worker_pids():  # never leave a recorder behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        self.http.close()


@contextmanager
def running_service(root: Path, cameras: list[CameraSpec], *, env: dict[str, str] | None = None,
                    roles: tuple[str, ...] = ROLES, segment_seconds: float = 2,
                    tables: str = "", site: dict[str, str | list[str]] | None = None
                    ) -> Iterator[Service]:
    root.mkdir(parents=True, exist_ok=True)
    config = write_config(root / "site.toml", cameras, segment_seconds, tables, site)
    svc = Service(root, config, env)
    add_users(svc.users, root, roles)
    try:
        with ProcWatcher() as watcher:
            svc.watcher = watcher
            svc.start()
            yield svc
    finally:
        svc.close()
