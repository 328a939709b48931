"""Step 4's key checks (docs/FORMAT.md section 12.2): which key may sign each checkpoint.

Pure, like the rest of the core. Given the trust policy and the evidence, the key ring
answers, checkpoint by checkpoint in file order:

1. is the signing key trusted *at the checkpoint's time* (``policy.judge``: the bare
   key, or a key introduced from it; or a certificate valid and not revoked then)?
2. is it the key in force? A camera's chain starts with the key its first context
   names (a clip: its anchor's key, or the key its carried rotations lead to). The key
   changes only through a ``key_rotation`` event that names the new key and is covered
   by a valid checkpoint of the old key (the first checkpoint at or after the event);
   from the checkpoint after that one on, the new key is in force. A checkpoint signed
   by any other key is ``key_not_introduced``, even when that key is trusted by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..canonical import CanonicalError, canonical_bytes, sha256_hex
from ..model import Checkpoint, ContextRecord, EventRecord, Record, RecordError, entry_from_json
from ..trust.policy import (
    UNTRUSTED_KEY,
    KeyJudgement,
    KeyMaterial,
    TrustPolicy,
    material_from_json,
)

ROTATION_EVENT = "key_rotation"
KEY_NOT_INTRODUCED = "key_not_introduced"
MAX_ROTATIONS = 10_000

Verifier = Callable[[bytes, bytes], bool]


class CallbackPolicy(TrustPolicy):
    """The core's original interface (a trusted key id and a verify callback), as a
    bare-key policy. Keys it introduces are verified with their carried public keys."""

    def __init__(self, key_id: str, verify: Verifier) -> None:
        self.anchor_id = key_id
        self._verify = verify
        self.description = f"public key {key_id}"

    def judge(self, key: str, material: KeyMaterial | None, at_ns: int,
              introduced: bool) -> KeyJudgement:
        if key == self.anchor_id or introduced:
            return KeyJudgement(True)
        return KeyJudgement(False, UNTRUSTED_KEY, f"key {key[:16]}… is not the trusted key "
                                                  f"{self.anchor_id[:16]}…, nor introduced by it")

    def verify_checkpoint(self, material: KeyMaterial, alg: str, signature: bytes,
                          data: bytes) -> bool:
        if material.key_id == self.anchor_id:
            return self._verify(signature, data)
        return super().verify_checkpoint(material, alg, signature, data)


@dataclass
class _Rotation:
    seq: int
    utc_ns: int
    new: KeyMaterial | None
    previous: str | None
    problem: str | None
    status: str = "pending"  # pending | applied | failed
    why: str = ""
    signed_by: str | None = None
    before_clip: bool = False


def _rotation_of(rec: EventRecord) -> _Rotation:
    detail = rec.detail
    new = material_from_json(detail.get("key"))
    prev = detail.get("previous_key")
    problem: str | None = None
    if new is None:
        problem = "it does not name the new key (detail.key with id and alg)"
    elif new.problem is not None:
        problem = new.problem
    elif new.public is None:
        problem = "it does not carry the new key's public key"
    if not isinstance(prev, str):
        prev = None
    return _Rotation(rec.seq, rec.utc_ns, new, prev, problem)


@dataclass
class _Use:
    first: int
    last: int
    count: int = 0


@dataclass
class KeyRing:
    policy: TrustPolicy
    material: dict[str, KeyMaterial] = field(default_factory=dict)
    rotations: list[_Rotation] = field(default_factory=list)
    introduced: dict[str, int] = field(default_factory=dict)  # key -> rotation seq
    in_force: str | None = None
    used: dict[str, _Use] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (seq, message) errors
    _last: tuple[bool, bool] = (False, False)  # the last checkpoint: (genuine, key trusted)

    @classmethod
    def build(cls, policy: TrustPolicy, records: Sequence[Record],
              anchor_contexts: Sequence[ContextRecord], carried_keys: Sequence[Any],
              anchored: bool) -> KeyRing:
        ring = cls(policy, dict(policy.known_keys()))
        for ctx in anchor_contexts:
            ring.offer(ctx.context.get("key"))
        first_ctx: str | None = None
        for rec in records:
            if isinstance(rec, ContextRecord):
                ring.offer(rec.context.get("key"))
                if first_ctx is None:
                    first_ctx = rec.key_id
            elif (isinstance(rec, EventRecord) and rec.event == ROTATION_EVENT
                  and len(ring.rotations) < MAX_ROTATIONS):
                rot = _rotation_of(rec)
                ring.rotations.append(rot)
                if rot.new is not None:
                    ring.add(rot.new)
        for obj in list(carried_keys)[:MAX_ROTATIONS]:
            ring.offer(obj)
        ring.rotations.sort(key=lambda r: r.seq)
        if not anchored:
            ring.in_force = first_ctx
        return ring

    def add(self, mat: KeyMaterial) -> None:
        have = self.material.get(mat.key_id)
        self.material[mat.key_id] = mat if have is None else have.merged(mat)

    def offer(self, obj: object) -> None:
        mat = material_from_json(obj)
        if mat is not None:
            self.add(mat)

    def judge(self, key: str, at_ns: int) -> KeyJudgement:
        return self.policy.judge(key, self.material.get(key), at_ns, key in self.introduced)

    def verify(self, key: str, alg: str, signature: bytes, data: bytes) -> bool:
        mat = self.material.get(key)
        return mat is not None and self.policy.verify_checkpoint(mat, alg, signature, data)

    # --- a clip's rotations before its anchor (carried in the bundle) -------------------

    def prehistory(self, camera: str, proofs: Sequence[Any], anchor_seq: int) -> None:
        """Apply the rotation proofs (event, checkpoint whose head is that event) carried
        with a clip for rotations at or before its anchor, oldest first."""
        parsed: list[tuple[EventRecord, Checkpoint, dict[str, Any], str]] = []
        for item in list(proofs)[:MAX_ROTATIONS]:
            try:
                if not isinstance(item, list | tuple) or len(item) != 2:
                    raise RecordError("not an [event, checkpoint] pair")
                ev, cp = entry_from_json(item[0]), entry_from_json(item[1])
                if not (isinstance(ev, EventRecord) and ev.event == ROTATION_EVENT
                        and isinstance(cp, Checkpoint)):
                    raise RecordError("not a key_rotation event and its checkpoint")
                if ev.camera != camera or cp.camera != camera:
                    raise RecordError("of another camera")
                if cp.head != sha256_hex(canonical_bytes(item[0])) or cp.seq != ev.seq:
                    raise RecordError("the checkpoint does not sign the event")
                if not isinstance(item[1], dict):
                    raise RecordError("not an object")
            except (RecordError, CanonicalError) as exc:
                self.problems.append((-1, f"a key rotation carried with the clip is "
                                          f"malformed: {exc}"))
                continue
            if ev.seq <= anchor_seq:
                parsed.append((ev, cp, item[1], ""))
        for ev, cp, raw, _ in sorted(parsed, key=lambda p: p[0].seq):
            rot = _rotation_of(ev)
            rot.before_clip = True
            if rot.new is not None:
                self.add(rot.new)
            self.offer({"id": rot.previous, "alg": None if rot.previous is None else
                        getattr(self.material.get(rot.previous), "alg", None) or cp.alg,
                        "public": ev.detail.get("previous_public")})
            # The carried history must hold together: each rotation continues the one
            # before, and is validly signed by its old key (else the bundle was altered).
            why = rot.problem
            if why is None and self.in_force is not None and rot.previous != self.in_force:
                why = (f"it does not follow the key history (previous key "
                       f"{str(rot.previous)[:16]}…, expected {self.in_force[:16]}…)")
            if why is None and cp.key != rot.previous:
                why = f"it is signed by {cp.key[:16]}…, not by the old key"
            if why is None:
                body = {k: v for k, v in raw.items() if k != "sig"}
                try:
                    sig = bytes.fromhex(cp.sig)
                    ok = self.verify(cp.key, cp.alg, sig, canonical_bytes(body))
                except (ValueError, CanonicalError):
                    ok = False
                if not ok:
                    why = "its checkpoint's signature is invalid (or the old key is unknown)"
            rot.signed_by = cp.key
            self.rotations.append(rot)
            if why is not None:
                rot.status, rot.why = "failed", why
                self.problems.append((ev.seq, f"the key rotation at seq {ev.seq}, carried "
                                              f"with the clip, is not valid: {why}"))
                continue
            assert rot.new is not None
            rot.status = "applied"
            # The new key is trusted through it only when the old key is trusted then.
            if self.judge(cp.key, cp.utc_ns).ok:
                self.introduced[rot.new.key_id] = rot.seq
            self.in_force = rot.new.key_id
        self.rotations.sort(key=lambda r: r.seq)

    # --- each checkpoint ----------------------------------------------------------------

    def _covered(self, cp: Checkpoint) -> list[_Rotation]:
        return [r for r in self.rotations
                if r.status == "pending" and not r.before_clip and r.seq <= cp.seq]

    def check(self, cp: Checkpoint, signature: bytes, data: bytes) -> tuple[bool, str, str]:
        """``cp``'s key and signature: (ok, finding kind, why not). The kind is the key's
        problem first (trust, then continuity), then ``bad_signature``."""
        use = self.used.setdefault(cp.key, _Use(cp.seq, cp.seq))
        use.first, use.last = min(use.first, cp.seq), max(use.last, cp.seq)
        use.count += 1
        genuine = self.verify(cp.key, cp.alg, signature, data)
        ok, kind, why = self._key_check(cp)
        self._last = (genuine, ok)
        if ok and not genuine:
            return False, "bad_signature", "invalid signature"
        return ok, kind, why

    def _key_check(self, cp: Checkpoint) -> tuple[bool, str, str]:
        forged = next((r for r in self._covered(cp) + [r for r in self.rotations
                                                          if r.status == "failed"]
                       if r.new is not None and r.new.key_id == cp.key), None)
        j = self.judge(cp.key, cp.utc_ns)
        if not j.ok:
            if j.kind == UNTRUSTED_KEY and forged is not None:
                return False, KEY_NOT_INTRODUCED, self._forged_why(forged, cp)
            return False, j.kind, j.message
        if self.in_force is None:
            self.in_force = cp.key  # a clip without carried rotations: its anchor's key
        if cp.key != self.in_force:
            if forged is not None:
                return False, KEY_NOT_INTRODUCED, self._forged_why(forged, cp)
            return False, KEY_NOT_INTRODUCED, (
                f"key {cp.key[:16]}… is not the key in force ({self.in_force[:16]}…): no "
                "key_rotation signed by the key in force introduces it (entries appended "
                "or re-signed with another key)")
        return True, "", ""

    def _forged_why(self, rot: _Rotation, cp: Checkpoint) -> str:
        if rot.status == "failed" and rot.why:
            return (f"key {cp.key[:16]}… is named by the key_rotation event at seq "
                    f"{rot.seq}, which is not valid: {rot.why}")
        return (f"key {cp.key[:16]}… is named by the key_rotation event at seq {rot.seq}, "
                f"but that event is not signed by the old key {str(self.in_force)[:16]}… "
                "(a forged rotation)")

    def settle(self, cp: Checkpoint, head_ok: bool) -> None:
        """After ``cp`` was checked: the rotations it covers take effect when it is a
        genuine checkpoint of the old key over them (the new key is then trusted through
        it when the old key is trusted), and fail otherwise."""
        genuine, trusted = self._last
        for rot in self._covered(cp):
            rot.signed_by = cp.key
            if rot.problem is not None:
                rot.status, rot.why = "failed", rot.problem
            elif not (genuine and head_ok):
                rot.status, rot.why = "failed", (
                    f"the checkpoint that covers it (seq {cp.seq}) is not valid")
            elif rot.previous is not None and rot.previous != cp.key:
                rot.status, rot.why = "failed", (
                    f"it names {rot.previous[:16]}… as the old key, but is signed by "
                    f"{cp.key[:16]}…")
            elif cp.key != self.in_force:
                rot.status, rot.why = "failed", "it is not signed by the key in force"
            else:
                assert rot.new is not None
                rot.status = "applied"
                if trusted:
                    self.introduced[rot.new.key_id] = rot.seq
                self.in_force = rot.new.key_id

    # --- the report ---------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for key, use in self.used.items():
            d = self.policy.describe(key, self.material.get(key))
            d.update(checkpoints=use.count, first_seq=use.first, last_seq=use.last,
                     introduced_at_seq=self.introduced.get(key))
            out.append(d)
        return out

    def applied(self) -> list[_Rotation]:
        return [r for r in self.rotations if r.status == "applied"]

    def judge_export(self, key: object, alg: object, at_ns: object, signature: bytes,
                     data: bytes) -> tuple[bool, str, str]:
        """A bundle's export entry: signed by a key trusted at the export time."""
        if not isinstance(key, str) or not isinstance(at_ns, int) or not isinstance(alg, str):
            return False, UNTRUSTED_KEY, "the export entry does not name its key and time"
        j = self.judge(key, at_ns)
        if not j.ok:
            return False, j.kind, j.message
        if not self.verify(key, alg, signature, data):
            return False, "bad_signature", "the export entry's signature is invalid"
        return True, "", ""
