"""Recording with the device key in a PKCS#11 token: Debian's SoftHSM2, a real PKCS#11
implementation, through python-pkcs11 (issue 5, "Done means" 3).

Two keys are used: one made inside the token by ``vidproof device enroll --key
pkcs11:…`` (sensitive, not extractable), and one of known value imported with
``softhsm2-util --import`` so that the test can look for its bytes everywhere the
recorder, the exporter and the verifier write: store, bundle, outputs. The PKCS#8 file
it came from is deleted before anything runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import LOCATION, Run

SOFTHSM_UTIL = shutil.which("softhsm2-util")
MODULE = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so",
                           "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
               if Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(SOFTHSM_UTIL is None or MODULE is None,
                                reason="SoftHSM2 (Debian softhsm2) is not installed")
PIN, SO_PIN, TOKEN = "472913", "86421357", "vidproof-test"
CAM = "cam1"


@dataclass(frozen=True)
class Hsm:
    dir: Path
    env: dict[str, str]  # SOFTHSM2_CONF: this test's own token directory
    secret: bytes  # the imported key's private scalar, never to be found anywhere
    secret_pkcs8: bytes  # and its PKCS#8 DER

    def uri(self, label: str, *, pin_file: Path | None = None) -> str:
        query = f"module-path={MODULE}"
        if pin_file is not None:
            query += f"&pin-source=file:{pin_file}"
        return f"pkcs11:token={TOKEN};object={label}?{query}"


def cli(*args: str | Path, env: dict[str, str], cwd: Path | None = None) -> Run:
    proc = subprocess.run([sys.executable, "-m", "vidproof", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **env})
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Hsm:
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed")
    d = tmp_path_factory.mktemp("hsm")
    (d / "tokens").mkdir()
    (d / "softhsm2.conf").write_text(f"directories.tokendir = {d / 'tokens'}\n"
                                     "objectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(d / "softhsm2.conf")}
    run = {**os.environ, **env}
    subprocess.run([SOFTHSM_UTIL, "--init-token", "--free", "--label", TOKEN, "--so-pin",
                    SO_PIN, "--pin", PIN], check=True, capture_output=True, env=run)
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(serialization.Encoding.DER,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    pem = d / "import.pem"
    pem.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    subprocess.run([SOFTHSM_UTIL, "--import", str(pem), "--token", TOKEN, "--label",
                    "imported", "--id", "a1", "--pin", PIN], check=True, capture_output=True,
                   env=run)
    pem.unlink()  # from now on the key exists only inside the token
    secret = private.private_numbers().private_value.to_bytes(32, "big")
    return Hsm(d, env, secret, pkcs8)


def _forms(secret: bytes) -> list[bytes]:
    """The ways a key's bytes could be written out: raw, hex, base64."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(),
            base64.b64encode(secret), base64.urlsafe_b64encode(secret).rstrip(b"=")]


