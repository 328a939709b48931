"""Covered ranges and gaps per camera, read incrementally from the evidence logs."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..store import EVIDENCE

GAP_NS = 2_000_000_000  # no frame for 2 s: a gap
# Events after which the footage is interrupted, however short the pause: the next
# frame starts a new range.
_BREAKS = (b'"event":"recorder_start"', b'"event":"camera_lost"')


@dataclass
class _Runs:
    offset: int = 0
    last: bytes = b""  # the last line read, ending at offset
    broken: bool = False
    runs: list[list[int]] = field(default_factory=list)  # [start_ns, end_ns, frames]


class RecordingIndex:
    def __init__(self, store: Path) -> None:
        self.store = store
        self._cams: dict[str, _Runs] = {}
        self._lock = threading.Lock()

    def runs(self, camera: str) -> list[tuple[int, int, int]]:
        path = self.store / camera / EVIDENCE
        with self._lock:
            r = self._cams.setdefault(camera, _Runs())
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except OSError:
                return []
            with f:
                # After a crash, recovery cuts the unsigned tail off the log, and the next
                # run appends to it: the line read last is then no longer where it was.
                f.seek(max(0, r.offset - len(r.last)))
                if f.read(len(r.last)) != r.last:
                    r.offset, r.last, r.broken, r.runs = 0, b"", False, []
                f.seek(r.offset)
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    r.offset += len(raw)
                    r.last = raw
                    if b'"type":"event"' in raw and any(b in raw for b in _BREAKS):
                        r.broken = True
                        continue
                    if b'"event":"retention_purge"' in raw and b'"type":"event"' in raw:
                        try:
                            detail = json.loads(raw)["detail"]
                            a, b = int(detail["first_utc_ns"]), int(detail["last_utc_ns"])
                        except (ValueError, KeyError, TypeError):
                            continue
                        r.runs = _cut(r.runs, a, b)
                        continue
                    if b'"type":"frame"' not in raw:
                        continue
                    try:
                        t = int(json.loads(raw)["utc_ns"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if r.runs and not r.broken and 0 <= t - r.runs[-1][1] <= GAP_NS:
                        r.runs[-1][1] = t
                        r.runs[-1][2] += 1
                    else:
                        r.runs.append([t, t, 1])
                        r.broken = False
            return [(a, b, n) for a, b, n in r.runs]

    def last_frame_ns(self, camera: str) -> int | None:
        runs = self.runs(camera)
        return runs[-1][1] if runs else None


def _cut(runs: list[list[int]], a: int, b: int) -> list[list[int]]:
    """Remove the destroyed footage [a, b] from the ranges (frame counts pro rata)."""
    out: list[list[int]] = []
    for start, end, n in runs:
        if end < a or start > b:
            out.append([start, end, n])
            continue
        span = max(end - start, 1)
        if start < a:
            out.append([start, a - 1, max(1, n * (a - start) // span)])
        if end > b:
            out.append([b + 1, end, max(1, n * (end - b) // span)])
    return out
