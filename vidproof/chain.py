"""Chain state and checkpoint policy (the signing side).

Every chain entry commits to the one before (``prev`` = SHA-256 of the previous
entry's canonical bytes). A checkpoint signs the chain head. Before a
checkpoint is written, the media it covers is made durable (``sync_media``),
then the entries and the checkpoint are appended and fsynced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .canonical import canonical_bytes, entry_hash
from .keys import Signer
from .model import (
    FORMAT,
    GENESIS,
    Checkpoint,
    ContextRecord,
    EventRecord,
    FrameRecord,
    Record,
    checkpoint_to_json,
    record_to_json,
)
from .store import ChainState, EvidenceWriter

MAX_CHECKPOINT_INTERVAL_NS = 2_000_000_000


class Chain:
    def __init__(self, camera: str, signer: Signer, log: EvidenceWriter, state: ChainState,
                 sync_media: Callable[[], None]) -> None:
        self.camera = camera
        self.signer = signer
        self.log = log
        self.seq = state.next_seq
        self.head = state.head
        self.last_checkpoint = state.last_checkpoint
        self.ctx = GENESIS
        self.sync_media = sync_media
        self.pending = 0
        self.first_pending_utc: int | None = None
        self.checkpoints = 0

    def _append(self, record: Record) -> str:
        self.head = self.log.append(record_to_json(record))
        self.seq += 1
        self.pending += 1
        if self.first_pending_utc is None:
            self.first_pending_utc = record.utc_ns
        return self.head

    def context(self, context: dict[str, Any], utc_ns: int) -> str:
        self.ctx = self._append(ContextRecord(self.camera, self.seq, self.head, utc_ns, context))
        return self.ctx

    def event(self, kind: str, utc_ns: int, detail: dict[str, Any] | None = None) -> None:
        self._append(EventRecord(self.camera, self.seq, self.head, utc_ns, self.ctx, kind,
                                 detail or {}))

    def frame(self, *, utc_ns: int, pts: int | None, dts: int | None, tb: tuple[int, int],
              key: bool, digest: str, params: str, cam_utc_ns: int | None) -> int:
        seq = self.seq
        self._append(FrameRecord(self.camera, seq, self.head, utc_ns, self.ctx, pts, dts, tb,
                                 key, digest, params, cam_utc_ns))
        return seq

    def due(self, utc_ns: int, keyframe: bool) -> bool:
        """Checkpoint policy: before every keyframe, and at most 2 s of footage apart."""
        if not self.pending:
            return False
        if keyframe:
            return True
        assert self.first_pending_utc is not None
        return utc_ns - self.first_pending_utc >= MAX_CHECKPOINT_INTERVAL_NS

    def checkpoint(self, utc_ns: int) -> None:
        if not self.pending:
            return
        self.sync_media()
        body = checkpoint_to_json(Checkpoint(
            self.camera, self.seq - 1, self.head, self.last_checkpoint, utc_ns,
            self.signer.key_id, "", self.signer.alg,
        ))
        del body["sig"]
        assert body["v"] == FORMAT
        body["sig"] = self.signer.sign(canonical_bytes(body)).hex()
        self.log.append(body)
        self.log.sync()
        self.last_checkpoint = entry_hash(body)
        self.pending = 0
        self.first_pending_utc = None
        self.checkpoints += 1
