"""Benchmark: how many real-time ``testsrc`` cameras one ``vidproof serve`` sustains,
and the latency of ``GET /api/cameras`` while they record.

For each number of cameras N, the real service is started as a child process
(``python -m vidproof serve``, as an operator runs it) with a generated site
configuration: N cameras ``testsrc:WxH@FPS`` (default 704x576@12, the decree's
close-shot minimum), passthrough, 10-s segments, recorded at real time (the service
never passes ``--fast``), one capture worker process per camera. One operator user
is made with ``vidproof user add``; the benchmark logs in as it.

A ``testsrc`` camera is simulated inside its worker: the worker draws FFmpeg's
testsrc2 and encodes it with libx264 (ultrafast, as a camera would), then records
that stream passthrough (digest, chain, segments, signed and fsynced checkpoints).
The workers' CPU therefore includes the simulated cameras' encoders; the cost of the
simulated camera alone is measured in this process before the sweep and printed, so
that the reader can see how much of the box the cameras take.

Per N: once every camera is ``recording``, a warm-up (at least 5 s, and until every
camera's lag is under 2 s, at most 30 s), then a measured window (``--seconds``,
default 20). During the window one client requests ``GET /api/cameras`` every 100 ms
(sequentially: the next request waits for the answer), and its latencies give p50,
p99 and max. N is sustained when every camera, over the window:

* dropped no frame (``dropped_frames`` as ``/api/cameras`` reports it did not grow);
* recorded at least 99 % of real time: frames recorded >= 0.99 x FPS x the time
  elapsed. The testsrc source paces itself at real time with sleeps and never drops
  a frame when it falls behind: a camera that cannot keep up records fewer frames
  than real time and falls behind. Frames and times are read from the worker's
  status file (``DATA/run/ID.status.json``, where ``/api/cameras`` gets
  ``frames_out`` and ``last_frame_utc``), because the file also holds the time it was
  written: the API's values move in steps of about one second (a status write per
  checkpoint), too coarse for 1 % of a 20-s window;
* was ``recording`` at every answer, was not restarted, and its lag stayed under 2 s
  at every answer, lag being the time of the answer minus the camera's
  ``last_frame_utc`` (a testsrc frame's time is when it is due at real time); this lag
  includes up to about one second of status-file cadence. Under 2 s at every answer,
  not only at the end: a worker that stalls for seconds and then catches up records
  every frame of the window (the testsrc source waits for it), where a real camera's
  stream would have had to wait in a socket buffer, or be lost.

Also printed per N: the CPU time of the camera workers and of the serve process
(``/proc/PID/stat``, user + system) as % of one core, how busy the whole box was
(``/proc/stat``: other work on the machine included), and the load average.

The sweep stops at the first N that is not sustained; between the last N sustained
and that one, it then bisects (a few more steps, ``--no-refine`` to skip), and prints
the largest N sustained and the p99 latency of ``/api/cameras`` at that N.

    .venv/bin/python benchmarks/service.py [--size 704x576] [--fps 12] [--seconds 20]
                                           [--max 128] [--ns 1,2,4] [--no-refine] [--keep]

The children run with Python bytecode cached under ``~/.cache/vidproof-bench/pycache``
(as an installed package has it), so that N workers starting at once do not each
compile vidproof first. Exit status: 0 when the sweep ran, 1 when the service could
not be run, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
from _common import child_env, default_cache

DEFAULT_NS = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 128)
SEGMENT_SECONDS = 10
WARMUP_MIN, WARMUP_MAX = 5.0, 30.0
PROBE_INTERVAL = 0.1  # s between requests to /api/cameras
REAL_TIME = 0.99  # frames recorded / frames due, at least
MAX_LAG = 2.0  # s
START_TIMEOUT = 60.0
USER = "bench-operator"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark cannot go on (service failed to start, ...): one line, exit 1."""


# --- the machine --------------------------------------------------------------------

def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14, 15


def box_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - values[3] - values[4], total


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def one_line(text: str, limit: int = 600) -> str:
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text[-limit:] if text else "(nothing on stderr)"


