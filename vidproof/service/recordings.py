"""Covered ranges and gaps per camera, read incrementally from the evidence logs."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..store import EVIDENCE

GAP_NS = 2_000_000_000  # no frame for 2 s: a gap


@dataclass
class _Runs:
    offset: int = 0
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
                size = path.stat().st_size
            except OSError:
                return []
            if size < r.offset:  # the log was cut back after a crash: rescan
                r.offset, r.runs = 0, []
            with open(path, "rb") as f:
                f.seek(r.offset)
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    r.offset += len(raw)
                    if b'"type":"frame"' not in raw:
                        continue
                    try:
                        t = int(json.loads(raw)["utc_ns"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if r.runs and 0 <= t - r.runs[-1][1] <= GAP_NS:
                        r.runs[-1][1] = t
                        r.runs[-1][2] += 1
                    else:
                        r.runs.append([t, t, 1])
            return [(a, b, n) for a, b, n in r.runs]

    def last_frame_ns(self, camera: str) -> int | None:
        runs = self.runs(camera)
        return runs[-1][1] if runs else None
