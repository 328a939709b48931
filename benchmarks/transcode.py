"""Benchmark: transcode mode (``record --stamp``) against bare decode -> encode, in one run.

The input, per size, is an H.264 file (FFmpeg's testsrc2 with moving noise, so that
the encoder has real work; 25 fps, no B-frames, 2-s GOP, camera-like bitrates: about
1.5 Mbit/s at 704x576 and 4 Mbit/s at 1920x1080), made once with PyAV and cached.

Measured, in this process, as CPU time (user + system of every thread: decoder and
encoder threads included, waits on the disk excluded), best of ``--repeat`` runs,
the three in turn so that they share the machine's conditions:

* floor: PyAV decode of every frame -> the same encoder with the same settings
  (:class:`vidproof.encode.Encoder`: libx264, preset, CRF, GOP, one encoder thread)
  -> packets; nothing else; one frame at a time (the target's floor);
* batched: the floor, decoding a batch of frames and then encoding them, in the
  batches vidproof uses (``vidproof.encode.batch_size``: 6 frames at 25 fps): what
  batching alone gains, so that vidproof's own cost shows apart from it;
* vidproof: the real recorder (:class:`vidproof.capture.worker.Recorder`, transcode
  mode) on the same file, in its batches: decode -> a frame of its own (``Owner``:
  handed over when the decoder has let go of it, so ``make_writable`` copies nothing
  in a camera-like stream) -> stamp on the YUV 4:2:0 planes -> fingerprint ->
  duplicate check -> the same encoder -> frame digest, chain entry, MPEG-TS segment,
  signed checkpoints (with their fsyncs) into a fresh store (the last run's deleted,
  and the page cache written out, before the measure starts: before every run).

Both decode alike (``vidproof.capture.raw.decoder_threads``: as many decoder threads
as encoder threads, one here, as transcode mode sets them) and encode alike (the same
``Encoder`` and settings, one thread); only vidproof's own work differs.

Each run starts a recorder as a camera connection does: a new store, the stamp's
glyphs laid out, the encoder opened, the first segment created (about 15 ms of CPU
at 704x576, paid once per connection, where a camera then records for hours). The
inputs are 20 s long by default so that the figures are those of a camera that is
recording, not of one that is starting: on 8 s, start-up alone weighs about 75 us a
frame at 704x576 (``--seconds 8`` shows it).

Printed per size: frames per CPU-second of each (its best run), vidproof's ratio to
the floor (target: at least 0.95), the median of the ratios of the runs made side by
side ("pairs": how much the load moved the figures), vidproof's ratio to the batched
floor (its own work alone), the cost vidproof adds per frame against the floor,
and, at 704x576, how many 12-fps cameras one core sustains (vidproof's frames per
CPU-second / 12); then the machine's load averages before and after (CPU time also
grows when other processes share the caches and memory: compare runs made at a low
load).

    .venv/bin/python benchmarks/transcode.py [--seconds 20] [--repeat 7] [--preset veryfast]
                                             [--size 704x576] [--cache DIR] [--strict]

``--strict`` exits 1 when a ratio misses the target.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from _common import default_cache, encode_testsrc2

from vidproof.capture.raw import RawInfo, decoder_threads
from vidproof.capture.worker import Recorder, RecordSettings
from vidproof.encode import (
    PRESETS,
    TIME_BASE,
    Encoder,
    EncoderSettings,
    TranscodeSettings,
    batch_size,
)
from vidproof.keys import generate, load_signer
from vidproof.model import Location
from vidproof.stamp import native_built

FPS = 25
GOP = 2 * FPS
SIZES = {(704, 576): 1_500_000, (1920, 1080): 4_000_000}
TARGET = 0.95
CAMERA_FPS = 12
LOCATION = Location("Benchmark, 12 rue de Rivoli, Paris", "48.8566", "2.3522")


def cpu() -> float:
    """User + system CPU seconds of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- input ----------------------------------------------------------------------------

def make_input(cache: Path, width: int, height: int, bitrate: int, seconds: int) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"transcode-h264-{width}x{height}p{FPS}-{bitrate // 1000}k-{seconds}s.mp4"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.mp4")
    encode_testsrc2(tmp, width, height, FPS, bitrate, GOP, seconds, b_frames=False)
    tmp.replace(path)
    return path


# --- the two paths --------------------------------------------------------------------

def floor(path: Path, settings: EncoderSettings, batched: bool = False) -> int:
    """Bare PyAV decode -> encode with vidproof's encoder settings, one frame at a time;
    ``batched``: decode a batch of frames, then encode them, in vidproof's batches
    (``vidproof.encode.batch_size``): what batching alone gains."""
    count = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        decoder_threads(stream.codec_context, settings.threads)  # as transcode mode does
        enc: Encoder | None = None
        none = av.video.frame.PictureType.NONE
        batch: list[Any] = []
        size = 1
        for frame in itertools.chain(c.decode(stream), (None,)):  # None: the end
            if frame is not None:
                if enc is None:
                    enc = Encoder(settings, frame.width, frame.height, Fraction(FPS))
                    if batched:
                        size = batch_size(RawInfo(frame.width, frame.height, Fraction(FPS),
                                                  "", "media"))
                batch.append(frame)
                if len(batch) < size:
                    continue
            for f in batch:
                assert enc is not None
                f.pts, f.time_base, f.pict_type = count * 3600, TIME_BASE, none
                enc.encode(f)
                count += 1
            batch.clear()
        if enc is not None:
            enc.encode(None)
    return count


