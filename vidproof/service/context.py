"""What the routes share: configuration, workers, users, journal, exports."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ..journal import Journal
from ..keys import Signer, TrustedKey
from ..trust.policy import TrustPolicy
from .config import SiteConfig
from .exports import ExportJobs
from .recordings import RecordingIndex
from .supervisor import Supervisor
from .users import UserStore


class Service:
    def __init__(self, config: SiteConfig, signer: Signer,
                 supervisor: Supervisor | None) -> None:
        self.config = config
        self.signer = signer
        self.trust = TrustedKey(signer.public)  # the journal's key: this recorder's
        # Uploaded bundles: against the configured anchor (a CA after key rotations and
        # for other recorders of the site), else this recorder's key.
        self.bundle_trust: TrustPolicy = self.trust
        if config.trust is not None:
            from ..trust.policy import load_policy

            self.bundle_trust = load_policy(config.trust, config.crls)
        self.supervisor = supervisor
        self.users = UserStore(config.users_file)
        self.recordings = RecordingIndex(config.store)
        self.exports = ExportJobs(config.store, config.data_dir / "exports", signer)
        self._journal = Journal(config.store / "journal.jsonl", signer)
        self._lock = threading.Lock()

    def journal(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        with self._lock:
            self._journal.append(action, actor, time.time_ns(), detail)

    @property
    def journal_path(self) -> Path:
        return self._journal.path

    def camera_ids(self) -> list[str]:
        return [c.id for c in self.config.cameras if c.enabled]

    def camera_health(self, camera_id: str) -> dict[str, Any]:
        if self.supervisor is not None and camera_id in self.supervisor.workers:
            return self.supervisor.health(camera_id)
        return {"camera_id": camera_id, "state": "not_supervised", "worker_pid": None,
                "restarts": 0, "last_error": "", "frames_in": 0, "frames_out": 0,
                "dropped_frames": 0, "last_frame_utc_ns": None, "clock_offset_ms": None,
                "stream": None, "disk_used_bytes": 0, "disk_free_bytes": 0,
                "seconds_left": None}
