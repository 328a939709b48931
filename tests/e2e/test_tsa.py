"""RFC 3161 trusted timestamps end to end, against a real TSA run locally: OpenSSL's
``openssl ts -reply`` behind HTTP on 127.0.0.1 (tests/servers/tsa_server.py), with a
test CA and TSA certificate made by ``openssl``.

The recorder asks for tokens over its checkpoints while it records; the verifier
checks them (signature, certificate, imprint = the checkpoint's hash) and reports
when each stretch of footage provably existed. The TSA is also started late, while a
recording runs: the tokens are obtained once it is there, and none is lost.
"""

from __future__ import annotations

import base64
import hashlib
import json
import selectors
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LOCATION, Keys, free_port, vidproof
from vidproof.timestamp.tsa import TsaClient, TsaSettings

pytestmark = pytest.mark.slow

SERVER = Path(__file__).resolve().parents[1] / "servers" / "tsa_server.py"


def make_pki(out: Path) -> Path:
    subprocess.run([sys.executable, str(SERVER), "--make-pki", str(out)], check=True,
                   capture_output=True, timeout=60)
    return out


class Tsa:
    """One real TSA process (openssl ts -reply behind http.server)."""

    def __init__(self, pki: Path, work: Path, port: int) -> None:
        self.pki, self.work, self.port = pki, work, port
        self.proc: subprocess.Popen[str] | None = None
        self.url = f"http://127.0.0.1:{port}/"

    def start(self) -> Tsa:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--cert", str(self.pki / "tsa.pem"), "--key",
             str(self.pki / "tsa.key"), "--chain", str(self.pki / "ca.pem"), "--workdir",
             str(self.work), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(20)
        sel.close()
        line = self.proc.stdout.readline() if ready else ""
        assert line.startswith("ready "), f"TSA did not start: {line!r}"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("tsa-pki"))


