"""The floors of ``benchmarks/record.py``, each run as its own process.

A floor is the least work any program doing the same job must do with the same tools,
so this script imports only what that work needs (``hashlib``, ``sys``, PyAV): run from
the benchmark harness itself, each floor run would also import the harness's modules
(argparse, subprocess, tempfile ...), about 10 ms of start-up that vidproof is not
charged for, which would make the floor slower and vidproof's ratio look better.

    python benchmarks/floor.py record SRC DST    # prints the number of packets
    python benchmarks/floor.py verify FILE...

With ``--demux-only`` first, files are opened as vidproof opens what it only demuxes
(``skip_frame=all``: FFmpeg's stream probe decodes no picture). The floors as the
issue defines them ("bare PyAV") open with PyAV's defaults; this stricter floor is
printed beside them, for reference.
"""

import hashlib
import sys

import av

OPEN = {}  # av.open options: PyAV's defaults, or {"skip_frame": "all"} (--demux-only)


def floor_record(src: str, dst: str) -> int:
    """Bare PyAV demux + SHA-256 of every packet + remux of the same packets to MPEG-TS."""
    count = 0
    with av.open(src, options=OPEN) as inp, av.open(dst, "w", format="mpegts") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        for packet in inp.demux(ist):
            if packet.size == 0:
                continue
            hashlib.sha256(packet).digest()
            packet.stream = ost
            out.mux(packet)
            count += 1
    return count


def floor_verify(paths: list[str]) -> int:
    """Bare PyAV demux + SHA-256 of every packet of each file."""
    count = 0
    for path in paths:
        with av.open(path, options=OPEN) as inp:
            stream = inp.streams.video[0]
            for packet in inp.demux(stream):
                if packet.size == 0:
                    continue
                hashlib.sha256(packet).digest()
                count += 1
    return count


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "--demux-only":
        OPEN["skip_frame"] = "all"
        kind, *args = args
    print(floor_record(*args) if kind == "record" else floor_verify(args))
