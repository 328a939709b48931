"""Benchmark: ``vidproof record`` and ``vidproof verify`` against their floors, in one run.

The input is a 1080p25 H.264 file at about 4 Mbit/s with a 2-s GOP (50 frames),
60 s long by default, with moving content and noise so that the bitrate is real.
It is made once with stock ffmpeg (or PyAV when ffmpeg is not on PATH) and cached.

Measured, each as its own process (wall time, and CPU time = user + system from
``getrusage(RUSAGE_CHILDREN)``), best of ``--repeat`` runs:

* record: ``vidproof record --source FILE --fast`` into a fresh store, against the
  floor: bare PyAV demux + SHA-256 of every packet + remux of the same packets
  into MPEG-TS (the container of vidproof's segments);
* verify: ``vidproof verify STORE --json`` of that store, against the floor: bare
  PyAV demux + SHA-256 of every packet of the store's segments.

The floors are ``benchmarks/floor.py``, a script that imports only what they need.

Speed is media seconds per CPU-second (× real time per CPU-second); the ratio
vidproof/floor is the ratio of the speeds (target: at least 0.75 for both).

Run with the project's environment::

    .venv/bin/python benchmarks/record.py [--seconds 60] [--repeat 5] [--cache DIR]

``--profile DIR`` also writes a cProfile of one vidproof record and verify run.
``--strict`` exits 1 when a ratio misses its target.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import child_env, default_cache, encode_testsrc2, testsrc2_graph

WIDTH, HEIGHT, FPS = 1920, 1080, 25
GOP = 2 * FPS
BITRATE = 4_000_000
TARGET = 0.75
LOCATION = "Benchmark bench;48.8566,2.3522"
CONTENT = testsrc2_graph(WIDTH, HEIGHT, FPS)


# --- The floors: benchmarks/floor.py, run as child processes. ------------------------

FLOOR = Path(__file__).resolve().with_name("floor.py")


# --- The input file. --------------------------------------------------------------------

def _probe(path: Path) -> tuple[int, float, float]:
    """(frames, seconds, Mbit/s) of an H.264 file; raises if it is not one."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        if stream.codec_context.name != "h264" or stream.codec_context.width != WIDTH:
            raise ValueError(f"{path} is not {WIDTH}x{HEIGHT} H.264")
        frames = sum(1 for p in c.demux(stream) if p.size)
    seconds = frames / FPS
    return frames, seconds, path.stat().st_size * 8 / seconds / 1e6


def make_input(cache: Path, seconds: int) -> Path:
    """The cached benchmark input; made on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"h264-{WIDTH}x{HEIGHT}p{FPS}-4M-gop{GOP}-{seconds}s.mp4"
    if path.exists():
        try:
            if _probe(path)[0] == seconds * FPS:
                return path
        except Exception:  # noqa: BLE001 - a damaged cache entry is made again
            pass
        path.unlink()
    part = path.with_suffix(".part.mp4")
    t0 = time.perf_counter()
    ffmpeg = shutil.which("ffmpeg")
    print(f"making the input ({seconds} s of 1080p25 H.264) with "
          f"{'stock ffmpeg' if ffmpeg else 'PyAV'}; cached for next time ...", flush=True)
    if ffmpeg:
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", CONTENT, "-t", str(seconds),
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
             "-b:v", str(BITRATE), "-maxrate", str(BITRATE), "-bufsize", str(2 * BITRATE),
             "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", str(part)],
            check=True,
        )
    else:
        encode_testsrc2(part, WIDTH, HEIGHT, FPS, BITRATE, GOP, seconds, b_frames=True)
    part.rename(path)
    print(f"  made {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


# --- Measurement. -----------------------------------------------------------------------

@dataclass
class Sample:
    wall: float
    cpu: float


CHILD_ENV: dict[str, str] | None = None


def run_measured(cmd: list[str], what: str) -> tuple[Sample, str]:
    """Run ``cmd`` as a child process; its wall time and CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=CHILD_ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: {what} failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu), proc.stdout


def vidproof_cmd(*args: str | Path, profile: Path | None = None) -> list[str]:
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    return [*prefix, "-m", "vidproof", *map(str, args)]


def floor_cmd(*args: str | Path, demux_only: bool = False) -> list[str]:
    return [sys.executable, str(FLOOR), *(["--demux-only"] if demux_only else []),
            *map(str, args)]


def record_args(src: Path, store: Path, key: Path) -> list[str | Path]:
    return ["record", "--source", src, "--fast", "--camera-id", "bench",
            "--location", LOCATION, "--key", key, "--store", store]


def evidence_frames(store: Path) -> int:
    with open(store / "bench" / "evidence.jsonl", "rb") as f:
        return sum(1 for line in f if b'"type":"frame"' in line)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def best(samples: list[Sample]) -> Sample:
    return min(samples, key=lambda s: s.cpu)


def table(media_s: float, rows: list[tuple[str, str, Sample, Sample, Sample]],
          repeat: int) -> tuple[str, dict[str, float]]:
    lines = [
        f"{'':8}{'':10}{'wall s':>8}{'CPU s':>8}{'x real time':>13}{'x real time':>13}",
        f"{'':8}{'':10}{'':>8}{'':>8}{'(wall)':>13}{'per CPU-s':>13}",
    ]
    ratios: dict[str, float] = {}
    for step, _, vp, fl, strict in rows:
        for name, s in (("vidproof", vp), ("floor", fl), ("floor-do", strict)):
            lines.append(f"{step:8}{name:10}{s.wall:8.2f}{s.cpu:8.2f}"
                         f"{media_s / s.wall:13.1f}{media_s / s.cpu:13.1f}")
        ratio = fl.cpu / vp.cpu
        ratios[step] = ratio
        lines.append(f"{step:8}{'ratio':10}{'vidproof/floor = ':>29}{ratio:5.2f}   "
                     f"(target >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'})")
        lines.append(f"{step:8}{'ratio':10}{'vidproof/floor-do = ':>29}"
                     f"{strict.cpu / vp.cpu:5.2f}   (for reference, no target)")
    lines.append(f"best of {repeat} runs each (least CPU time); speed = media seconds / "
                 "CPU seconds; ratio = vidproof speed / floor speed\n"
                 "floor: bare PyAV (files opened with PyAV's defaults: the stream probe "
                 "decodes the first pictures); floor-do: the same, files opened as vidproof "
                 "opens them (demux only, no probe decode)")
    return "\n".join(lines), ratios