def assert_no_key_material(hsm: Hsm, places: list[Path], outputs: list[str]) -> int:
    needles = _forms(hsm.secret) + _forms(hsm.secret_pkcs8)
    needles.append(base64.b64encode(hsm.secret_pkcs8)[16:80])  # any line of a PEM body
    needles += [b"PRIVATE KEY", PIN.encode()]
    files = [f for p in places for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    blobs = [(str(f), f.read_bytes()) for f in files]
    for f in files:  # and inside zip bundles
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as z:
                blobs += [(f"{f}!{n}", z.read(n)) for n in z.namelist()]
    blobs += [(f"output {i}", o.encode()) for i, o in enumerate(outputs)]
    for where, data in blobs:
        for needle in needles:
            if needle == b"PRIVATE KEY" and where.endswith("/ca.key"):
                continue  # the CA's own key is a PEM private key, of course
            assert needle not in data, f"key material {needle[:12]!r}… found in {where}"
    return len(blobs)


def test_token_key_records_exports_and_verifies(hsm: Hsm, tmp_path: Path) -> None:
    env = {**hsm.env, "VIDPROOF_KEY_PASSPHRASE": PIN}
    outputs: list[str] = []

    def run(*args: str | Path, env: dict[str, str] = env) -> Run:
        r = cli(*args, env=env)
        outputs.extend((r.out, r.err))
        return r

    assert run("ca", "init", "--out", tmp_path / "ca").code == 0
    uri = hsm.uri("imported")
    r = run("device", "enroll", "--ca", tmp_path / "ca", "--recorder-id", "rec-hsm",
            "--key", uri, "--out", tmp_path / "dev")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["device.pem", "device.pub"]
    store = tmp_path / "store"
    r = run("record", "--source", "testsrc:320x240@25", "--camera-id", CAM, "--location",
            LOCATION, "--key", uri, "--cert", tmp_path / "dev" / "device.pem", "--store",
            store, "--duration", "4", "--fast", "--segment-seconds", "2")
    assert r.code == 0, r.err
    log = [json.loads(x) for x in (store / CAM / "evidence.jsonl").read_bytes().splitlines()]
    cps = [e for e in log if e["type"] == "checkpoint"]
    assert len(cps) >= 3 and {c["alg"] for c in cps} == {"ECDSA-P256-SHA256"}
    assert json.loads((store / "recorder.json").read_text())["key"] == uri  # a URI, no PIN
    frames = [e["utc_ns"] for e in log if e["type"] == "frame"]
    from datetime import UTC, datetime

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # Export signs with the token key named in recorder.json; the PIN from a file this time.
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    r = run("export", "--store", store, "--camera", CAM, "--from", iso(frames[0]), "--to",
            iso(frames[-1]), "--out", tmp_path / "bundle.zip", "--case", "C-7", "--officer",
            "A. Officer", "--key-passphrase-file", pin_file, env=hsm.env)
    assert r.code == 0, r.err
    assert "verification at export: authentic" in r.out
    for path in (store, tmp_path / "bundle.zip"):
        r = run("verify", path, "--trust", tmp_path / "ca" / "ca.pem", "--json", env=hsm.env)
        assert r.code == 0, r.out
        (key,) = json.loads(r.out)["cameras"][0]["keys"]
        assert key["certificate"]["recorder_id"] == "rec-hsm"
        assert key["alg"] == "ECDSA-P256-SHA256"
    # The private key is nowhere: not in the store, the bundle, the CA or device
    # directories, nor in anything the commands printed.
    checked = assert_no_key_material(hsm, [store, tmp_path / "bundle.zip", tmp_path / "dev",
                                           tmp_path / "ca"], outputs)
    assert checked > 10


def test_key_made_in_the_token_is_not_extractable(hsm: Hsm, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN)
    uri = hsm.uri("made-here", pin_file=pin_file)
    assert cli("ca", "init", "--out", tmp_path / "ca", env=hsm.env).code == 0
    r = cli("device", "enroll", "--ca", tmp_path / "ca", "--recorder-id", "rec-made",
            "--key", uri, "--out", tmp_path / "dev", env=hsm.env)
    assert r.code == 0, r.err
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    monkeypatch.setenv("SOFTHSM2_CONF", hsm.env["SOFTHSM2_CONF"])
    lib = pkcs11.lib(MODULE)
    with lib.get_token(token_label=TOKEN).open(user_pin=PIN) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="made-here")
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
        assert key[Attribute.TOKEN]
    store = tmp_path / "store"
    r = cli("record", "--source", "testsrc:320x240@25", "--camera-id", CAM, "--location",
            LOCATION, "--key", uri, "--cert", tmp_path / "dev" / "device.pem", "--store",
            store, "--duration", "2", "--fast", env=hsm.env)
    assert r.code == 0, r.err
    r = cli("verify", store, "--trust", tmp_path / "ca" / "ca.pem", env=hsm.env)
    assert r.code == 0, r.out
    # A wrong PIN, or none, is one line and exit 2; nothing is recorded.
    bad = tmp_path / "bad-pin"
    bad.write_text("000000")
    for key_uri in (hsm.uri("made-here", pin_file=bad), hsm.uri("made-here")):
        r = cli("record", "--source", "testsrc:320x240@25", "--camera-id", "cam2",
                "--location", LOCATION, "--key", key_uri, "--store", store, "--duration", "1",
                "--fast", env=hsm.env)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
        assert "PIN" in r.err
    assert not (store / "cam2").exists()
