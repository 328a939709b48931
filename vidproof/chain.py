"""Chain state and checkpoint policy (the signing side).

Every chain entry commits to the one before (``prev`` = SHA-256 of the previous
entry's canonical bytes). A checkpoint signs the chain head. Before a
checkpoint is written, the media it covers is made durable (``sync_media``),
then the entries and the checkpoint are appended and fsynced.

Key rotation (:meth:`Chain.rotate`, docs/FORMAT.md section 12.3): the old key signs a
``key_rotation`` event that introduces the new key, then the new key signs a new
context naming it, and everything after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .canonical import CanonicalError, canonical_bytes, entry_hash
from .keys import Signer, public_pem
from .model import (
    FORMAT,
    GENESIS,
    Checkpoint,
    ContextRecord,
    EventRecord,
    Record,
    checkpoint_to_json,
    record_to_json,
)
from .store import ChainState, EvidenceWriter, lines_backwards

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
        self.context_obj: dict[str, Any] | None = None  # the context in force
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
        self.context_obj = context
        return self.ctx

    def rotate(self, new: Signer, utc_ns: int, reason: str) -> None:
        """Hand signing over to ``new`` without breaking the chain: a checkpoint of the
        old key over what is pending; a ``key_rotation`` event naming the new key (its
        public key and certificates), signed by the old key in a checkpoint whose head is
        that event; then a new context naming the new key, signed by the new key."""
        old = self.signer
        if new.key_id == old.key_id:
            return
        self.checkpoint(utc_ns)
        self.event("key_rotation", utc_ns, {
            "key": new.material_json(), "previous_key": old.key_id,
            "previous_public": public_pem(old.public), "reason": reason})
        self.checkpoint(utc_ns)
        self.signer = new
        if self.context_obj is not None:
            self.context({**self.context_obj, "key": new.key_json()}, utc_ns)
            self.checkpoint(utc_ns)

    def event(self, kind: str, utc_ns: int, detail: dict[str, Any] | None = None) -> None:
        self._append(EventRecord(self.camera, self.seq, self.head, utc_ns, self.ctx, kind,
                                 detail or {}))

    def frame(self, *, utc_ns: int, pts: int | None, dts: int | None, tb: tuple[int, int],
              key: bool, digest: str, params: str, cam_utc_ns: int | None,
              fp: str | None = None) -> int:
        """Append one frame record. The hot path (once per frame): the entry is built
        here, keys in canonical order, rather than through :class:`FrameRecord` and
        ``record_to_json``; tests check that both give the same entry."""
        seq = self.seq
        if fp is None:
            entry = {
                "cam_utc_ns": cam_utc_ns, "camera": self.camera, "ctx": self.ctx,
                "digest": digest, "dts": dts, "key": key, "params": params,
                "prev": self.head, "pts": pts, "seq": seq, "tb": [tb[0], tb[1]],
                "type": "frame", "utc_ns": utc_ns, "v": FORMAT,
            }
        else:  # transcode mode: the picture's fingerprint (optional member "fp")
            entry = {
                "cam_utc_ns": cam_utc_ns, "camera": self.camera, "ctx": self.ctx,
                "digest": digest, "dts": dts, "fp": fp, "key": key, "params": params,
                "prev": self.head, "pts": pts, "seq": seq, "tb": [tb[0], tb[1]],
                "type": "frame", "utc_ns": utc_ns, "v": FORMAT,
            }
        self.head = self.log.append(entry)
        self.seq = seq + 1
        self.pending += 1
        if self.first_pending_utc is None:
            self.first_pending_utc = utc_ns
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
        cp_hash = self.log.append(body)  # the entry's hash, as entry_hash(body)
        self.log.sync()
        self.last_checkpoint = cp_hash
        self.pending = 0
        self.first_pending_utc = None
        self.checkpoints += 1


def last_signing_key(cam_dir: Path) -> str | None:
    """The key that must sign a camera's next checkpoint: the key of the last checkpoint
    in its evidence log, or the key that checkpoint introduced when it signs a
    ``key_rotation`` event (a rotation cut short after its step 3). None: no log, or no
    checkpoint. A recorder that continues the chain must sign with it, or rotate from it."""
    cp: dict[str, Any] | None = None
    try:
        for line in lines_backwards(cam_dir / "evidence.jsonl"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a torn last line, or damage: recovery deals with it
            if not isinstance(obj, dict):
                continue
            if cp is None:
                if obj.get("type") == "checkpoint" and isinstance(obj.get("key"), str):
                    cp = obj
                continue
            if obj.get("type") == "checkpoint":
                continue
            detail = obj.get("detail")
            if (obj.get("event") == "key_rotation" and isinstance(detail, dict)
                    and isinstance(detail.get("key"), dict) and obj.get("seq") == cp.get("seq")
                    and isinstance(detail["key"].get("id"), str)):
                try:
                    if entry_hash(obj) == cp.get("head"):
                        return str(detail["key"]["id"])
                except CanonicalError:
                    pass
            break
    except OSError:
        return None
    return None if cp is None else str(cp["key"])
