"""The operations journal: every access to and action on the footage, hash-chained and signed.

``STORE/journal.jsonl`` holds one canonical JSON entry per line::

    {"v": "vidproof/1", "type": "journal", "seq": n, "prev": <sha256 of entry n-1>,
     "utc_ns": ..., "actor": "who", "action": "export", "detail": {...},
     "key": <key id>, "alg": "Ed25519", "sig": <hex signature of the entry without sig>}

Each entry is signed and fsynced when written, so an entry cannot be edited,
removed or reordered without ``verify_journal`` noticing.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .canonical import CanonicalError, canonical_bytes, sha256_hex
from .keys import Signer, TrustedKey
from .model import FORMAT, GENESIS


def _last_entry(path: Path) -> dict[str, Any] | None:
    """The last complete line, read backwards from the end (the journal only grows)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return None
    with f:
        end = f.seek(0, os.SEEK_END)
        block, data = 4096, b""
        while True:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start)
            cut = data.rstrip(b"\n") if data.endswith(b"\n") else data[:data.rfind(b"\n") + 1]
            cut = cut.rstrip(b"\n")
            nl = cut.rfind(b"\n")
            if nl >= 0 or start == 0:
                line = cut[nl + 1:]
                return json.loads(line) if line else None
            block *= 4


class Journal:
    """Appends signed, chained entries. Several processes (recorders, exports) may
    append to one journal: each append holds an exclusive lock on the file."""

    def __init__(self, path: Path, signer: Signer) -> None:
        self.path = path
        self.signer = signer

    @property
    def next_seq(self) -> int:
        last = _last_entry(self.path)
        return 0 if last is None else int(last["seq"]) + 1

    def append(self, action: str, actor: str, utc_ns: int, detail: dict[str, Any]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            last = _last_entry(self.path)
            seq = 0 if last is None else int(last["seq"]) + 1
            entry: dict[str, Any] = {
                "v": FORMAT, "type": "journal", "seq": seq,
                "prev": GENESIS if last is None else sha256_hex(canonical_bytes(last)),
                "utc_ns": utc_ns, "actor": actor, "action": action, "detail": detail,
                "key": self.signer.key_id, "alg": self.signer.alg,
            }
            entry["sig"] = self.signer.sign(canonical_bytes(entry)).hex()
            f.write(canonical_bytes(entry) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        return seq


@dataclass(frozen=True)
class JournalProblem:
    line: int
    message: str


def verify_journal(path: Path, trust: TrustedKey) -> tuple[int, list[JournalProblem]]:
    """Check every entry's signature and chain link; returns (entries, problems)."""
    problems: list[JournalProblem] = []
    prev, expected = GENESIS, 0
    count = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            count += 1
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                body = {k: v for k, v in entry.items() if k != "sig"}
                data = canonical_bytes(entry)
                signed = canonical_bytes(body)
                sig = bytes.fromhex(str(entry.get("sig", "")))
            except (ValueError, CanonicalError) as exc:
                problems.append(JournalProblem(n, f"not a journal entry ({exc})"))
                continue
            if entry.get("seq") != expected:
                problems.append(JournalProblem(
                    n, f"entry seq {entry.get('seq')} where seq {expected} was expected "
                    "(an entry was removed, added or reordered)"))
            elif entry.get("prev") != prev:
                problems.append(JournalProblem(
                    n, f"entry seq {expected} does not follow the entry before it"))
            if entry.get("key") != trust.key_id or not trust.verify(sig, signed):
                problems.append(JournalProblem(n, f"entry seq {entry.get('seq')} is not signed "
                                                  "by the trusted key (edited or forged)"))
            prev = sha256_hex(data)
            seq = entry.get("seq")
            expected = (seq + 1) if isinstance(seq, int) else expected + 1
    return count, problems