# --- the simulated camera, alone ----------------------------------------------------

def camera_cost(width: int, height: int, fps: int) -> float:
    """CPU seconds per frame of the simulated camera alone: vidproof's own testsrc
    source (testsrc2 drawn, libx264 encode), as fast as it goes, in this process."""
    from vidproof.capture.sources import testsrc

    spec = f"testsrc:{width}x{height}@{fps}"
    seconds = max(5.0, 120 / fps)
    for _ in testsrc(spec, fast=True, duration=1, clock=time.time_ns):
        pass  # warm-up: libraries loaded
    start = self_cpu()
    frames = sum(1 for _ in testsrc(spec, fast=True, duration=seconds, clock=time.time_ns)) - 1
    return (self_cpu() - start) / max(frames, 1)


# --- the service --------------------------------------------------------------------

def write_config(path: Path, n: int, source: str) -> None:
    lines = ["[site]", 'name = "vidproof service benchmark"', "",
             "[storage]", 'path = "data"', f"segment_seconds = {SEGMENT_SECONDS}", ""]
    for i in range(n):
        lines += ["[[cameras]]", f'id = "cam-{i + 1:03d}"', f'source = "{source}"',
                  f'location = "Benchmark camera {i + 1}, 12 rue de Rivoli, Paris"',
                  f'lat = "48.{856600 + i:06d}"', 'lon = "2.352200"', "close_shot = true",
                  "stamp = false", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def add_user(users: Path, work: Path, password: str, env: dict[str, str]) -> None:
    pw = work / "bench.pw"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    try:
        r = subprocess.run([sys.executable, "-m", "vidproof", "user", "add", USER,
                            "--role", "operator", "--password-file", str(pw),
                            "--users", str(users)],
                           capture_output=True, text=True, env=env, check=False)
    finally:
        pw.unlink()
    if r.returncode != 0:
        raise BenchError(f"vidproof user add failed (exit {r.returncode}): "
                         f"{one_line(r.stderr)}")


class Service:
    """``vidproof serve`` in a child process of its own session; stop() leaves nothing
    behind: the serve process is stopped with SIGINT (killed if it does not stop), and
    any worker of this data directory still alive afterwards is killed."""

    def __init__(self, root: Path, config: Path, users: Path, env: dict[str, str]) -> None:
        self.root, self.config, self.users, self.env = root, config, users, env
        self.data = root / "data"
        self.port = free_port()
        self.err_path = root / "serve.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self.workers: set[int] = set()
        self.left_behind = 0
        self.exit_code: int | None = None

    def start(self) -> None:
        with open(self.root / "serve.out", "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vidproof", "serve", "--config", str(self.config),
                 "--data", str(self.data), "--users", str(self.users),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"vidproof serve exited with {self.proc.returncode}: "
                                 f"{one_line(self.stderr())}")
            try:
                if self.http.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"vidproof serve did not answer /api/health within "
                                 f"{START_TIMEOUT:.0f} s: {one_line(self.stderr())}")
            time.sleep(0.2)

    def stderr(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def login(self, password: str) -> None:
        r = self.http.post("/api/login", json={"username": USER, "password": password})
        if r.status_code != 200:
            raise BenchError(f"login failed ({r.status_code}): {one_line(r.text)}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def cameras(self) -> list[dict[str, Any]]:
        try:
            r = self.http.get("/api/cameras")
        except httpx.HTTPError as exc:
            raise BenchError(f"GET /api/cameras: {type(exc).__name__} {exc}") from None
        if r.status_code != 200:
            raise BenchError(f"GET /api/cameras: {r.status_code} {one_line(r.text)}")
        cams: list[dict[str, Any]] = r.json()
        self.workers.update(c["worker_pid"] for c in cams if c.get("worker_pid"))
        return cams

    def status_file(self, camera_id: str) -> dict[str, Any]:
        try:
            value = json.loads((self.data / "run" / f"{camera_id}.status.json").read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _our_workers(self) -> set[int]:
        pids = set(self.workers)
        for status in (self.data / "run").glob("*.status.json"):
            try:
                pids.add(int(json.loads(status.read_text())["pid"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        # Only our own: a worker's command line names this data directory.
        return {p for p in pids if alive(p) and str(self.data) in cmdline(p)}

    def stop(self) -> None:
        proc = self.proc
        workers = self._our_workers()
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # as Ctrl-C: the service stops its workers
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.exit_code = proc.returncode
        deadline = time.monotonic() + 10
        while (left := {p for p in workers | self._our_workers() if alive(p)}) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:  # never leave a recorder behind
            self.left_behind += 1
            os.kill(pid, signal.SIGKILL)
        self.http.close()


# --- one step: N cameras ------------------------------------------------------------

@dataclass
class Step:
    n: int
    ok: bool = False
    reasons: list[str] = field(default_factory=list)
    worst_rate: float = 0.0  # frames recorded / frames due, worst camera
    worst_frames: tuple[int, float] = (0, 0.0)  # (recorded, due) of that camera
    dropped: int = 0
    max_lag: float = 0.0
    end_lag: float = 0.0
    latencies: list[float] = field(default_factory=list)  # s
    errors: int = 0
    workers_cpu: float = 0.0  # share of one core
    serve_cpu: float = 0.0
    probe_cpu: float = 0.0
    box_busy: float = 0.0  # share of all CPUs
    load: str = ""
    window: float = 0.0

    def percentile(self, p: float) -> float:
        """Nearest rank, in ms."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000


def utc_ns(text: str | None) -> int | None:
    if not text:
        return None
    return round(datetime.fromisoformat(text).timestamp() * 1e9)


def lags(cams: list[dict[str, Any]], now_ns: int) -> dict[str, float]:
    """Per camera: seconds from its last frame's time to ``now_ns`` (inf: no frame yet)."""
    out = {}
    for c in cams:
        last = utc_ns(c.get("last_frame_utc"))
        out[c["camera_id"]] = math.inf if last is None else (now_ns - last) / 1e9
    return out


def wait_recording(svc: Service, n: int) -> tuple[list[dict[str, Any]] | None, str]:
    """Every camera recording (and the API listing all N), or None and why not."""
    timeout = 30 + 0.5 * n
    deadline = time.monotonic() + timeout
    while True:
        cams = svc.cameras()
        waiting = [c for c in cams if c["state"] != "recording"]
        if len(cams) == n and not waiting:
            return cams, ""
        if time.monotonic() > deadline:
            c = waiting[0] if waiting else {"camera_id": "?", "state": "?", "last_error": ""}
            why = f" ({c['last_error']})" if c.get("last_error") else ""
            return None, (f"{len(waiting)} of {n} cameras not recording after {timeout:.0f} s, "
                          f"e.g. {c['camera_id']}: {c['state']}{why}")
        time.sleep(0.5)


def warm_up(svc: Service) -> None:
    """At least WARMUP_MIN s, and until every camera's lag is under MAX_LAG (at most
    WARMUP_MAX s): cameras that all started at once may first have to catch up."""
    start = time.monotonic()
    while True:
        time.sleep(0.5)
        elapsed = time.monotonic() - start
        if elapsed >= WARMUP_MAX:
            return
        if elapsed >= WARMUP_MIN and max(lags(svc.cameras(), time.time_ns()).values()) < MAX_LAG:
            return


def measure(svc: Service, n: int, fps: int, seconds: float) -> Step:
    step = Step(n)
    cams, why = wait_recording(svc, n)
    if cams is None:
        step.reasons.append(why)
        return step
    warm_up(svc)

    # Window start: the API's view, the status files, the CPU counters.
    first = {c["camera_id"]: c for c in svc.cameras()}
    pids = {cid: c["worker_pid"] for cid, c in first.items()}
    status0 = {cid: svc.status_file(cid) for cid in first}
    assert svc.proc is not None
    serve_pid = svc.proc.pid
    cpu0 = {pid: proc_cpu(pid) for pid in [serve_pid, *pids.values()] if pid}
    box0, self0, t0 = box_cpu(), self_cpu(), time.monotonic()

    # The window: GET /api/cameras every PROBE_INTERVAL s, one request at a time.
    bad_states: dict[str, str] = {}
    max_lag: dict[str, float] = dict.fromkeys(first, 0.0)
    last: dict[str, dict[str, Any]] = first
    i = 0
    while (now := time.monotonic()) < t0 + seconds:
        next_at = t0 + i * PROBE_INTERVAL
        if next_at > now:
            time.sleep(next_at - now)
        i += 1
        r0 = time.perf_counter()
        try:
            r = svc.http.get("/api/cameras")
            body = r.content
        except httpx.HTTPError:
            step.errors += 1
            continue
        step.latencies.append(time.perf_counter() - r0)
        if r.status_code != 200:
            step.errors += 1
            continue
        now_ns = time.time_ns()
        cams = json.loads(body)
        for cid, lag in lags(cams, now_ns).items():
            max_lag[cid] = max(max_lag.get(cid, 0.0), lag)
        for c in cams:
            if c["state"] != "recording":
                bad_states.setdefault(c["camera_id"], c["state"])
        last = {c["camera_id"]: c for c in cams}

    # Window end.
    t1 = time.monotonic()
    cpu1 = {pid: proc_cpu(pid) for pid in cpu0}
    box1, self1 = box_cpu(), self_cpu()
    status1 = {cid: svc.status_file(cid) for cid in first}
    end = svc.cameras()
    end_ns = time.time_ns()
    step.window = t1 - t0
    step.load = load()

    def share(pid_list: list[int]) -> float:
        used = 0.0
        for pid in pid_list:
            a, b = cpu0.get(pid), cpu1.get(pid)
            if a is not None and b is not None:
                used += b - a
        return used / step.window

    step.workers_cpu = share([p for p in pids.values() if p])
    step.serve_cpu = share([serve_pid])
    step.probe_cpu = (self1 - self0) / step.window
    busy, total = box1[0] - box0[0], box1[1] - box0[1]
    step.box_busy = busy / total if total else math.nan

    # Per camera.
    end_by_id = {c["camera_id"]: c for c in end}
    end_lags = lags(end, end_ns)
    for cid, lag in end_lags.items():
        max_lag[cid] = max(max_lag.get(cid, 0.0), lag)
    step.end_lag = max(end_lags.values(), default=math.inf)
    step.max_lag = max(max_lag.values(), default=math.inf)
    step.worst_rate = math.inf
    failed: list[str] = []
    for cid, c0 in first.items():
        c1 = end_by_id.get(cid, last.get(cid, {}))
        problems = []
        dropped = c1.get("dropped_frames", 0) - c0.get("dropped_frames", 0)
        step.dropped += dropped
        if dropped:
            problems.append(f"{dropped} dropped")
        if c1.get("restarts") != c0.get("restarts") or c1.get("worker_pid") != pids[cid]:
            problems.append("worker restarted")
        if cid in bad_states:
            problems.append(f"state {bad_states[cid]}")
        s0, s1 = status0[cid], status1[cid]
        recorded = s1.get("frames_out", 0) - s0.get("frames_out", 0)
        elapsed = (s1.get("updated_utc_ns", 0) - s0.get("updated_utc_ns", 0)) / 1e9
        due = fps * elapsed
        rate = recorded / due if due > 0 and s0.get("pid") == s1.get("pid") == pids[cid] \
            else 0.0
        if rate < step.worst_rate:
            step.worst_rate, step.worst_frames = rate, (recorded, due)
        if rate < REAL_TIME:
            problems.append(f"{rate:.1%} of real time")
        if max_lag.get(cid, math.inf) >= MAX_LAG:
            problems.append(f"lag up to {max_lag.get(cid, math.inf):.1f} s")
        if problems:
            failed.append(f"{cid}: {', '.join(problems)}")
    if step.errors:
        step.reasons.append(f"{step.errors} /api/cameras requests failed")
    if failed:
        step.reasons.append(f"{len(failed)} of {n} cameras not sustained, e.g. "
                            + "; ".join(failed[:3]))
    step.ok = not step.reasons
    return step


def run_step(n: int, args: argparse.Namespace, work: Path, users: Path, password: str,
             env: dict[str, str]) -> Step:
    root = work / f"n{n:03d}"
    root.mkdir()
    config = root / "site.toml"
    write_config(config, n, f"testsrc:{args.width}x{args.height}@{args.fps}")
    svc = Service(root, config, users, env)
    try:
        svc.start()  # a service that cannot start stops the benchmark (BenchError)
        svc.login(password)
        try:
            step = measure(svc, n, args.fps, args.seconds)
        except BenchError as exc:  # an API that fails under load: this N is not sustained
            step = Step(n, reasons=[str(exc)])
    finally:
        svc.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if svc.left_behind:
        step.reasons.append(f"{svc.left_behind} workers still alive after the service "
                            "stopped (killed)")
        step.ok = False
    return step


# --- output -------------------------------------------------------------------------

HEADER = (f"{'cams':>4} {'recorded/due':>14} {'real':>6} {'drop':>4} {'lag max/end s':>13} "
          f"{'/api/cameras ms p50/p99/max':>27} {'reqs':>4} "
          f"{'workers %core':>13} {'/cam':>5} {'serve':>5} {'box %':>5} {'load 1m':>7}  verdict")


def row(s: Step) -> str:
    rec, due = s.worst_frames
    lat = f"{s.percentile(0.5):.1f}/{s.percentile(0.99):.1f}/{s.percentile(1.0):.1f}"
    lag = f"{s.max_lag:.2f}/{s.end_lag:.2f}" if s.latencies else "-"
    frames = f"{rec}/{due:.0f}" if s.latencies else "-"
    real = f"{s.worst_rate:.1%}" if s.latencies else "-"
    return (f"{s.n:>4} {frames:>14} {real:>6} {s.dropped:>4} {lag:>13} {lat:>27} "
            f"{len(s.latencies):>4} {100 * s.workers_cpu:>13.1f} "
            f"{100 * s.workers_cpu / s.n:>5.1f} {100 * s.serve_cpu:>5.1f} "
            f"{100 * s.box_busy:>5.1f} {s.load.split()[0] if s.load else '-':>7}  "
            f"{'sustained' if s.ok else 'NOT sustained: ' + '; '.join(s.reasons)}")


# --- the sweep ----------------------------------------------------------------------

def sweep(args: argparse.Namespace) -> int:
    import vidproof

    cost = camera_cost(args.width, args.height, args.fps)
    cpus = os.cpu_count() or 1
    print(f"vidproof {vidproof.__version__} serve, python {sys.version.split()[0]}, {cpus} CPUs, "
          f"load average {load()}\n"
          f"cameras: testsrc:{args.width}x{args.height}@{args.fps}, passthrough, real time, "
          f"{SEGMENT_SECONDS}-s segments; window {args.seconds:g} s after a warm-up of "
          f"{WARMUP_MIN:g} to {WARMUP_MAX:g} s; GET /api/cameras every "
          f"{PROBE_INTERVAL * 1000:.0f} ms, one at a time\n"
          f"the simulated camera alone (testsrc2 drawn, libx264 ultrafast encode, inside "
          f"each worker): {cost * 1000:.2f} ms CPU a frame = "
          f"{100 * cost * args.fps:.1f} % of one core per camera (measured here)\n"
          f"sustained: no dropped frame, >= {REAL_TIME:.0%} of real time recorded, lag "
          f"< {MAX_LAG:g} s at every answer, always recording, no restart, no failed "
          "request\n",
          flush=True)
    print(HEADER)
    print("-" * len(HEADER), flush=True)

    env = child_env(args.cache)
    work = Path(tempfile.mkdtemp(prefix="vidproof-bench-service-", dir=args.workdir))
    steps: dict[int, Step] = {}
    try:
        users = work / "users.json"
        password = secrets.token_urlsafe(18)
        add_user(users, work, password, env)

        def run(n: int) -> Step:
            step = run_step(n, args, work, users, password, env)
            steps[n] = step
            print(row(step), flush=True)
            return step

        passed, failed = 0, 0
        for n in args.ns:
            if run(n).ok:
                passed = n
            else:
                failed = n
                break
        if failed and passed and args.refine:
            lo, hi = passed, failed
            while hi - lo > max(1, lo // 10):  # to within 10 % of the answer
                mid = (lo + hi) // 2
                if run(mid).ok:
                    lo = mid
                else:
                    hi = mid
            passed, failed = lo, hi
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    size = f"{args.width}x{args.height}@{args.fps}"
    print()
    if not passed:
        print(f"no N sustained: {failed} camera(s) of testsrc:{size} already fail on this box "
              f"({cpus} CPUs)")
        return 0
    best = steps[passed]
    above = (f"; {failed} cameras were not" if failed else
             f"; every N tried was sustained: the limit is above {passed}")
    print(f"largest N sustained: {passed} cameras of testsrc:{size} recording at real time "
          f"on this box ({cpus} CPUs){above}")
    print(f"GET /api/cameras at {passed} cameras, while recording: p50 "
          f"{best.percentile(0.5):.1f} ms, p99 {best.percentile(0.99):.1f} ms, max "
          f"{best.percentile(1.0):.1f} ms ({len(best.latencies)} requests"
          f"{'; with fewer than 100, p99 is the maximum' if len(best.latencies) < 100 else ''})")
    print(f"CPU at {passed} cameras: workers {100 * best.workers_cpu:.0f} % of one core "
          f"({100 * best.workers_cpu / passed:.1f} % per camera, of which the simulated "
          f"camera's encoder about {100 * cost * args.fps:.1f} %), serve "
          f"{100 * best.serve_cpu:.1f} %, this benchmark's client "
          f"{100 * best.probe_cpu:.1f} %; the box was {100 * best.box_busy:.0f} % busy "
          f"(all its CPUs, other work included); load average at the end {best.load}")
    return 0


def parse_ns(text: str) -> list[int]:
    try:
        ns = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {text!r}") \
            from None
    if not ns or any(n < 1 for n in ns) or ns != sorted(set(ns)):
        raise argparse.ArgumentTypeError(f"expected increasing positive numbers: {text!r}")
    return ns


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad usage: one line, exit 2."""
        print(f"service.py: {message} (--help for usage)", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--size", default="704x576", help="camera picture size (default 704x576)")
    ap.add_argument("--fps", type=int, default=12, help="camera frame rate (default 12)")
    ap.add_argument("--seconds", type=float, default=20, help="measured window (default 20)")
    ap.add_argument("--max", type=int, default=DEFAULT_NS[-1],
                    help=f"largest N of the default sequence (default {DEFAULT_NS[-1]})")
    ap.add_argument("--ns", type=parse_ns,
                    help="the numbers of cameras to try, e.g. 1,2,4 (no bisection after)")
    ap.add_argument("--no-refine", dest="refine", action="store_false",
                    help="do not bisect between the last N sustained and the first not")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--cache", type=Path, default=default_cache(),
                    help="bytecode cache of the children (default ~/.cache/vidproof-bench)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the work directory is made (default: the system temp dir)")
    args = ap.parse_args(argv)
    m = re.fullmatch(r"(\d+)x(\d+)", args.size)
    if not m:
        ap.error(f"--size: expected WxH, e.g. 704x576, not {args.size!r}")
    args.width, args.height = int(m.group(1)), int(m.group(2))
    if not (16 <= args.width <= 7680 and 16 <= args.height <= 4320
            and args.width % 2 == 0 and args.height % 2 == 0):
        ap.error("--size: even sizes from 16x16 to 7680x4320")
    if not 1 <= args.fps <= 120:
        ap.error("--fps: from 1 to 120")
    if args.seconds < 2:
        ap.error("--seconds: at least 2")
    if args.max < 1:
        ap.error("--max: at least 1")
    if args.ns is not None:
        args.refine = False
    else:
        args.ns = [n for n in DEFAULT_NS if n < args.max] + [args.max]
    if not sys.platform.startswith("linux"):
        print("service.py: needs Linux (/proc)", file=sys.stderr)
        return 2
    try:
        return sweep(args)
    except BenchError as exc:
        print(f"service.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("service.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