def quiet(work: Path) -> None:
    """Before each measured run (not measured): the last run's store deleted, and dirty
    pages written out, so that no run pays for the one before (the kernel's writeback
    and file deletion run beside the next run, on the same CPUs)."""
    shutil.rmtree(work / "store", ignore_errors=True)
    os.sync()


def vidproof_run(path: Path, settings: EncoderSettings, key: Path, work: Path) -> int:
    """The recorder in transcode mode, into a fresh store (see quiet())."""
    store = work / "store"
    transcode = TranscodeSettings("bench", LOCATION, settings, timezone="Europe/Paris")
    rec = RecordSettings(str(path), "bench", LOCATION, store, fast=True, transcode=transcode)
    result = Recorder(rec, load_signer(key)).run()
    return result.frames


def size_arg(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20)  # see the docstring
    ap.add_argument("--repeat", type=int, default=7)  # CPU time varies by a few % a run
    ap.add_argument("--preset", default="veryfast", choices=PRESETS)
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--size", type=size_arg, action="append", choices=list(SIZES),
                    help="one size only (repeatable); default: both")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args(argv)

    settings = EncoderSettings(preset=args.preset, threads=1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vidproof-bench-") as tmp:
        work = Path(tmp)
        key, _ = generate(work / "keys")
        print(f"transcode mode vs bare decode -> encode: libx264 preset {args.preset}, "
              f"CRF {settings.effective_crf}, GOP 1 s, 1 decoder and 1 encoder thread; "
              f"{args.seconds}-s "
              f"inputs at {FPS} fps; best of {args.repeat}; CPU time of all threads; native "
              f"kernels {'built' if native_built() else 'NOT built (numpy)'}")
        header = (f"{'size':>10} {'frames':>6} {'floor fps':>10} {'batched fps':>12} "
                  f"{'vidproof fps':>13} {'ratio':>6} {'pairs':>6} {'vs batched':>11} "
                  f"{'added us/frame':>15}")
        print(header)
        print("-" * len(header))
        ok = True
        cameras = 0.0
        runners: dict[str, Callable[[Path], int]] = {
            "floor": lambda p: floor(p, settings),
            "batched": lambda p: floor(p, settings, batched=True),
            "vidproof": lambda p: vidproof_run(p, settings, key, work),
        }
        for (w, h) in args.size or list(SIZES):
            path = make_input(args.cache, w, h, SIZES[w, h], args.seconds)
            floor(path, settings)  # warm up: page cache, encoder libraries
            runs: dict[str, list[float]] = {name: [] for name in runners}
            frames: dict[str, int] = {}
            names = list(runners)
            for i in range(args.repeat):
                # In turn first: the runs of a round share the machine's state.
                for name in names[i % 3:] + names[:i % 3]:
                    quiet(work)
                    start = cpu()
                    frames[name] = runners[name](path)
                    runs[name].append(cpu() - start)
            if len(set(frames.values())) != 1:
                print(f"frame counts differ: {frames}", file=sys.stderr)
                return 2
            n = frames["floor"]
            best = {name: min(r) for name, r in runs.items()}
            fps = {name: n / t for name, t in best.items()}
            ratio = fps["vidproof"] / fps["floor"]
            pairs = statistics.median(f / v for f, v in zip(runs["floor"], runs["vidproof"],
                                                            strict=True))
            batched = fps["vidproof"] / fps["batched"]
            added = (best["vidproof"] - best["floor"]) / n * 1e6
            ok = ok and ratio >= TARGET
            if (w, h) == (704, 576):
                cameras = fps["vidproof"] / CAMERA_FPS
            print(f"{w}x{h:<5} {n:>6} {fps['floor']:>10.1f} {fps['batched']:>12.1f} "
                  f"{fps['vidproof']:>13.1f} {ratio:>6.3f} {pairs:>6.3f} {batched:>11.3f} "
                  f"{added:>15.0f}")
        print(f"target: vidproof/floor >= {TARGET} at every size: "
              f"{'met' if ok else 'NOT met'}")
        if cameras:
            print(f"one core sustains {cameras:.1f} cameras of 704x576 at {CAMERA_FPS} fps in "
                  f"transcode mode (decode, stamp, encode at preset {args.preset}, sign)")
        load = " / ".join(f"{a:.2f}, {b:.2f}, {c:.2f}" for a, b, c in
                          (load_before, os.getloadavg()))
        print(f"load average (1, 5, 15 min) before / after: {load} on {os.cpu_count()} CPUs")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