def benchmark(args: argparse.Namespace) -> int:
    global CHILD_ENV
    if not args.no_bytecode_cache:
        CHILD_ENV = child_env(args.cache)
    src = make_input(args.cache, args.seconds)
    frames, media_s, mbit = _probe(src)
    print(f"input: {src}\n  {WIDTH}x{HEIGHT} H.264, {FPS} fps, GOP {GOP}, {frames} frames, "
          f"{media_s:.1f} s, {mbit:.2f} Mbit/s; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; load average {_load()}", flush=True)
    src.read_bytes()  # into the page cache, for every contender alike
    work = Path(tempfile.mkdtemp(prefix="vidproof-bench-", dir=args.workdir))
    try:
        import vidproof
        from vidproof.keys import generate

        key, pub = generate(work / "keys")
        samples: dict[str, list[Sample]] = {k: [] for k in
                                            ("rec-vp", "rec-fl", "rec-do", "ver-vp",
                                             "ver-fl", "ver-do")}
        store0 = work / "store-0"
        # Warm-up, not measured: bytecode compiled and cached, files in the page cache.
        run_measured(floor_cmd("record", src, work / "warm.ts"), "floor record")
        run_measured(vidproof_cmd(*record_args(src, work / "warm", key)), "vidproof record")
        run_measured(vidproof_cmd("verify", work / "warm", "--trust", pub, "--json"),
                     "vidproof verify")
        shutil.rmtree(work / "warm")
        (work / "warm.ts").unlink()
        for i in range(args.repeat):
            out = work / f"floor-{i}.ts"
            s, stdout = run_measured(floor_cmd("record", src, out), "floor record")
            if int(stdout) != frames:
                raise SystemExit(f"benchmark: floor record wrote {stdout.strip()} packets, "
                                 f"expected {frames}")
            samples["rec-fl"].append(s)
            out.unlink()
            s, _ = run_measured(floor_cmd("record", src, out, demux_only=True), "floor record")
            samples["rec-do"].append(s)
            out.unlink()
            store = work / f"store-{i}"
            s, _ = run_measured(vidproof_cmd(*record_args(src, store, key)), "vidproof record")
            samples["rec-vp"].append(s)
            if evidence_frames(store) != frames:
                raise SystemExit(f"benchmark: vidproof recorded {evidence_frames(store)} "
                                 f"frames, expected {frames}")
            if i:
                shutil.rmtree(store)
        segments = sorted((store0 / "bench" / "segments").glob("*.ts"))
        for _ in range(args.repeat):
            s, stdout = run_measured(floor_cmd("verify", *segments), "floor verify")
            if int(stdout) != frames:
                raise SystemExit(f"benchmark: floor verify read {stdout.strip()} packets")
            samples["ver-fl"].append(s)
            s, _ = run_measured(floor_cmd("verify", *segments, demux_only=True), "floor verify")
            samples["ver-do"].append(s)
            s, stdout = run_measured(
                vidproof_cmd("verify", store0, "--trust", pub, "--json"), "vidproof verify")
            result = json.loads(stdout)
            if result["verdict"] != "authentic" or result["frames"] != frames:
                raise SystemExit(f"benchmark: vidproof verify said {result['verdict']}, "
                                 f"{result['frames']} frames")
            samples["ver-vp"].append(s)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            run_measured(vidproof_cmd(*record_args(src, work / "store-prof", key),
                                      profile=args.profile / "record.prof"), "profiled record")
            run_measured(vidproof_cmd("verify", store0, "--trust", pub, "--json",
                                      profile=args.profile / "verify.prof"), "profiled verify")
            print(f"profiles: {args.profile}/record.prof, {args.profile}/verify.prof "
                  "(python -m pstats FILE)")
        text, ratios = table(media_s, [
            ("record", "", best(samples["rec-vp"]), best(samples["rec-fl"]),
             best(samples["rec-do"])),
            ("verify", "", best(samples["ver-vp"]), best(samples["ver-fl"]),
             best(samples["ver-do"])),
        ], args.repeat)
        print(f"vidproof {vidproof.__version__}, {len(segments)} segment(s) in the store\n")
        print(text)
        print(f"load average at the end: {_load()} (other work on the machine adds noise: "
              "compare runs made at the same time, use more --repeat when it is busy)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    missed = [k for k, r in ratios.items() if r < TARGET]
    return 1 if args.strict and missed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=int, default=60, help="input length (default 60)")
    p.add_argument("--repeat", type=int, default=5, help="runs of each, best kept (default 5)")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help="where the input file is cached (default ~/.cache/vidproof-bench)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where stores are written (default: the system temp dir)")
    p.add_argument("--profile", type=Path, help="also write cProfile files here")
    p.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    p.add_argument("--no-bytecode-cache", action="store_true",
                   help="run the children with the caller's environment as is (with "
                        "PYTHONDONTWRITEBYTECODE, each run compiles vidproof first)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.seconds < 2 or args.repeat < 1:
        p.error("--seconds must be at least 2 and --repeat at least 1")
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
