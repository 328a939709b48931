"""Retention (issue 6, done means 6): old segments are destroyed by the recorder, the
destruction is a signed event, journaled and registered, what remains verifies, and held
ranges (a legal hold, an exported range) are kept.

The history, all with the real CLI and the built-in test camera at real time:

1. ``vidproof record`` for 10 s (five 2-s segments), no retention.
2. A legal hold (``vidproof hold add``) over part of segment 2, and an export of part of
   segment 3 (which adds an export hold).
3. ``vidproof record --retention-days 0.0001`` (8.64 s) for 10 s more: at its start, and
   while it records, it destroys the old segments that no hold covers.

A period of 0.0001 days is a real retention period, only short. Other tests run the
recorder in this process with its clock moved a day ahead (``Recorder(clock=...)``): a
store without segment index, a recorder killed mid-segment, a damaged holds file. With
0.0001 days a purge pass runs every 2.16 s (a quarter of the period, at most 60 s).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LOCATION, Keys, Run, vidproof

pytestmark = pytest.mark.slow

CAM = "cam1"
SEG_S = 2
RETENTION_DAYS = "0.0001"  # 8.64 s
RETENTION_NS = round(0.0001 * 86_400 * 10**9)
FRAME_NS = 40_000_000  # 25 fps


def iso(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 10**9, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 10**9) // 1000:06d}Z"


def record_cmd(store: Path, keys: Keys, source: str, duration: float,
               *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidproof", "record", "--source", source, "--camera-id", CAM,
            "--location", LOCATION, "--key", str(keys.key), "--store", str(store),
            "--duration", str(duration), "--segment-seconds", str(SEG_S), *extra]


def record(store: Path, keys: Keys, source: str, duration: float, *extra: str) -> None:
    p = subprocess.run(record_cmd(store, keys, source, duration, *extra), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def entries(store: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (store / CAM / "evidence.jsonl").read_text().splitlines()]


def frames(store: Path) -> list[dict[str, Any]]:
    return [e for e in entries(store) if e["type"] == "frame"]


def purge_events(store: Path) -> list[dict[str, Any]]:
    return [e for e in entries(store) if e.get("event") == "retention_purge"]


def segment_names(store: Path) -> list[str]:
    return sorted(p.name for p in (store / CAM / "segments").glob("*.ts"))


def register(store: Path) -> list[dict[str, Any]]:
    path = store / "retention-register.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def verify(store: Path, keys: Keys) -> Run:
    return vidproof("verify", store, "--trust", keys.pub, "--json")


def findings(r: Run, kind: str) -> list[dict[str, Any]]:
    return [f for f in r.json["findings"] if f["kind"] == kind]


def spans_by_segment(store: Path) -> dict[str, tuple[int, int, int, int]]:
    """segment -> (first seq, last seq, first utc, last utc), from the segment index."""
    from vidproof.retention import read_index

    out = {}
    for name, s in read_index(store / CAM).items():
        assert s.closed and s.first_seq is not None and s.last_seq is not None
        assert s.first_utc_ns is not None and s.last_utc_ns is not None
        out[name] = (s.first_seq, s.last_seq, s.first_utc_ns, s.last_utc_ns)
    return out


@dataclass
class History:
    store: Path
    keys: Keys
    before_purge: Path  # a copy of the store after step 2
    phase1: list[str]  # its segments
    spans: dict[str, tuple[int, int, int, int]]
    legal: tuple[int, int]  # the legal hold's range (ns)
    exported: tuple[int, int]  # the export's footage range (ns)
    bundle: Path
    phase2_first_seq: int
    started_ns: int  # when step 3 started


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> History:
    root = tmp_path_factory.mktemp("retention")
    store = root / "store"
    # Two runs at different frame widths: a picture never repeats across runs.
    record(store, keys, "testsrc:320x240@25", 10)
    spans = spans_by_segment(store)
    phase1 = segment_names(store)
    assert len(phase1) == 5 and set(spans) == set(phase1), spans
    t0 = frames(store)[0]["utc_ns"]
    legal = ((t0 + 2_500_000_000) // 1000 * 1000, (t0 + 3_000_000_000) // 1000 * 1000)  # µs
    r = vidproof("hold", "add", "--store", store, "--camera", CAM, "--from", iso(legal[0]),
                 "--to", iso(legal[1]), "--reason", "requisition of 3 May", "--case", "PV-17",
                 "--by", "judge Martin")
    assert r.code == 0, r.err
    bundle = root / "export.zip"
    r = vidproof("export", "--store", store, "--camera", CAM, "--from", iso(t0 + 4_500_000_000),
                 "--to", iso(t0 + 5_000_000_000), "--out", bundle, "--case", "PV-18",
                 "--officer", "officer Durand", "--reason", "theft")
    assert r.code == 0, r.err
    with zipfile.ZipFile(bundle) as z:
        exp = json.loads(z.read("evidence.json"))["export"]
    before = root / "before-purge"
    shutil.copytree(store, before)
    first_seq = entries(store)[-1]["seq"] + 1
    started = time.time_ns()
    record(store, keys, "testsrc:336x240@25", 10, "--retention-days", RETENTION_DAYS)
    return History(store, keys, before, phase1, spans, legal,
                   (exp["first_utc_ns"], exp["last_utc_ns"]), bundle, first_seq, started)


def held(h: History) -> set[str]:
    out = set()
    for name in h.phase1:
        _, _, first, last = h.spans[name]
        for lo, hi in (h.legal, h.exported):
            if lo <= last and hi >= first:
                out.add(name)
    return out


def test_old_segments_are_destroyed_and_held_ones_kept(history: History) -> None:
    h = history
    keep = held(h)
    assert len(keep) == 2, keep  # the legal hold's segment and the exported one
    left = set(segment_names(h.store))
    assert keep <= left, "a held segment was destroyed"
    destroyed = set(h.phase1) - left
    # Every unheld segment of the first run is far older than 8.64 s by the end.
    assert destroyed == set(h.phase1) - keep
    events = purge_events(h.store)
    assert {e["detail"]["segment"] for e in events} >= destroyed
    for e in events:
        d = e["detail"]
        name = d["segment"]
        if name in h.spans:  # a segment of the first run: the range the index gave
            assert (d["first_seq"], d["last_seq"]) == h.spans[name][:2]
            assert d["frames"] == d["last_seq"] - d["first_seq"] + 1 == SEG_S * 25
        assert d["retention_days"] == RETENTION_DAYS
        # Destroyed once older than the period, and the event comes after its frames.
        assert e["utc_ns"] - d["last_utc_ns"] >= RETENTION_NS
        assert e["seq"] > d["last_seq"]
    # Some were destroyed at start, some while the second run recorded its own frames.
    assert any(e["seq"] > h.phase2_first_seq + 50 for e in events), \
        [e["seq"] for e in events]


def test_what_remains_verifies_with_the_destruction_explained(history: History) -> None:
    h = history
    r = verify(h.store, h.keys)
    assert r.code == 0, r.out
    assert r.json["verdict"] == "authentic"
    assert not [f for f in r.json["findings"] if f["severity"] != "info"]
    purged = findings(r, "retention_purge")
    assert purged
    covered = {s for f in purged for s in range(f["first_frame"], f["last_frame"] + 1)}
    frame_seqs = {f["seq"] for f in frames(h.store)}
    named = {s for e in purge_events(h.store)
             for s in range(e["detail"]["first_seq"], e["detail"]["last_seq"] + 1)}
    assert covered & frame_seqs == named & frame_seqs
    for f in purged:
        assert "were destroyed" in f["message"] and f"{RETENTION_DAYS} days" in f["message"]
        assert "signed" in f["message"]
    # The held segments' frames are still there, and checked.
    for name in held(h):
        first, last = h.spans[name][:2]
        assert not (set(range(first, last + 1)) & covered)


def test_the_journal_holds_every_deletion(history: History) -> None:
    h = history
    r = vidproof("journal", "verify", h.store, "--trust", h.keys.pub)
    assert r.code == 0 and "all signed and in order" in r.out, r.out
    journal = [json.loads(x) for x in (h.store / "journal.jsonl").read_text().splitlines()]
    deletes = [e for e in journal if e["action"] == "delete"]
    assert all(e["actor"] == "retention" for e in deletes)
    events = {e["seq"]: e for e in purge_events(h.store)}
    assert sorted(e["detail"]["event_seq"] for e in deletes) == sorted(events)
    for e in deletes:
        d = dict(e["detail"])
        ev = events[d.pop("event_seq")]
        assert d.pop("camera") == CAM
        assert d == ev["detail"]  # the journal says what the signed event says
    actions = [e["action"] for e in journal]
    assert actions.index("hold_add") < actions.index("export") < actions.index("delete")


def test_the_register_lists_destruction_dates(history: History) -> None:
    h = history
    lines = register(h.store)
    events = {e["seq"]: e for e in purge_events(h.store)}
    assert sorted(x["event_seq"] for x in lines) == sorted(events)
    for x in lines:
        ev = events[x["event_seq"]]
        d = ev["detail"]
        assert x["camera"] == CAM and x["segment"] == d["segment"]
        assert x["sha256"] == d["sha256"] and x["frames"] == d["frames"]
        assert x["retention_days"] == RETENTION_DAYS
        destroyed = datetime.fromisoformat(x["destroyed_utc"])
        footage_to = datetime.fromisoformat(x["footage_to"])
        assert (destroyed - footage_to).total_seconds() >= RETENTION_NS / 1e9 - 0.001
        assert abs(destroyed.timestamp() - ev["utc_ns"] / 1e9) < 0.001
        # The file was hashed before it went: the copy taken before the purge matches.
        old = h.before_purge / CAM / "segments" / x["segment"]
        if old.exists():
            assert hashlib.sha256(old.read_bytes()).hexdigest() == x["sha256"]
            assert old.stat().st_size == x["bytes"]


def test_holds_are_listed_and_the_export_is_held(history: History) -> None:
    h = history
    r = vidproof("hold", "list", "--store", h.store, "--json")
    assert r.code == 0, r.err
    holds = {x["kind"]: x for x in json.loads(r.out)}
    assert set(holds) == {"legal", "export"}
    assert (holds["legal"]["from_utc_ns"], holds["legal"]["to_utc_ns"]) == h.legal
    assert holds["legal"]["case"] == "PV-17" and holds["legal"]["by"] == "judge Martin"
    assert (holds["export"]["from_utc_ns"], holds["export"]["to_utc_ns"]) == h.exported
    assert holds["export"]["case"] == "PV-18" and holds["export"]["by"] == "officer Durand"
    # The bundle made before the purge still verifies on its own.
    assert vidproof("verify", h.bundle, "--trust", h.keys.pub).code == 0


def test_exporting_destroyed_footage_fails_with_one_line(history: History,
                                                         tmp_path: Path) -> None:
    h = history
    first = min(n for n in h.phase1 if n not in held(h))
    _, _, lo, hi = h.spans[first]
    r = vidproof("export", "--store", h.store, "--camera", CAM, "--from", iso(lo + FRAME_NS),
                 "--to", iso(hi), "--out", tmp_path / "x.zip", "--case", "C", "--officer", "O")
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    assert "was destroyed on" in lines[0] and f"{RETENTION_DAYS} days of retention" in lines[0]
    assert not (tmp_path / "x.zip").exists()
    # Footage kept around the last purge event still exports, and the clip (which holds
    # that event) verifies on its own.
    store = tmp_path / "store"
    shutil.copytree(h.store, store)
    last_event = purge_events(store)[-1]["seq"]
    kept = [f for f in frames(store) if f["seq"] >= h.phase2_first_seq]
    start = max((f for f in kept if f["seq"] < last_event), key=lambda f: f["seq"])
    r = vidproof("export", "--store", store, "--camera", CAM, "--from",
                 iso(start["utc_ns"]), "--to", iso(kept[-1]["utc_ns"]), "--out",
                 tmp_path / "y.zip", "--case", "C", "--officer", "O")
    assert r.code == 0, r.err
    with zipfile.ZipFile(tmp_path / "y.zip") as z:
        clip = json.loads(z.read("evidence.json"))["entries"]
    assert any(e.get("event") == "retention_purge" for e in clip)
    r = vidproof("verify", tmp_path / "y.zip", "--trust", h.keys.pub, "--json")
    assert r.code == 0, r.out
    assert not findings(r, "retention_purge")


def test_deleting_a_segment_that_was_not_purged_is_still_tampering(history: History,
                                                                   tmp_path: Path) -> None:
    h = history
    store = tmp_path / "store"
    shutil.copytree(h.store, store)
    victim = sorted(held(h))[0]
    (store / CAM / "segments" / victim).unlink()
    r = verify(store, h.keys)
    assert r.code == 1, r.out
    first, last = h.spans[victim][:2]
    missing = findings(r, "frame_missing")
    assert missing and missing[0]["severity"] == "error"
    assert (missing[0]["first_frame"], missing[0]["last_frame"]) == (first, last)


def test_an_edited_purge_event_breaks_the_chain(history: History, tmp_path: Path) -> None:
    """Widen a purge event to excuse a held segment, then delete that segment."""
    from vidproof.canonical import canonical_bytes

    h = history
    store = tmp_path / "store"
    shutil.copytree(h.store, store)
    victim = sorted(held(h))[0]
    lines = (store / CAM / "evidence.jsonl").read_bytes().splitlines()
    for i, raw in enumerate(lines):
        e = json.loads(raw)
        if e.get("event") == "retention_purge" and e["seq"] > h.spans[victim][1]:
            e["detail"]["first_seq"] = h.spans[victim][0]
            lines[i] = canonical_bytes(e)
            break
    else:
        pytest.fail("no purge event after the held segment")
    (store / CAM / "evidence.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (store / CAM / "segments" / victim).unlink()
    r = verify(store, h.keys)
    assert r.code == 1
    kinds = {f["kind"] for f in r.json["findings"] if f["severity"] == "error"}
    assert kinds & {"record_modified", "checkpoint_mismatch"}, kinds


def test_a_destroyed_segment_put_back_is_noted_not_missing(history: History,
                                                           tmp_path: Path) -> None:
    h = history
    store = tmp_path / "store"
    shutil.copytree(h.store, store)
    name = min(n for n in h.phase1 if n not in held(h))
    shutil.copy(h.before_purge / CAM / "segments" / name, store / CAM / "segments" / name)
    r = verify(store, h.keys)
    assert r.code == 0, r.out
    present = findings(r, "purged_frames_present")
    assert [(f["first_frame"], f["last_frame"]) for f in present] == [h.spans[name][:2]]


# --- the recorder in this process, with its clock a day ahead ---------------------------

def run_recorder(store: Path, keys: Keys, *, duration: float, fast: bool,
                 source: str = "testsrc:352x240@25", ahead_ns: int = 86_400 * 10**9) -> Any:
    """A recorder whose clock is a day ahead, with a retention of 0.0001 days: every
    earlier footage is old. Paced at real time, a run of 3 s makes two purge passes."""
    from vidproof.capture.worker import Recorder, RecordSettings
    from vidproof.keys import load_signer
    from vidproof.model import Location

    def clock() -> int:
        return time.time_ns() + ahead_ns

    settings = RecordSettings(source, CAM, Location.parse(LOCATION), store,
                              duration=duration, fast=fast, segment_seconds=SEG_S,
                              retention_days=float(RETENTION_DAYS))
    recorder = Recorder(settings, load_signer(keys.key), clock=clock)
    recorder.run()
    return recorder


def test_a_store_without_segment_index_is_purged_from_its_digests(history: History,
                                                                  tmp_path: Path) -> None:
    h = history
    store = tmp_path / "store"
    shutil.copytree(h.before_purge, store)
    (store / CAM / "segments" / "index.jsonl").unlink()
    (store / "holds.json").unlink()
    keeper = run_recorder(store, h.keys, duration=3.2, fast=False).keeper
    assert keeper.purged == len(h.phase1)
    assert not set(h.phase1) & set(segment_names(store))
    for e in purge_events(store):
        d = e["detail"]
        assert d["placed"] == "from_digests"
        assert (d["first_seq"], d["last_seq"]) == h.spans[d["segment"]][:2]
        assert d["frames"] == SEG_S * 25
    r = verify(store, h.keys)
    assert r.code == 0, r.out
    assert findings(r, "retention_purge")


def test_a_segment_left_open_by_a_kill_is_closed_from_the_recovered_chain(
        keys: Keys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    p = subprocess.Popen(record_cmd(store, keys, "testsrc:368x240@25", 30),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(list((store / CAM / "segments").glob("*.ts"))) < 3:
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.05)
        time.sleep(0.9)  # mid-segment
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    open_segment = segment_names(store)[-1]
    keeper = run_recorder(store, keys, duration=3.2, fast=False, source="testsrc:384x240@25")
    index = (store / CAM / "segments" / "index.jsonl").read_text().splitlines()
    closed = [json.loads(x) for x in index if '"how":"after_crash"' in x]
    assert [c["segment"] for c in closed] == [open_segment]
    events = {e["detail"]["segment"]: e for e in purge_events(store)}
    assert open_segment in events and keeper.keeper.purged >= 3
    start = next(e for e in entries(store) if e.get("event") == "recorder_start"
                 and e["detail"]["previous_run"] == "interrupted")
    d = events[open_segment]["detail"]
    if d["last_seq"] is not None:  # frames of it were signed before the kill
        assert d["last_seq"] < start["seq"]
    r = verify(store, keys)
    assert r.code == 0, r.out


def test_a_damaged_holds_file_keeps_everything(history: History, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    h = history
    store = tmp_path / "store"
    shutil.copytree(h.before_purge, store)
    (store / "holds.json").write_text('[{"camera": "cam1"')
    with caplog.at_level(logging.WARNING):
        keeper = run_recorder(store, h.keys, duration=1, fast=True).keeper
    assert keeper.purged == 0 and not purge_events(store)
    assert set(h.phase1) <= set(segment_names(store))
    assert "nothing destroyed" in caplog.text and "holds.json" in caplog.text


# --- command line, configuration and the service -----------------------------------------

def test_bad_retention_and_hold_requests_exit_2(history: History, tmp_path: Path) -> None:
    h = history
    store = tmp_path / "store"
    shutil.copytree(h.before_purge, store)
    holds_before = (store / "holds.json").read_bytes()
    cases: dict[str, list[str | Path]] = {
        "retention over a month": record_cmd(store, h.keys, "testsrc", 1, "--retention-days",
                                             "31")[3:],
        "retention not a number": record_cmd(store, h.keys, "testsrc", 1, "--retention-days",
                                             "a month")[3:],
        "reversed hold": ["hold", "add", "--store", store, "--camera", CAM, "--from",
                          "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z",
                          "--reason", "x"],
        "hold without offset": ["hold", "add", "--store", store, "--camera", CAM, "--from",
                                "2026-01-01T00:00:00", "--to", "2026-01-02T00:00:00Z",
                                "--reason", "x"],
        "hold bad camera": ["hold", "add", "--store", store, "--camera", "../x", "--from",
                            "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z",
                            "--reason", "x"],
        "release unknown": ["hold", "release", "--store", store, "--id", "nope", "--reason",
                            "x"],
        "no such store": ["hold", "list", "--store", tmp_path / "nowhere"],
    }
    for what, argv in cases.items():
        r = vidproof(*argv)
        assert r.code == 2, (what, r.code, r.err)
        assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, (what, r.err)
    assert (store / "holds.json").read_bytes() == holds_before
    # Released once, then refused; both journaled once.
    legal = next(x for x in json.loads(vidproof("hold", "list", "--store", store,
                                                "--json").out) if x["kind"] == "legal")
    args = ["hold", "release", "--store", store, "--id", legal["id"], "--reason", "case closed"]
    assert vidproof(*args).code == 0
    again = vidproof(*args)
    assert again.code == 2 and "already released" in again.err
    listed = json.loads(vidproof("hold", "list", "--store", store, "--json").out)
    assert [x["kind"] for x in listed] == ["export"]
    journal = (store / "journal.jsonl").read_text().splitlines()
    assert [json.loads(x)["action"] for x in journal].count("hold_release") == 1


def test_the_supervisor_passes_the_retention_period(tmp_path: Path) -> None:
    from tests.e2e.service_harness import CameraSpec, write_config
    from vidproof.service.config import load_config
    from vidproof.service.supervisor import Supervisor

    path = write_config(tmp_path / "site.toml", [CameraSpec("c1", "testsrc")])
    path.write_text(path.read_text().replace("[storage]", "[storage]\nretention_days = 7"))
    config = load_config(path)
    cmd = Supervisor(config)._command(config.cameras[0])
    assert cmd[cmd.index("--retention-days") + 1] == "7.0"
    assert "--retention-override" not in cmd


def test_the_service_shows_the_register_and_holds(history: History, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tests.e2e.service_harness import USERS, CameraSpec, add_users, write_config
    from vidproof.keys import load_signer
    from vidproof.service.app import create_app
    from vidproof.service.config import load_config
    from vidproof.service.context import Service

    path = write_config(tmp_path / "site.toml", [CameraSpec(CAM, "testsrc")])
    data = tmp_path / "data"
    shutil.copytree(history.store, data / "store")
    add_users(data / "users.json", tmp_path, ("auditor", "installer", "operator"))
    config = load_config(path)
    service = Service(config, load_signer(history.keys.key), None)
    with TestClient(create_app(service)) as client:
        def login(role: str) -> dict[str, str]:
            name, password = USERS[role]
            r = client.post("/api/login", json={"username": name, "password": password})
            return {"Authorization": f"Bearer {r.json()['token']}"}

        assert client.get("/api/retention").status_code == 401
        assert client.get("/api/retention", headers=login("operator")).status_code == 403
        for role in ("auditor", "installer"):
            r = client.get("/api/retention", headers=login(role))
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["retention_days"] == 30 and page["holds_problem"] is None
            assert {x["kind"] for x in page["holds"]} == {"legal", "export"}
            assert [x["event_seq"] for x in page["register"]] == sorted(
                (x["event_seq"] for x in register(history.store)), reverse=True)
    journal = (data / "store" / "journal.jsonl").read_text().splitlines()
    assert [json.loads(x)["action"] for x in journal].count("view_retention") == 2

