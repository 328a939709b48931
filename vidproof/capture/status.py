"""A worker's health, written for the supervisor (not evidence: never signed or fsynced)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class StatusFile:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.started = time.time()
        self.fields: dict[str, Any] = {"pid": os.getpid(), "state": "starting",
                                       "frames_in": 0, "frames_out": 0, "dropped_frames": 0,
                                       "bytes": 0, "last_frame_utc_ns": None, "stream": None,
                                       "clock_offset_ms": None}
        self._last_write = 0.0

    def update(self, force: bool = False, **fields: Any) -> None:
        self.fields.update(fields)
        now = time.monotonic()
        if self.path is None or (not force and now - self._last_write < 0.5):
            return
        self._last_write = now
        elapsed = max(time.time() - self.started, 1e-3)
        self.fields["bytes_per_second"] = self.fields["bytes"] / elapsed
        self.fields["updated_utc_ns"] = time.time_ns()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.fields))
            os.replace(tmp, self.path)
        except OSError:
            pass  # health reporting must never stop a recording
