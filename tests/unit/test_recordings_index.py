"""The service's index of recorded ranges (vidproof/service/recordings.py), read
incrementally from a camera's evidence log as the recorder appends to it."""

from __future__ import annotations

import json
from pathlib import Path

from vidproof.service.recordings import RecordingIndex

S = 1_000_000_000


def line(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def frame(seq: int, t: float) -> bytes:
    return line({"type": "frame", "seq": seq, "utc_ns": int(t * S), "camera": "c"})


def event(seq: int, name: str, t: float) -> bytes:
    return line({"type": "event", "seq": seq, "event": name, "utc_ns": int(t * S)})


def checkpoint(seq: int) -> bytes:
    return line({"type": "checkpoint", "seq": seq})


def log(tmp_path: Path) -> Path:
    path = tmp_path / "c" / "evidence.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_runs_and_time_gaps(tmp_path: Path) -> None:
    path = log(tmp_path)
    path.write_bytes(event(0, "recorder_start", 0) + b"".join(
        frame(i + 1, 100 + i * 0.1) for i in range(10)) + checkpoint(11))
    index = RecordingIndex(tmp_path)
    assert index.runs("c") == [(100 * S, int(100.9 * S), 10)]
    # Appended later: read from where it stopped; a 5-s silence makes a new range.
    with open(path, "ab") as f:
        f.write(frame(12, 101.0) + frame(13, 106.0) + frame(14, 106.1))
    assert index.runs("c") == [(100 * S, 101 * S, 11), (106 * S, int(106.1 * S), 2)]
    assert index.last_frame_ns("c") == int(106.1 * S)
    assert index.runs("nope") == []


def test_a_partial_last_line_is_read_when_complete(tmp_path: Path) -> None:
    path = log(tmp_path)
    whole = frame(1, 10) + frame(2, 10.1)
    path.write_bytes(whole[:-5])
    index = RecordingIndex(tmp_path)
    assert index.runs("c") == [(10 * S, 10 * S, 1)]
    path.write_bytes(whole)
    assert index.runs("c") == [(10 * S, int(10.1 * S), 2)]


def test_a_restart_breaks_the_range_however_short_the_pause(tmp_path: Path) -> None:
    # A worker killed and restarted 1.5 s later: less than the 2-s gap rule, but the
    # recording was interrupted, and the timeline must show it.
    path = log(tmp_path)
    path.write_bytes(b"".join(frame(i, 50 + i * 0.1) for i in range(5)) +
                     event(5, "recorder_start", 51.9) + frame(6, 51.9) + frame(7, 52.0))
    assert RecordingIndex(tmp_path).runs("c") == [
        (50 * S, int(50.4 * S), 5), (int(51.9 * S), 52 * S, 2)]


def test_a_lost_camera_breaks_the_range(tmp_path: Path) -> None:
    path = log(tmp_path)
    path.write_bytes(frame(0, 1) + event(1, "camera_lost", 1.05) +
                     event(2, "camera_back", 1.5) + frame(3, 1.6))
    assert RecordingIndex(tmp_path).runs("c") == [(1 * S, 1 * S, 1), (int(1.6 * S), int(1.6 * S), 1)]


def test_log_cut_back_after_a_crash_and_grown_again(tmp_path: Path) -> None:
    """Recovery moves the unsigned tail out of the log; the next run appends. Even when
    the log has grown past the old read position again, the index must not keep the
    frames that were moved out, nor start reading in the middle of a line."""
    path = log(tmp_path)
    signed = b"".join(frame(i, 10 + i * 0.1) for i in range(5)) + checkpoint(5)
    tail = b"".join(frame(6 + i, 10.6 + i * 0.1) for i in range(3))
    path.write_bytes(signed + tail)
    index = RecordingIndex(tmp_path)
    assert index.runs("c")[0][2] == 8
    restart = event(6, "recorder_start", 20) + b"".join(
        frame(7 + i, 20 + i * 0.1) for i in range(6))
    assert len(restart) > len(tail)  # the file is now longer than when last read
    path.write_bytes(signed + restart)
    assert index.runs("c") == [(10 * S, int(10.4 * S), 5), (20 * S, int(20.5 * S), 6)]
