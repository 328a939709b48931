"""The signing side (chain.Chain + store.EvidenceWriter) against the pure verifier core.

A chain is written to a temporary directory exactly as the recorder writes it, read
back line by line, and checked by ``verify.core.inspect_camera`` with no media: the
steps 1-4 of docs/FORMAT.md section 6.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vidproof.canonical import canonical_bytes, entry_hash
from vidproof.chain import MAX_CHECKPOINT_INTERVAL_NS, Chain
from vidproof.keys import Signer, TrustedKey
from vidproof.model import GENESIS
from vidproof.store import EVIDENCE, EvidenceWriter, recover
from vidproof.verify.core import ERROR, WARNING, ObservedFrame, ParsedLine, inspect_camera

CAMERA = "cam1"
SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
TRUST = TrustedKey(SIGNER.public)
T0 = 1_704_067_200_000_000_000


def context() -> dict[str, Any]:
    return {"camera_id": CAMERA,
            "location": {"label": "Quai des Orfèvres", "lat": "48.8556", "lon": "2.3447"},
            "key": {"alg": SIGNER.alg, "id": SIGNER.key_id}, "mode": "passthrough"}


@dataclass
class Written:
    log: Path
    digests: list[str]          # frame digests, in order
    synced_at: list[int]        # checkpoints already in the log at each media sync


def frame_digest(i: int) -> str:
    return hashlib.sha256(f"picture {i}".encode()).hexdigest()


def write_run(cam_dir: Path, frames: int, *, fps: int = 25, gop: int = 25,
              start: int = 0, stop: bool = True, signer: Signer = SIGNER) -> Written:
    """Record ``frames`` frames the way capture.worker.Recorder does."""
    cam_dir.mkdir(parents=True, exist_ok=True)
    state = recover(cam_dir)
    log = cam_dir / EVIDENCE
    writer = EvidenceWriter(log)
    synced: list[int] = []

    def sync_media() -> None:
        text = log.read_bytes() if log.exists() else b""
        synced.append(text.count(b'"type":"checkpoint"'))

    chain = Chain(CAMERA, signer, writer, state, sync_media)
    t = T0 + start * 1_000_000_000 // fps
    chain.context(context(), t)
    detail: dict[str, Any] = {"previous_run": state.previous_run}
    if state.unsigned_file:
        detail.update(unsigned_entries=state.unsigned_entries,
                      unsigned_file=state.unsigned_file, unsigned_sha256=state.unsigned_sha256)
    chain.event("recorder_start", t, detail)
    chain.checkpoint(t)
    digests = []
    for i in range(start, start + frames):
        utc = T0 + i * 1_000_000_000 // fps
        key = i % gop == 0
        if chain.due(utc, key):
            chain.checkpoint(utc)
        d = frame_digest(i)
        digests.append(d)
        chain.frame(utc_ns=utc, pts=i * 90000 // fps, dts=i * 90000 // fps, tb=(1, 90000),
                    key=key, digest=d, params="11" * 32, cam_utc_ns=None)
    if stop:
        end = T0 + (start + frames) * 1_000_000_000 // fps
        chain.event("recorder_stop", end, {"reason": "test", "frames": frames})
        chain.checkpoint(end)
        writer.close()
    else:
        writer._file.flush()  # a crash: what was written stays, nothing more is signed
        writer._file.close()
    return Written(log, digests, synced)


def parse(log: Path) -> list[ParsedLine]:
    return [ParsedLine(n, json.loads(line))
            for n, line in enumerate(log.read_bytes().splitlines(), start=1)]


def check(lines: list[ParsedLine], digests: list[str] | None = None, trust: TrustedKey = TRUST):
    observed = None if digests is None else [
        ObservedFrame("000001.ts", i, d, "11" * 32, i * 3600, Fraction(1, 90000), i % 25 == 0)
        for i, d in enumerate(digests)]
    return inspect_camera(CAMERA, lines, observed, [], trust.key_id,
                          lambda sig, data: trust.verify(sig, data))


def blocking(findings: list[Any]) -> list[Any]:
    return [f for f in findings if f.severity in (ERROR, WARNING)]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return write_run(tmp_path_factory.mktemp("chain") / CAMERA, 60)


def test_written_chain_verifies(good: Written) -> None:
    rep, findings = check(parse(good.log), good.digests)
    assert blocking(findings) == []
    assert rep.frames == rep.signed_frames == 60
    assert rep.first_utc_ns == T0 and rep.last_utc_ns == T0 + 59 * 40_000_000
    assert rep.key_ids == [SIGNER.key_id]


def test_lines_are_canonical_and_linked(good: Written) -> None:
    raw = good.log.read_bytes().splitlines()
    entries = [json.loads(line) for line in raw]
    for line, entry in zip(raw, entries, strict=True):
        assert canonical_bytes(entry) == line
    prev, ctx = GENESIS, None
    for line, entry in zip(raw, entries, strict=True):
        if entry["type"] == "checkpoint":
            continue
        assert entry["prev"] == prev
        if entry["type"] == "context":
            ctx = hashlib.sha256(line).hexdigest()
        else:
            assert entry["ctx"] == ctx
        prev = hashlib.sha256(line).hexdigest()
    assert [e["seq"] for e in entries if e["type"] != "checkpoint"] == list(
        range(len([e for e in entries if e["type"] != "checkpoint"])))


def test_checkpoints_sign_the_head_and_link(good: Written) -> None:
    entries = [json.loads(line) for line in good.log.read_bytes().splitlines()]
    hashes = {e["seq"]: entry_hash(e) for e in entries if e["type"] != "checkpoint"}
    prev_cp = GENESIS
    for cp in (e for e in entries if e["type"] == "checkpoint"):
        assert cp["head"] == hashes[cp["seq"]]
        assert cp["prev_checkpoint"] == prev_cp
        assert cp["key"] == hashlib.sha256(SIGNER.public.public_bytes_raw()).hexdigest()
        body = {k: v for k, v in cp.items() if k != "sig"}
        assert TRUST.verify(bytes.fromhex(cp["sig"]), canonical_bytes(body))
        prev_cp = entry_hash(cp)


@pytest.mark.parametrize(("fps", "gop"), [(25, 25), (25, 100), (10, 7)])
def test_checkpoint_policy(tmp_path: Path, fps: int, gop: int) -> None:
    """A checkpoint before every keyframe, and at most 2 s of footage apart."""
    run = write_run(tmp_path / CAMERA, 130, fps=fps, gop=gop)
    entries = [json.loads(line) for line in run.log.read_bytes().splitlines()]
    for before, entry in zip(entries, entries[1:], strict=False):
        if entry["type"] == "frame" and entry["key"]:
            assert before["type"] == "checkpoint", f"no checkpoint before keyframe {entry['seq']}"
    pending: list[int] = []
    for entry in entries:
        if entry["type"] == "checkpoint":
            if pending:
                assert max(pending) - min(pending) < MAX_CHECKPOINT_INTERVAL_NS
            pending = []
        else:
            pending.append(entry["utc_ns"])
    assert pending == []  # nothing unsigned after a clean stop
    # The media was synced before each checkpoint was written, and once per checkpoint.
    n_cps = sum(e["type"] == "checkpoint" for e in entries)
    assert run.synced_at == list(range(n_cps))


def test_other_key_is_untrusted(good: Written) -> None:
    other = TrustedKey(Ed25519PrivateKey.from_private_bytes(b"\x08" * 32).public_key())
    _, findings = check(parse(good.log), good.digests, trust=other)
    assert {f.kind for f in blocking(findings)} >= {"untrusted_key"}


# --- tampering: any change to any line is found ------------------------------------------------

def mutate(value: Any, choice: int) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + (1 if choice % 2 else -1)
    if isinstance(value, str):
        if value and all(c in "0123456789abcdef" for c in value):
            i = choice % len(value)
            return value[:i] + ("1" if value[i] != "1" else "2") + value[i + 1:]
        return value + "x"
    if value is None:
        return 0
    if isinstance(value, list):
        return [mutate(value[0], choice), *value[1:]] if value else [0]
    if isinstance(value, dict):
        if not value:
            return {"x": 1}
        k = sorted(value)[choice % len(value)]
        return {**value, k: mutate(value[k], choice // 7)}
    raise AssertionError(type(value))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_field_change_is_detected(good: Written, data: st.DataObject) -> None:
    lines = parse(good.log)
    n = data.draw(st.integers(0, len(lines) - 1), label="line")
    entry = copy.deepcopy(lines[n].value)
    field = data.draw(st.sampled_from(sorted(entry)), label="field")
    entry[field] = mutate(entry[field], data.draw(st.integers(0, 1000), label="choice"))
    lines[n] = ParsedLine(lines[n].line, entry)
    _, findings = check(lines, good.digests)
    assert blocking(findings), f"changing {field} of line {n + 1} went unnoticed"


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_removing_or_moving_a_line_is_detected(good: Written, data: st.DataObject) -> None:
    """Removing any line, or moving a chain entry, is found. (Where a checkpoint line sits
    does not matter: it names the entry it signs by seq and hash.)"""
    lines = parse(good.log)
    i = data.draw(st.integers(0, len(lines) - 1), label="from")
    moved = lines.pop(i)
    if moved.value["type"] != "checkpoint" and data.draw(st.booleans(), label="move"):
        j = data.draw(st.integers(0, len(lines)).filter(lambda j: j != i), label="to")
        lines.insert(j, moved)
        order = [pl.value["seq"] for pl in lines if pl.value["type"] != "checkpoint"]
        assume(order != sorted(order))  # moved past a checkpoint line only: nothing changed
    _, findings = check(lines, good.digests)
    assert blocking(findings)


def test_resigned_chain_with_other_key_is_not_trusted(tmp_path: Path) -> None:
    """A forger who rebuilds the whole chain cannot sign it with the trusted key."""
    forger = Signer(Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
    run = write_run(tmp_path / CAMERA, 30, signer=forger)
    _, findings = check(parse(run.log), run.digests)
    assert "untrusted_key" in {f.kind for f in blocking(findings)}


# --- crash and restart ------------------------------------------------------------------------

def test_crash_tail_is_set_aside_and_the_chain_continues(tmp_path: Path) -> None:
    cam_dir = tmp_path / CAMERA
    first = write_run(cam_dir, 40, stop=False)   # frames 25..39 never signed
    before = first.log.read_bytes()
    _, findings = check(parse(first.log))
    tails = [f for f in findings if f.kind == "unsigned_tail"]
    assert len(tails) == 1 and tails[0].severity == WARNING
    assert [f for f in findings if f.severity == ERROR] == []

    second = write_run(cam_dir, 20, start=50)     # restart: recover(), then continue
    tail = (cam_dir / "crash" / "tail-000001.jsonl").read_bytes()
    assert before.endswith(tail) and tail.count(b"\n") == 15
    after = second.log.read_bytes()
    assert after.startswith(before[: len(before) - len(tail)])
    entries = [json.loads(line) for line in after.splitlines()]
    start = [e for e in entries if e.get("event") == "recorder_start"][-1]
    assert start["detail"] == {
        "previous_run": "interrupted", "unsigned_entries": 15,
        "unsigned_file": "crash/tail-000001.jsonl",
        "unsigned_sha256": hashlib.sha256(tail).hexdigest()}
    rep, findings = check(parse(second.log))
    assert blocking(findings) == []
    assert {f.kind for f in findings} == {"recorder_restart"}
    assert rep.frames == rep.signed_frames == 25 + 20
