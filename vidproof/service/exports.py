"""Exports run in the background, one at a time, while recording goes on."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import Error
from ..export import ExportRequest, export
from ..keys import Signer
from ..timefmt import iso_ns


@dataclass
class ExportJob:
    id: str
    camera: str
    case: str
    officer: str
    start: datetime
    end: datetime
    reason: str
    created_ns: int
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    frames: int | None = None
    verdict: str | None = None
    bundle: Path | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ExportJobs:
    def __init__(self, store: Path, out_dir: Path, signer: Signer,
                 timezone: str | None = None) -> None:
        self.store, self.out_dir, self.signer, self.timezone = store, out_dir, signer, timezone
        self.jobs: dict[str, ExportJob] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")

    def submit(self, camera: str, start: datetime, end: datetime, case: str, officer: str,
               reason: str) -> ExportJob:
        job = ExportJob(secrets.token_hex(8), camera, case, officer, start, end, reason,
                        time.time_ns())
        self.jobs[job.id] = job
        self._pool.submit(self._run, job)
        return job

    def _run(self, job: ExportJob) -> None:
        job.state, job.progress = "running", 0.1
        self.out_dir.mkdir(parents=True, exist_ok=True)
        out = self.out_dir / f"{job.id}.zip"
        try:
            result = export(ExportRequest(self.store, job.camera, job.start, job.end, out,
                                          job.case, job.officer, job.reason, self.timezone),
                            self.signer, time.time_ns())
        except Error as exc:
            job.state, job.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed export must not kill the service
            job.state, job.message = "failed", f"internal error: {type(exc).__name__}"
        else:
            job.state, job.progress, job.bundle = "done", 1.0, out
            job.frames, job.verdict = result.frames, result.verdict
            job.message = (f"{result.frames} frames, {iso_ns(result.first_utc_ns)} to "
                           f"{iso_ns(result.last_utc_ns)}")
        finally:
            job.done.set()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