@pytest.fixture(scope="module")
def tsa(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    server = Tsa(pki, tmp_path_factory.mktemp("tsa-work"), free_port()).start()
    yield server
    server.stop()


def record_args(store: Path, keys: Keys, duration: float, *extra: str) -> list[str]:
    return ["record", "--source", "testsrc:320x240@25", "--camera-id", "cam1", "--location",
            LOCATION, "--key", str(keys.key), "--store", str(store), "--duration",
            str(duration), "--segment-seconds", "2", *extra]


def lines(store: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (store / "cam1" / "evidence.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stamped_store(tmp_path_factory: pytest.TempPathFactory, keys: Keys, tsa: Tsa,
                  pki: Path) -> Path:
    """5 s recorded at real pace, a token every 2.5 s: some checkpoints have one, some not."""
    store = tmp_path_factory.mktemp("tsa-store") / "store"
    r = vidproof(*record_args(store, keys, 5, "--tsa", tsa.url, "--tsa-interval", "2.5",
                              "--tsa-cert", str(pki / "ca.pem")))
    assert r.code == 0, r.err
    return store


def test_checkpoints_get_tokens_and_report_shows_existence(stamped_store: Path, keys: Keys,
                                                           pki: Path, tmp_path: Path) -> None:
    entries = lines(stamped_store)
    cps = {hashlib.sha256(json.dumps(e, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest(): e
           for e in entries if e["type"] == "checkpoint"}
    stamps = [e for e in entries if e["type"] == "timestamp"]
    assert len(stamps) >= 3  # t=0, t>=2.5 s, and the last checkpoint at stop
    for s in stamps:  # each names a checkpoint of the log by hash and seq
        assert cps[s["checkpoint"]]["seq"] == s["seq"]
    last_cp = [e for e in entries if e["type"] == "checkpoint"][-1]
    assert stamps[-1]["seq"] == last_cp["seq"]  # the last checkpoint is stamped at stop

    html = tmp_path / "report.html"
    r = vidproof("verify", stamped_store, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem",
                 "--json", "--report", html)
    assert r.code == 0, r.out
    cam = r.json["cameras"][0]
    assert cam["timestamps"]["valid"] == len(stamps) and cam["timestamps"]["anchored"] is True
    stretches = cam["proven_existence"]
    assert len(stretches) >= 2 and all(s["proof"] == "rfc3161" for s in stretches)
    # Every frame is in exactly one stretch, in order.
    assert stretches[0]["first_frame"] == cam["first_frame"]
    assert stretches[-1]["last_frame"] == cam["last_frame"]
    for a, b in zip(stretches, stretches[1:], strict=False):
        assert b["first_frame"] > a["last_frame"] and a["by_utc"] <= b["by_utc"]
    for s in stretches:  # the TSA's time is after the footage (real-time recording)
        assert s["by_utc"] >= s["last_utc"]
    assert "provably existed by" in html.read_text()
    text = vidproof("verify", stamped_store, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem")
    assert text.code == 0 and "provably existed by" in text.out, text.out


def test_tsa_trust_anchor(stamped_store: Path, keys: Keys, tmp_path: Path) -> None:
    r = vidproof("verify", stamped_store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out  # checked against the TSA certificate in the tokens
    assert "timestamp_unanchored" in {f["kind"] for f in r.json["findings"]}
    other = make_pki(tmp_path / "other-pki")
    r = vidproof("verify", stamped_store, "--trust", keys.pub, "--tsa-cert",
                 other / "ca.pem", "--json")
    assert r.code == 1
    assert {f["kind"] for f in r.json["findings"] if f["severity"] == "error"} == {
        "timestamp_untrusted"}


def _rewrite(store: Path, change: Any) -> None:
    path = store / "cam1" / "evidence.jsonl"
    out = []
    for raw in path.read_text().splitlines():
        e = json.loads(raw)
        if e["type"] == "timestamp":
            e = change(e)
        out.append(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    path.write_text("\n".join(out) + "\n")


def test_token_over_other_data_is_detected(stamped_store: Path, keys: Keys, tsa: Tsa,
                                           pki: Path, tmp_path: Path) -> None:
    settings = TsaSettings.make(tsa.url, 1, pki / "ca.pem")
    other_token, _ = TsaClient(settings).stamp(hashlib.sha256(b"other footage").digest())
    store = tmp_path / "store"
    shutil.copytree(stamped_store, store)
    first = [True]

    def swap(e: dict[str, Any]) -> dict[str, Any]:
        if first[0]:
            first[0] = False
            e["token"] = base64.b64encode(other_token).decode()
        return e

    _rewrite(store, swap)
    r = vidproof("verify", store, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem", "--json")
    assert r.code == 1, r.out
    bad = [f for f in r.json["findings"] if f["severity"] == "error"]
    assert [f["kind"] for f in bad] == ["timestamp_mismatch"], bad
    assert "over other data" in bad[0]["message"]

    # A token altered in place (its signature) is invalid, not a mismatch.
    store2 = tmp_path / "store2"
    shutil.copytree(stamped_store, store2)

    def flip(e: dict[str, Any]) -> dict[str, Any]:
        raw = bytearray(base64.b64decode(e["token"]))
        raw[-5] ^= 0x01  # inside the signature, the last field of the token
        e["token"] = base64.b64encode(bytes(raw)).decode()
        return e

    _rewrite(store2, flip)
    r = vidproof("verify", store2, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem", "--json")
    assert r.code == 1
    assert {f["kind"] for f in r.json["findings"] if f["severity"] == "error"} == {
        "timestamp_invalid"}


def test_bundle_carries_tokens_and_verifies_offline(stamped_store: Path, keys: Keys, tsa: Tsa,
                                                    pki: Path, tmp_path: Path) -> None:
    report = vidproof("verify", stamped_store, "--trust", keys.pub, "--json").json
    first = datetime.fromisoformat(report["first_utc"].replace("Z", "+00:00"))
    # A clip in the middle: its last checkpoint has no token of its own, so the bundle
    # carries the next token and the checkpoints that link it to the clip.
    start, end = first + timedelta(seconds=3.1), first + timedelta(seconds=3.6)
    bundle = tmp_path / "clip.zip"
    r = vidproof("export", "--store", stamped_store, "--camera", "cam1", "--from",
                 start.astimezone(UTC).isoformat(), "--to", end.astimezone(UTC).isoformat(),
                 "--out", bundle, "--case", "C-1", "--officer", "test", "--key", keys.key)
    assert r.code == 0, r.err
    with zipfile.ZipFile(bundle) as z:
        evidence = json.loads(z.read("evidence.json"))
    assert evidence["timestamps"], "the bundle carries no token"
    tsa.stop()  # the TSA is gone: verification needs only the bundle and the anchors
    try:
        r = vidproof("verify", bundle, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem",
                     "--json")
    finally:
        tsa.start()
    assert r.code == 0, r.out
    cam = r.json["cameras"][0]
    assert cam["timestamps"]["anchored"] is True
    covered = [s for s in cam["proven_existence"] if s["proof"] == "rfc3161"]
    assert covered and covered[0]["first_frame"] == cam["first_frame"]
    assert covered[-1]["last_frame"] == cam["last_frame"]
    assert evidence["timestamp_checkpoints"], "the clip's end checkpoint had its own token"
    # Breaking the link (a carried checkpoint replaced) is detected.
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(unpacked)
    evidence["timestamp_checkpoints"][0]["utc_ns"] += 1
    (unpacked / "evidence.json").write_text(json.dumps(evidence, indent=1))
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                   for p in sorted(unpacked.iterdir()) if p.name != "SHA256SUMS")
    (unpacked / "SHA256SUMS").write_text(sums)
    r = vidproof("verify", unpacked, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem",
                 "--json")
    assert r.code == 1
    assert "timestamp_mismatch" in {f["kind"] for f in r.json["findings"]}


def test_tsa_down_then_back_nothing_lost(tmp_path: Path, keys: Keys, pki: Path) -> None:
    port = free_port()
    store = tmp_path / "store"
    rec = subprocess.Popen(
        [sys.executable, "-m", "vidproof",
         *record_args(store, keys, 5, "--tsa", f"http://127.0.0.1:{port}/", "--tsa-interval",
                      "0.2", "--tsa-cert", str(pki / "ca.pem"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The TSA is unreachable while the first checkpoints are written: requests queue up.
    log = store / "cam1" / "evidence.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and rec.poll() is None and (
            not log.exists() or log.read_bytes().count(b'"type":"checkpoint"') < 2):
        time.sleep(0.05)
    up_ns = time.time_ns()
    server = Tsa(pki, tmp_path / "tsa-work", port).start()
    try:
        out, err = rec.communicate(timeout=60)
    finally:
        server.stop()
    assert rec.returncode == 0, err
    assert "retrying" in err  # the recorder noticed the TSA was down
    entries = lines(store)
    checkpoints = [e for e in entries if e["type"] == "checkpoint"]
    stamps = [e for e in entries if e["type"] == "timestamp"]
    # Every checkpoint was time-stamped (the interval is shorter than the checkpoint
    # spacing, and the last one is asked for at stop): nothing was lost.
    assert sorted(s["seq"] for s in stamps) == [c["seq"] for c in checkpoints]
    early = [c for c in checkpoints if c["utc_ns"] < up_ns]
    assert len(early) >= 2
    assert all(s["utc_ns"] >= up_ns for s in stamps)  # obtained once the TSA was back
    r = vidproof("verify", store, "--trust", keys.pub, "--tsa-cert", pki / "ca.pem", "--json")
    assert r.code == 0, r.out
    stretches = r.json["cameras"][0]["proven_existence"]
    assert all(s["proof"] == "rfc3161" for s in stretches)
    # The footage recorded while the TSA was down provably existed only by the time the
    # TSA was back: the report says so, rather than the recorder's own times.
    assert stretches[0]["by_utc"] >= datetime.fromtimestamp(up_ns / 1e9, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S")
    # A restart keeps the tokens written after the last checkpoint: the previous run
    # ended cleanly, nothing is set aside as an unsigned tail.
    r = vidproof(*record_args(store, keys, 1, "--fast"))
    assert r.code == 0, r.err
    start = [e for e in lines(store) if e["type"] == "event"
             and e["event"] == "recorder_start"][-1]
    assert start["detail"]["previous_run"] == "clean"
    assert not (store / "cam1" / "crash").exists()


def test_export_window_carries_the_same_tokens(stamped_store: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An export's window read of a time-stamped log (issue 3, Done 7) finds the tokens
    over its checkpoints, and the first token after them with the checkpoints that link
    it, as a full read does."""
    from tests.e2e.test_export import window_matches_full_read
    from vidproof import export as ex

    monkeypatch.setattr(ex, "WINDOW_MARGIN_NS", 0)
    frames = [e for e in lines(stamped_store) if e["type"] == "frame"]
    t0, t1, s = frames[0]["utc_ns"], frames[-1]["utc_ns"], 10**9
    for a, b in [(t0, t0 + s), (t0 + s, t0 + 2 * s), (t0 + 2 * s, t0 + 3 * s + s // 2),
                 (t1 - s, t1)]:
        assert window_matches_full_read(stamped_store / "cam1", a, b), ((a - t0) / s,)
