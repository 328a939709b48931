"""Device certificates, revocation, key rotation and offline bundles, end to end with the
real CLI (issue 5, "Done means" 1, 2 and 6).

An operator CA is made with ``vidproof ca init`` and devices enrolled with ``vidproof
device enroll``; certificates with other validity windows are made here with
``cryptography``, signed by that CA's key. Recordings are of the built-in test camera
(``--fast``: capture times follow the stream, so they are known from the evidence).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from tests.conftest import LOCATION, Run
from vidproof.canonical import canonical_bytes, entry_hash
from vidproof.keys import load_signer

CAM = "cam1"
SOURCE = "testsrc:320x240@25"


def cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        prefix: tuple[str, ...] = (), timeout: float = 120) -> Run:
    proc = subprocess.run([*prefix, sys.executable, "-m", "vidproof", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


def record(store: Path, key: Path | str, *extra: str | Path, duration: float = 4,
           env: dict[str, str] | None = None, fast: bool = True) -> Run:
    return cli("record", "--source", SOURCE, "--camera-id", CAM, "--location", LOCATION,
               "--key", key, "--store", store, "--duration", str(duration),
               *(("--fast",) if fast else ()), "--segment-seconds", "2", *extra, env=env)


def verify(path: Path, trust: Path, *extra: str | Path, prefix: tuple[str, ...] = (),
           cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    r = cli("verify", path, "--trust", trust, "--json", *extra, prefix=prefix, cwd=cwd)
    assert r.code in (0, 1), r.err
    report: dict[str, Any] = json.loads(r.out)
    return r.code, report


def errors(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] in ("error", "warning")]


def kinds(report: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in errors(report)}


def log_of(store: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (store / CAM / "evidence.jsonl").read_bytes()
            .splitlines()]


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Pki:
    root: Path
    ca: Path  # the CA directory
    other_ca: Path
    dev: Path  # enrolled devices: DIR/device.key, device.pem, device.pub
    dev2: Path
    rogue: Path  # a device of the same CA, not this camera's


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    for d in ("ca", "other-ca"):
        r = cli("ca", "init", "--out", root / d)
        assert r.code == 0, r.err
    for d, alg in (("dev", "ed25519"), ("dev2", "p256"), ("rogue", "ed25519")):
        r = cli("device", "enroll", "--ca", root / "ca", "--recorder-id", f"rec-{d}",
                "--out", root / d, "--alg", alg)
        assert r.code == 0, r.err
    assert (root / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (root / "dev" / "device.key").stat().st_mode & 0o777 == 0o600
    pem = (root / "dev" / "device.pem").read_text()
    assert pem.count("BEGIN CERTIFICATE") == 2  # the device certificate, then the CA's
    return Pki(root, root / "ca", root / "other-ca", root / "dev", root / "dev2",
               root / "rogue")


@pytest.fixture(scope="module")
def enrolled_store(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("enrolled") / "store"
    # At real time: checkpoints are signed over 5 s of the recorder's clock, so that a
    # revocation can fall in the middle of them (its dates are whole seconds).
    r = record(store, pki.dev / "device.key", "--cert", pki.dev / "device.pem", duration=5,
               fast=False)
    assert r.code == 0, r.err
    return store


def frame_times(store: Path) -> list[int]:
    return [e["utc_ns"] for e in log_of(store) if e["type"] == "frame"]


def signing_times(store: Path) -> list[int]:
    """When each checkpoint was signed (the recorder's clock): what validity and
    revocation are checked against."""
    return [e["utc_ns"] for e in log_of(store) if e["type"] == "checkpoint"]


# --- 1. certificates, as of the recording time ---------------------------------------------

def test_enrolled_device_verifies_with_the_ca(pki: Pki, enrolled_store: Path) -> None:
    code, report = verify(enrolled_store, pki.ca / "ca.pem")
    assert code == 0, errors(report)
    (key,) = report["cameras"][0]["keys"]
    cert = key["certificate"]
    assert cert["recorder_id"] == "rec-dev" and cert["issuer"] == "CN=vidproof operator CA"
    ctx = next(e for e in log_of(enrolled_store) if e["type"] == "context")
    assert len(ctx["context"]["key"]["certs"]) == 2  # the chain travels with the evidence
    # The bare public key still verifies, as it always did.
    code, report = verify(enrolled_store, pki.dev / "device.pub")
    assert code == 0, errors(report)


def test_another_ca_is_not_trusted(pki: Pki, enrolled_store: Path) -> None:
    code, report = verify(enrolled_store, pki.other_ca / "ca.pem")
    assert code == 1
    assert kinds(report) == {"untrusted_certificate"}
    assert "not the trusted CA" in errors(report)[0]["message"]


def _cert_for(pki: Pki, key: Path, out: Path, nb: datetime, na: datetime) -> Path:
    """A device certificate with an explicit validity window, signed by the CA's key."""
    ca_key = load_pem_private_key((pki.ca / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((pki.ca / "ca.pem").read_bytes())
    public = load_signer(key).public
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rec-window")]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, None))  # type: ignore[arg-type]
    from vidproof.trust.certs import cert_pem

    out.write_text(cert_pem(cert) + cert_pem(ca_cert))
    return out


@pytest.mark.parametrize("window,kind", [
    ((-10, -1), "certificate_expired"),
    ((1, 10), "certificate_not_yet_valid"),
])
def test_certificate_not_valid_at_recording_time(pki: Pki, tmp_path: Path,
                                                 window: tuple[int, int], kind: str) -> None:
    now = datetime.now(UTC)
    pem = _cert_for(pki, pki.rogue / "device.key", tmp_path / "window.pem",
                    now + timedelta(days=window[0]), now + timedelta(days=window[1]))
    store = tmp_path / "store"
    r = record(store, pki.rogue / "device.key", "--cert", pem, duration=2)
    assert r.code == 0, r.err
    code, report = verify(store, pki.ca / "ca.pem")
    assert code == 1
    assert kinds(report) == {kind}
    f = errors(report)[0]
    assert f["first_frame"] == 0 and report["cameras"][0]["checkpoints"] == 0
    assert "signing time" in f["message"]


def _crl_with(pki: Pki, tmp: Path, date_ns: int | None, name: str) -> Path:
    """A CRL of the CA revoking rec-dev's certificate from ``date_ns`` (a copy of the CA
    directory, so that each test has its own revocation list)."""
    ca = tmp / f"ca-{name}"
    shutil.copytree(pki.ca, ca)
    if date_ns is not None:
        r = cli("ca", "revoke", "--ca", ca, "--cert", pki.dev / "device.pem",
                "--date", iso(date_ns))
        assert r.code == 0, r.err
    crl = tmp / f"{name}.crl.pem"
    r = cli("ca", "crl", "--ca", ca, "--out", crl)
    assert r.code == 0, r.err
    return crl


def test_revocation_dates(pki: Pki, enrolled_store: Path, tmp_path: Path) -> None:
    times = signing_times(enrolled_store)
    # Revoked an hour before the recording: nothing of it is trusted.
    crl = _crl_with(pki, tmp_path, times[0] - 3600 * 10**9, "before")
    code, report = verify(enrolled_store, pki.ca / "ca.pem", "--crl", crl)
    assert code == 1 and kinds(report) == {"key_revoked"}
    assert report["cameras"][0]["checkpoints"] == 0
    # Revoked from the middle of the recording: what was signed before stays valid.
    mid = (times[0] // 10**9 + 2) * 10**9  # a whole second, 1 to 2 s into the recording
    assert times[0] < mid < times[-1]
    crl = _crl_with(pki, tmp_path, mid, "mid")
    code, report = verify(enrolled_store, pki.ca / "ca.pem", "--crl", crl)
    assert code == 1 and kinds(report) == {"key_revoked"}
    cam = report["cameras"][0]
    assert 0 < cam["signed_frames"] < cam["frames"]
    assert all(f["last_utc"] >= iso(mid)[:19] for f in errors(report))
    assert cam["keys"][0]["certificate"]["revoked_from"] == iso(mid)
    # A CRL that does not revoke it (or revokes it later) leaves the footage authentic.
    crl = _crl_with(pki, tmp_path, None, "none")
    code, report = verify(enrolled_store, pki.ca / "ca.pem", "--crl", crl)
    assert code == 0, errors(report)
    # A CRL that another CA signed is refused: it cannot be checked.
    other = tmp_path / "other.crl.pem"
    assert cli("ca", "crl", "--ca", pki.other_ca, "--out", other).code == 0
    r = cli("verify", enrolled_store, "--trust", pki.ca / "ca.pem", "--crl", other)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1


def test_encrypted_device_key(pki: Pki, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("a long passphrase\n")
    r = cli("device", "enroll", "--ca", pki.ca, "--recorder-id", "rec-enc", "--out",
            tmp_path / "enc", "--key-passphrase-file", secret)
    assert r.code == 0, r.err
    key = tmp_path / "enc" / "device.key"
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    store = tmp_path / "store"
    r = record(store, key, duration=1)
    assert r.code == 2 and "passphrase" in r.err and len(r.err.strip().splitlines()) == 1
    r = record(store, key, "--cert", tmp_path / "enc" / "device.pem", duration=1,
               env={"VIDPROOF_KEY_PASSPHRASE": "a long passphrase"})
    assert r.code == 0, r.err
    assert verify(store, pki.ca / "ca.pem")[0] == 0


# --- 2. key rotation ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def rotated_store(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("rotated") / "store"
    r = record(store, pki.dev / "device.key", "--cert", pki.dev / "device.pem",
               "--rotate-key", pki.dev2 / "device.key", "--rotate-cert",
               pki.dev2 / "device.pem", "--rotate-after", "3", duration=6)
    assert r.code == 0, r.err
    return store


def test_rotation_mid_recording_verifies(pki: Pki, rotated_store: Path) -> None:
    log = log_of(rotated_store)
    (rot,) = [e for e in log if e.get("event") == "key_rotation"]
    old, new = load_signer(pki.dev / "device.key"), load_signer(pki.dev2 / "device.key")
    cps = [e for e in log if e["type"] == "checkpoint"]
    assert {c["key"] for c in cps if c["seq"] <= rot["seq"]} == {old.key_id}
    assert {c["key"] for c in cps if c["seq"] > rot["seq"]} == {new.key_id}
    assert {c["alg"] for c in cps if c["seq"] > rot["seq"]} == {"ECDSA-P256-SHA256"}
    frames = [e for e in log if e["type"] == "frame"]
    assert frames[0]["seq"] < rot["seq"] < frames[-1]["seq"]  # in mid-recording
    for trust in (pki.ca / "ca.pem", pki.dev / "device.pub"):
        code, report = verify(rotated_store, trust)
        assert code == 0, errors(report)
        assert [f["first_frame"] for f in report["findings"]
                if f["kind"] == "key_rotation"] == [rot["seq"]]
        cam = report["cameras"][0]
        assert cam["signed_frames"] == cam["frames"] == len(frames)
        assert {k["id"] for k in cam["keys"]} == {old.key_id, new.key_id}
    # The recorder now signs exports with the new key.
    recorder = json.loads((rotated_store / "recorder.json").read_text())
    assert recorder["key"] == str((pki.dev2 / "device.key").resolve())


def _append(store: Path, signer: Any, entries: list[dict[str, Any]]) -> None:
    """Chain entries appended and checkpointed by ``signer``, every link correct."""
    log = log_of(store)
    chain = [e for e in log if e["type"] != "checkpoint"]
    last_cp = [e for e in log if e["type"] == "checkpoint"][-1]
    head, seq = entry_hash(chain[-1]), chain[-1]["seq"] + 1
    ctx = next(entry_hash(e) for e in reversed(chain) if e["type"] == "context")
    lines = []
    for e in entries:
        e = {"v": "vidproof/1", "camera": CAM, "seq": seq, "prev": head, **e}
        if e["type"] == "context":
            ctx = entry_hash(e)
        else:
            e["ctx"] = ctx
        head, seq = entry_hash(e), seq + 1
        cp = {"v": "vidproof/1", "type": "checkpoint", "camera": CAM, "seq": e["seq"],
              "head": head, "prev_checkpoint": entry_hash(last_cp), "utc_ns": e["utc_ns"],
              "key": signer.key_id, "alg": signer.alg}
        cp["sig"] = signer.sign(canonical_bytes(cp)).hex()
        last_cp = cp
        lines += [e, cp]
    with open(store / CAM / "evidence.jsonl", "ab") as f:
        f.writelines(canonical_bytes(x) + b"\n" for x in lines)


@pytest.mark.parametrize("how", ["forged_rotation", "appended_with_another_key"])
def test_forged_rotation_is_detected(pki: Pki, enrolled_store: Path, tmp_path: Path,
                                     how: str) -> None:
    """A device of the same CA cannot take over the camera's chain: not with a rotation
    event it signed itself, nor by signing entries appended after it."""
    store = tmp_path / "store"
    shutil.copytree(enrolled_store, store)
    rogue = load_signer(pki.rogue / "device.key", cert=pki.rogue / "device.pem")
    ctx = next(e for e in reversed(log_of(store)) if e["type"] == "context")["context"]
    t = frame_times(store)[-1] + 10**9
    entries: list[dict[str, Any]] = [
        {"type": "context", "utc_ns": t, "context": {**ctx, "key": rogue.key_json()}},
        {"type": "event", "utc_ns": t, "event": "recorder_stop",
         "detail": {"reason": "stopped by the operator", "frames": 0}}]
    if how == "forged_rotation":
        entries.insert(0, {"type": "event", "utc_ns": t, "event": "key_rotation", "detail": {
            "key": rogue.material_json(), "previous_key": log_of(store)[-1]["key"],
            "reason": "operator: --rotate-key"}})
    _append(store, rogue, entries)
    code, report = verify(store, pki.ca / "ca.pem")
    assert code == 1 and kinds(report) == {"key_not_introduced"}, errors(report)
    message = errors(report)[0]["message"]
    assert ("not signed by the old key" if how == "forged_rotation"
            else "not the key in force") in message
    # The recorder itself refuses to continue that chain with another key.
    r = record(store, pki.dev2 / "device.key", duration=1)
    assert r.code == 2 and "--rotate-key" in r.err


def test_sighup_rotates_to_the_replaced_key_file(pki: Pki, tmp_path: Path) -> None:
    """The operator's way: replace the key and certificate files, then SIGHUP."""
    key, pem = tmp_path / "device.key", tmp_path / "device.pem"
    shutil.copy2(pki.dev / "device.key", key)
    shutil.copy2(pki.dev / "device.pem", pem)
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidproof", "record", "--source", SOURCE, "--camera-id", CAM,
         "--location", LOCATION, "--key", str(key), "--cert", str(pem), "--store",
         str(store), "--duration", "6", "--segment-seconds", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = store / CAM / "evidence.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                not log.exists() or log.read_bytes().count(b'"type":"frame"') < 40):
            time.sleep(0.1)
        for src, dst in ((pki.dev2 / "device.key", key), (pki.dev2 / "device.pem", pem)):
            shutil.copy2(src, dst.with_suffix(".new"))
            os.replace(dst.with_suffix(".new"), dst)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "rotation on SIGHUP" in err
    (rot,) = [e for e in log_of(store) if e.get("event") == "key_rotation"]
    assert rot["detail"]["reason"].startswith("operator: SIGHUP")
    assert rot["detail"]["key"]["id"] == load_signer(key).key_id
    code, report = verify(store, pki.ca / "ca.pem")
    assert code == 0, errors(report)
    assert report["cameras"][0]["frames"] > 100  # recording went on across the rotation


# --- 6. an exported bundle verifies offline, with only the trust anchor ----------------------

def _export(store: Path, out: Path, start_ns: int, end_ns: int, *extra: str | Path,
            verdict: str = "authentic") -> Path:
    r = cli("export", "--store", store, "--camera", CAM, "--from", iso(start_ns), "--to",
            iso(end_ns), "--out", out, "--case", "C-1", "--officer", "J. Martin", *extra)
    assert r.code == 0, r.err
    assert f"verification at export: {verdict})" in r.out
    return out


def _offline() -> tuple[str, ...]:
    """Run with no network at all (a new, empty network namespace) when possible."""
    ok = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    return ("unshare", "-n") if ok else ()


def test_bundle_verifies_offline_with_only_the_trust_anchor(
        pki: Pki, rotated_store: Path, tmp_path: Path) -> None:
    times = frame_times(rotated_store)
    crl = _crl_with(pki, tmp_path, None, "clean")
    both = _export(rotated_store, tmp_path / "across.zip", times[10], times[-10],
                   "--crl", crl)
    after = _export(rotated_store, tmp_path / "after.zip", times[-40], times[-5])
    with zipfile.ZipFile(both) as z:
        ev = json.loads(z.read("evidence.json"))
    assert {k["id"] for k in ev["keys"]} >= {c["key"] for c in ev["checkpoints"]}
    assert all(k.get("certs") for k in ev["keys"]) and len(ev["rotations"]) == 1
    assert len(ev["crls"]) == 1
    # Only the bundle and the trust anchor, in an empty directory, with no network.
    room = tmp_path / "room"
    room.mkdir()
    for f in (both, after, pki.ca / "ca.pem", pki.dev / "device.pub"):
        shutil.copy2(f, room / f.name)
    for bundle in ("across.zip", "after.zip"):
        for trust in ("ca.pem", "device.pub"):
            code, report = verify(Path(bundle), Path(trust), prefix=_offline(), cwd=room)
            assert code == 0, (bundle, trust, errors(report))
            assert any(f["kind"] == "key_rotation" for f in report["findings"])
    # The clip after the rotation is signed by the new key only; the old device.pub still
    # verifies it through the carried rotation. Without that, the new key is untrusted.
    with zipfile.ZipFile(after) as z:
        ev = json.loads(z.read("evidence.json"))
    assert {c["key"] for c in ev["checkpoints"]} == {load_signer(pki.dev2 / "device.key").key_id}


def test_bundle_carries_the_crl_in_force(pki: Pki, enrolled_store: Path,
                                         tmp_path: Path) -> None:
    times = signing_times(enrolled_store)
    mid = (times[0] // 10**9 + 2) * 10**9
    crl = _crl_with(pki, tmp_path, mid, "mid")
    bundle = _export(enrolled_store, tmp_path / "b.zip", times[0], times[-1], "--crl", crl,
                     verdict="not_authentic")  # the exporter's own check sees it too
    room = tmp_path / "room"
    room.mkdir()
    shutil.copy2(bundle, room / "b.zip")
    shutil.copy2(pki.ca / "ca.pem", room / "ca.pem")
    code, report = verify(Path("b.zip"), Path("ca.pem"), prefix=_offline(), cwd=room)
    assert code == 1 and "key_revoked" in kinds(report)  # from the CRL inside the bundle
    assert report["cameras"][0]["signed_frames"] > 0


def test_export_window_carries_the_rotation(rotated_store: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An export's window read after a key rotation (issue 3, Done 7) carries the
    rotation and the keys, as a full read does, on either side of it."""
    from tests.e2e.test_export import window_matches_full_read
    from vidproof import export as ex

    monkeypatch.setattr(ex, "WINDOW_MARGIN_NS", 0)
    frames = [e for e in log_of(rotated_store) if e["type"] == "frame"]
    t0, t1, s = frames[0]["utc_ns"], frames[-1]["utc_ns"], 10**9
    for a, b in [(t0, t0 + s), (t0 + 2 * s, t0 + 4 * s), (t1 - s, t1)]:
        assert window_matches_full_read(rotated_store / CAM, a, b), ((a - t0) / s,)
