"""Device keys and trust: algorithms, encrypted keys, certificates validated as of the
signing time, revocation with dates, and key rotation, against the pure verifier core.

Chains are written by the real signing side (chain.Chain + store.EvidenceWriter) with
fixed times (2024-01-01, one frame every 40 ms) and certificates made here with
explicit validity windows; the core checks them with no media (steps 1-4).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from vidproof.canonical import canonical_bytes, entry_hash
from vidproof.chain import Chain, last_signing_key
from vidproof.errors import KeyFormatError, UsageError
from vidproof.keys import Signer, TrustedKey, load_signer, write_private_key
from vidproof.store import EVIDENCE, EvidenceWriter, recover
from vidproof.trust.certs import cert_pem
from vidproof.trust.crl import crl_pem
from vidproof.trust.keytypes import ECDSA_P256, ED25519, key_id, verify_signature
from vidproof.trust.pkcs11 import parse_uri
from vidproof.trust.policy import CAPolicy, load_policy, material_from_json
from vidproof.verify.core import ERROR, INFO, WARNING, Finding, ParsedLine, inspect_camera

CAMERA = "cam1"
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
FRAME_NS = 40_000_000
START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


# --- certificates made here, with explicit validity windows ---------------------------------

def make_ca(name: str = "Test CA", *, nb: datetime = START - 365 * DAY,
            na: datetime = START + 365 * DAY) -> tuple[Ed25519PrivateKey, x509.Certificate]:
    key = Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .sign(key, None))
    return key, cert


def issue(ca: tuple[Any, x509.Certificate], public: Any, cn: str, *,
          nb: datetime = START - DAY, na: datetime = START + DAY,
          is_ca: bool = False) -> x509.Certificate:
    ca_key, ca_cert = ca
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .sign(ca_key, None if isinstance(ca_key, Ed25519PrivateKey) else hashes.SHA256()))


def crl(ca: tuple[Any, x509.Certificate], revoked: Sequence[tuple[x509.Certificate, datetime]],
        *, invalid_from: datetime | None = None) -> x509.CertificateRevocationList:
    ca_key, ca_cert = ca
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
         .last_update(START + 10 * DAY).next_update(START + 20 * DAY))
    for cert, when in revoked:
        rb = x509.RevokedCertificateBuilder().serial_number(cert.serial_number) \
            .revocation_date(when)
        if invalid_from is not None:
            rb = rb.add_extension(x509.InvalidityDate(invalid_from.replace(tzinfo=None)),
                                  critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(ca_key, None)


def enrolled(ca: tuple[Any, x509.Certificate], cn: str = "rec-1", *, alg: str = ED25519,
             **window: datetime) -> Signer:
    private: Any = (Ed25519PrivateKey.generate() if alg == ED25519
                    else ec.generate_private_key(ec.SECP256R1()))
    cert = issue(ca, private.public_key(), cn, **window)
    return Signer(private, (cert_pem(cert), cert_pem(ca[1])))


# --- chains written as the recorder writes them ---------------------------------------------

def context(signer: Signer) -> dict[str, Any]:
    return {"camera_id": CAMERA, "location": {"label": "Gare", "lat": "48.8", "lon": "2.3"},
            "key": signer.key_json(), "mode": "passthrough"}


def write_run(cam_dir: Path, signer: Signer, frames: int = 75, *,
              rotate_to: Signer | None = None, rotate_at: int = 0) -> Path:
    """``frames`` frames at 25 fps (a GOP a second); ``rotate_to`` takes over at the
    keyframe ``rotate_at`` through Chain.rotate, as the capture worker does."""
    cam_dir.mkdir(parents=True, exist_ok=True)
    writer = EvidenceWriter(cam_dir / EVIDENCE)
    chain = Chain(CAMERA, signer, writer, recover(cam_dir), lambda: None)
    chain.context(context(signer), T0)
    chain.event("recorder_start", T0, {"previous_run": "none"})
    chain.checkpoint(T0)
    for i in range(frames):
        utc = T0 + i * FRAME_NS
        key = i % 25 == 0
        if key and rotate_to is not None and i == rotate_at:
            chain.rotate(rotate_to, utc, "test")
        if chain.due(utc, key):
            chain.checkpoint(utc)
        chain.frame(utc_ns=utc, pts=i * 3600, dts=i * 3600, tb=(1, 90000), key=key,
                    digest=hashlib.sha256(b"%d" % i).hexdigest(), params="11" * 32,
                    cam_utc_ns=None)
    end = T0 + frames * FRAME_NS
    chain.event("recorder_stop", end, {"reason": "test", "frames": frames})
    chain.checkpoint(end)
    writer.close()
    return cam_dir / EVIDENCE


def parse(log: Path) -> list[ParsedLine]:
    return [ParsedLine(n, json.loads(line))
            for n, line in enumerate(log.read_bytes().splitlines(), start=1)]


def check(log: Path | list[ParsedLine], policy: Any) -> tuple[Any, list[Finding]]:
    lines = parse(log) if isinstance(log, Path) else log
    return inspect_camera(CAMERA, lines, None, [], policy)


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in (ERROR, WARNING)]


def kinds(findings: list[Finding]) -> set[str]:
    return {f.kind for f in blocking(findings)}


# --- algorithms and key files ---------------------------------------------------------------

def test_ecdsa_signatures_are_r_s_and_key_ids_hash_the_point() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    signer = Signer(private)
    point = private.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    assert signer.alg == ECDSA_P256 and len(point) == 65
    assert signer.key_id == hashlib.sha256(point).hexdigest()
    sig = signer.sign(b"checkpoint")
    assert len(sig) == 64
    assert verify_signature(signer.public, ECDSA_P256, sig, b"checkpoint")
    assert not verify_signature(signer.public, ECDSA_P256, sig, b"checkpoinT")
    # The algorithm is the key's: never a fallback to another.
    assert not verify_signature(signer.public, ED25519, sig, b"checkpoint")
    ed = Signer(Ed25519PrivateKey.generate())
    assert not verify_signature(ed.public, ECDSA_P256, ed.sign(b"x"), b"x")
    assert TrustedKey(signer.public).verify(sig, b"checkpoint")


def test_encrypted_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDPROOF_KEY_PASSPHRASE", raising=False)
    private = Ed25519PrivateKey.generate()
    path = tmp_path / "device.key"
    write_private_key(path, private, b"correct horse")
    assert os.stat(path).st_mode & 0o777 == 0o600
    data = path.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in data
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    assert raw not in data
    with pytest.raises(KeyFormatError, match="passphrase"):
        load_signer(path)
    with pytest.raises(KeyFormatError, match="wrong passphrase"):
        load_signer(path, passphrase=b"wrong")
    want = key_id(private.public_key())
    assert load_signer(path, passphrase=b"correct horse").key_id == want
    monkeypatch.setenv("VIDPROOF_KEY_PASSPHRASE", "correct horse")
    assert load_signer(path).key_id == want
    with pytest.raises(UsageError, match="already exists"):
        write_private_key(path, private)


def test_certificate_must_be_the_keys(tmp_path: Path) -> None:
    ca = make_ca()
    private = Ed25519PrivateKey.generate()
    (tmp_path / "k").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    other = issue(ca, Ed25519PrivateKey.generate().public_key(), "rec-1")
    (tmp_path / "other.pem").write_text(cert_pem(other))
    with pytest.raises(KeyFormatError, match="another key"):
        load_signer(tmp_path / "k", cert=tmp_path / "other.pem")
    mine = issue(ca, private.public_key(), "rec-1")
    (tmp_path / "mine.pem").write_text(cert_pem(mine) + cert_pem(ca[1]))
    assert len(load_signer(tmp_path / "k", cert=tmp_path / "mine.pem").certs) == 2


def test_pkcs11_uri() -> None:
    uri = parse_uri("pkcs11:token=Vid%20Proof;object=cam1;id=%01%02"
                    "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin")
    assert (uri.token, uri.label, uri.key_id) == ("Vid Proof", "cam1", b"\x01\x02")
    assert uri.module == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.pin_source == "file:/run/pin"
    assert "pin" not in uri.describe()
    with pytest.raises(UsageError, match="pin-value"):
        parse_uri("pkcs11:token=t;object=o?pin-value=1234")
    with pytest.raises(UsageError, match="object"):
        parse_uri("pkcs11:token=t")
    with pytest.raises(UsageError, match="token"):
        parse_uri("pkcs11:object=o")


# --- certificates, as of the signing time ---------------------------------------------------

@pytest.mark.parametrize("alg", [ED25519, ECDSA_P256])
def test_enrolled_recording_verifies_with_the_ca(tmp_path: Path, alg: str) -> None:
    ca = make_ca()
    signer = enrolled(ca, alg=alg)
    log = write_run(tmp_path / CAMERA, signer)
    rep, findings = check(log, CAPolicy([ca[1]]))
    assert blocking(findings) == []
    assert rep.checkpoints > 3
    (k,) = rep.keys
    assert k["id"] == signer.key_id and k["certificate"]["recorder_id"] == "rec-1"
    # The bare key still works as it always did.
    _, findings = check(log, TrustedKey(signer.public))
    assert blocking(findings) == []


@pytest.mark.parametrize("case,kind", [
    ("other_ca", "untrusted_certificate"),
    ("expired", "certificate_expired"),
    ("not_yet_valid", "certificate_not_yet_valid"),
    ("ca_expired", "certificate_expired"),
    ("no_certificate", "untrusted_key"),
    ("ca_as_device", "untrusted_certificate"),
])
def test_certificate_problems_at_recording_time(tmp_path: Path, case: str, kind: str) -> None:
    ca = make_ca()
    trusted = ca[1]
    if case == "other_ca":
        signer = enrolled(make_ca("Other CA"))
    elif case == "expired":  # valid in 2023 only: expired when the footage was signed
        signer = enrolled(ca, nb=START - 365 * DAY, na=START - DAY)
    elif case == "not_yet_valid":  # issued for later: not valid when it was signed
        signer = enrolled(ca, nb=START + DAY, na=START + 30 * DAY)
    elif case == "ca_expired":
        ca = make_ca(nb=START - 365 * DAY, na=START - DAY)
        trusted, signer = ca[1], enrolled(ca)
    elif case == "no_certificate":
        signer = Signer(Ed25519PrivateKey.generate())
    else:
        private = Ed25519PrivateKey.generate()
        signer = Signer(private, (cert_pem(issue(ca, private.public_key(), "x", is_ca=True)),))
    log = write_run(tmp_path / CAMERA, signer)
    rep, findings = check(log, CAPolicy([trusted]))
    assert kinds(findings) == {kind}, findings
    (f,) = [f for f in findings if f.kind == kind]  # one finding over the whole chain
    assert (f.first_frame, f.last_frame) == (0, rep.key_ring.used[signer.key_id].last)
    assert rep.checkpoints == 0


def test_the_time_that_counts_is_the_signing_time_not_today(tmp_path: Path) -> None:
    """Footage signed while the certificate was valid stays valid after it expired: the
    certificate's window here is 2023-12-31..2024-01-02, long past."""
    ca = make_ca()
    signer = enrolled(ca)
    _, findings = check(write_run(tmp_path / CAMERA, signer), CAPolicy([ca[1]]))
    assert blocking(findings) == []


def test_certificate_window_ending_mid_recording(tmp_path: Path) -> None:
    ca = make_ca()
    signer = enrolled(ca, nb=START - DAY, na=START + timedelta(seconds=1))
    rep, findings = check(write_run(tmp_path / CAMERA, signer), CAPolicy([ca[1]]))
    (f,) = blocking(findings)
    assert f.kind == "certificate_expired"
    assert f.first_utc_ns is not None and f.first_utc_ns > T0  # the start stays valid
    assert 0 < rep.signed_frames < rep.frames


def test_revocation_dates(tmp_path: Path) -> None:
    """Revoked from D: what was signed before D stays valid, what was signed after is
    flagged. The invalidity date, when earlier than the revocation date, is D."""
    ca = make_ca()
    signer = enrolled(ca)
    log = write_run(tmp_path / CAMERA, signer)
    leaf = x509.load_pem_x509_certificate(signer.certs[0].encode())
    before = CAPolicy([ca[1]], [crl(ca, [(leaf, START - DAY)])])
    rep, findings = check(log, before)
    assert kinds(findings) == {"key_revoked"} and rep.checkpoints == 0
    after = CAPolicy([ca[1]], [crl(ca, [(leaf, START + DAY)])])
    _, findings = check(log, after)
    assert blocking(findings) == []
    mid = START + timedelta(seconds=2)  # the key was compromised 2 s into the recording
    compromised = CAPolicy([ca[1]], [crl(ca, [(leaf, START + DAY)], invalid_from=mid)])
    rep, findings = check(log, compromised)
    (f,) = blocking(findings)
    assert f.kind == "key_revoked" and "revoked from 2024-01-01T00:00:02Z" in f.message
    assert f.last_utc_ns is not None and f.last_utc_ns >= T0 + 2 * 10**9
    assert rep.signed_frames == 25  # the first second, signed at 1.0 s, stays valid
    cps = [json.loads(line) for line in log.read_bytes().splitlines()
           if b'"type":"checkpoint"' in line]
    assert rep.checkpoints == sum(c["utc_ns"] < T0 + 2 * 10**9 for c in cps) == 2
    # A CRL that another CA signed revokes nothing here.
    other = make_ca("Other CA")
    forged = crl((other[0], ca[1]), [(leaf, START - DAY)])  # ca's name, other's key
    _, findings = check(log, CAPolicy([ca[1]], [forged]))
    assert blocking(findings) == []


def test_crl_of_another_ca_is_refused_on_the_command_line(tmp_path: Path) -> None:
    ca, other = make_ca(), make_ca("Other CA")
    (tmp_path / "ca.pem").write_text(cert_pem(ca[1]))
    (tmp_path / "crl.pem").write_text(crl_pem(crl(other, [])))
    with pytest.raises(UsageError, match="not a CRL signed by the trusted CA"):
        load_policy(tmp_path / "ca.pem", [tmp_path / "crl.pem"])
    (tmp_path / "own.pem").write_text(crl_pem(crl(ca, [])))
    assert isinstance(load_policy(tmp_path / "ca.pem", [tmp_path / "own.pem"]), CAPolicy)
    (tmp_path / "dev.pub").write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(UsageError, match="CA certificate"):
        load_policy(tmp_path / "dev.pub", [tmp_path / "own.pem"])


def test_intermediate_ca(tmp_path: Path) -> None:
    root = make_ca("Root")
    inter_key = Ed25519PrivateKey.generate()
    inter = issue(root, inter_key.public_key(), "Intermediate", is_ca=True,
                  nb=START - 30 * DAY, na=START + 30 * DAY)
    private = Ed25519PrivateKey.generate()
    leaf = issue((inter_key, inter), private.public_key(), "rec-9")
    signer = Signer(private, (cert_pem(leaf), cert_pem(inter)))
    log = write_run(tmp_path / CAMERA, signer)
    _, findings = check(log, CAPolicy([root[1]]))
    assert blocking(findings) == []
    # Without the intermediate the path does not reach the root.
    bare_leaf = Signer(private, (cert_pem(leaf),))
    _, findings = check(write_run(tmp_path / "b" / CAMERA, bare_leaf), CAPolicy([root[1]]))
    assert kinds(findings) == {"untrusted_certificate"}


def test_carried_material_must_be_the_keys() -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ca = make_ca()
    mat = material_from_json({"id": key_id(a.public_key()), "alg": ED25519,
                              "certs": [cert_pem(issue(ca, b.public_key(), "x"))]})
    assert mat is not None and mat.problem is not None and "another key" in mat.problem
    assert CAPolicy([ca[1]]).judge(mat.key_id, mat, T0, False).kind == "untrusted_certificate"


# --- key rotation -------------------------------------------------------------------------

@pytest.mark.parametrize("alg", [ED25519, ECDSA_P256])
def test_rotation_mid_recording_verifies(tmp_path: Path, alg: str) -> None:
    ca = make_ca()
    old, new = enrolled(ca), enrolled(ca, alg=alg)
    log = write_run(tmp_path / CAMERA, old, rotate_to=new, rotate_at=50)
    entries = [json.loads(line) for line in log.read_bytes().splitlines()]
    (rot,) = [e for e in entries if e.get("event") == "key_rotation"]
    assert rot["detail"]["key"]["id"] == new.key_id
    assert rot["detail"]["previous_key"] == old.key_id
    after = [e for e in entries if e["type"] == "checkpoint" and e["seq"] > rot["seq"]]
    before = [e for e in entries if e["type"] == "checkpoint" and e["seq"] <= rot["seq"]]
    assert {c["key"] for c in before} == {old.key_id}
    assert {c["key"] for c in after} == {new.key_id}
    # The old key signs the event itself: its checkpoint's head is the event.
    assert any(c["head"] == entry_hash(rot) and c["key"] == old.key_id for c in before)
    for policy in (CAPolicy([ca[1]]), TrustedKey(old.public)):
        rep, findings = check(log, policy)
        assert blocking(findings) == [], findings
        assert [f.kind for f in findings if f.severity == INFO] == ["key_rotation"]
        assert rep.signed_frames == rep.frames == 75
        assert {k["id"] for k in rep.keys} == {old.key_id, new.key_id}
    # Trusting only the new key, the checkpoints of the old one are not trusted (the new
    # key's later checkpoints do commit to them, after the fact).
    rep, findings = check(log, TrustedKey(new.public))
    assert kinds(findings) == {"untrusted_key"}
    (f,) = blocking(findings)
    assert (f.first_frame, f.last_frame) == (0, rot["seq"])


def _append_signed(log: Path, signer: Signer, entries: list[dict[str, Any]]) -> None:
    """An attacker appends chain entries and signs them with ``signer`` (correctly
    chained and checkpointed: only the key is wrong)."""
    lines = [json.loads(line) for line in log.read_bytes().splitlines()]
    chain_entries = [e for e in lines if e["type"] != "checkpoint"]
    cps = [e for e in lines if e["type"] == "checkpoint"]
    head, seq = entry_hash(chain_entries[-1]), chain_entries[-1]["seq"] + 1
    ctx = next(entry_hash(e) for e in reversed(chain_entries) if e["type"] == "context")
    out = []
    for e in entries:
        e = {"v": "vidproof/1", "camera": CAMERA, "seq": seq, "prev": head, **e}
        if e["type"] == "context":
            ctx = entry_hash(e)
        elif "ctx" not in e:
            e["ctx"] = ctx
        head, seq = entry_hash(e), seq + 1
        out.append(e)
        cp = {"v": "vidproof/1", "type": "checkpoint", "camera": CAMERA, "seq": e["seq"],
              "head": head, "prev_checkpoint": entry_hash(cps[-1]), "utc_ns": e["utc_ns"],
              "key": signer.key_id, "alg": signer.alg}
        cp["sig"] = signer.sign(canonical_bytes(cp)).hex()
        cps.append(cp)
        out.append(cp)
    with open(log, "ab") as f:
        for e in out:
            f.write(canonical_bytes(e) + b"\n")


def test_forged_rotation_is_detected(tmp_path: Path) -> None:
    """A key_rotation naming the attacker's key, signed by the attacker's key instead
    of the old one: even with a certificate from the same CA, it introduces nothing."""
    ca = make_ca()
    old, attacker = enrolled(ca), enrolled(ca, "rec-2")
    log = write_run(tmp_path / CAMERA, old)
    end = T0 + 10 * 10**9
    _append_signed(log, attacker, [
        {"type": "event", "utc_ns": end, "event": "key_rotation",
         "detail": {"key": attacker.material_json(), "previous_key": old.key_id}},
        {"type": "context", "utc_ns": end, "context": context(attacker)},
        {"type": "event", "utc_ns": end, "event": "recorder_stop", "detail": {}},
    ])
    for policy in (CAPolicy([ca[1]]), TrustedKey(old.public)):
        rep, findings = check(log, policy)
        assert kinds(findings) == {"key_not_introduced"}, findings
        assert "not signed by the old key" in blocking(findings)[0].message
        assert not [f for f in findings if f.kind == "key_rotation"]


def test_entries_appended_with_another_certified_key(tmp_path: Path) -> None:
    ca = make_ca()
    old, other = enrolled(ca), enrolled(ca, "rec-2")
    log = write_run(tmp_path / CAMERA, old)
    good = len(parse(log))
    _append_signed(log, other, [
        {"type": "context", "utc_ns": T0 + 5 * 10**9, "context": context(other)},
        {"type": "event", "utc_ns": T0 + 5 * 10**9, "event": "recorder_start",
         "detail": {"previous_run": "clean"}},
    ])
    rep, findings = check(log, CAPolicy([ca[1]]))
    assert kinds(findings) == {"key_not_introduced"}
    (f,) = blocking(findings)
    assert f.first_frame is not None and f.first_frame > rep.frames
    assert "not the key in force" in f.message
    # With the bare key, the other key is simply not trusted.
    _, findings = check(log, TrustedKey(old.public))
    assert kinds(findings) == {"untrusted_key"}
    assert len(parse(log)) == good + 4


def test_rotation_event_edited_to_name_another_key(tmp_path: Path) -> None:
    ca = make_ca()
    old, new, attacker = enrolled(ca), enrolled(ca), enrolled(ca, "rec-2")
    log = write_run(tmp_path / CAMERA, old, rotate_to=new, rotate_at=25)
    lines = parse(log)
    for pl in lines:
        if pl.value.get("event") == "key_rotation":
            pl.value["detail"]["key"] = attacker.material_json()
    _, findings = check(lines, CAPolicy([ca[1]]))
    assert {"record_modified", "checkpoint_mismatch"} & kinds(findings)


def test_last_signing_key(tmp_path: Path) -> None:
    assert last_signing_key(tmp_path / CAMERA) is None
    ca = make_ca()
    old, new = enrolled(ca), enrolled(ca)
    write_run(tmp_path / CAMERA, old, frames=30, rotate_to=new, rotate_at=25)
    assert last_signing_key(tmp_path / CAMERA) == new.key_id
    with open(tmp_path / CAMERA / EVIDENCE, "ab") as f:
        f.write(b'{"type":"checkpoint","key":"cut sh')  # a torn last line is skipped
    assert last_signing_key(tmp_path / CAMERA) == new.key_id


def test_a_rotation_cut_short_is_continued_with_the_new_key(tmp_path: Path) -> None:
    """A crash right after the old key signed the rotation: the next run must sign with
    the new key (the one the rotation introduced), and the chain verifies."""
    ca = make_ca()
    old, new = enrolled(ca), enrolled(ca)
    cam_dir = tmp_path / CAMERA
    write_run(cam_dir, old, frames=30)
    writer = EvidenceWriter(cam_dir / EVIDENCE)
    chain = Chain(CAMERA, old, writer, recover(cam_dir), lambda: None)
    chain.context(context(old), T0 + 2 * 10**9)
    chain.checkpoint(T0 + 2 * 10**9)
    chain.event("key_rotation", T0 + 2 * 10**9, {
        "key": new.material_json(), "previous_key": old.key_id, "reason": "test"})
    chain.checkpoint(T0 + 2 * 10**9)  # ... and the recorder dies here
    writer.close()
    assert last_signing_key(cam_dir) == new.key_id
    log = write_run(cam_dir, new, frames=30)
    _, findings = check(log, CAPolicy([ca[1]]))
    assert blocking(findings) == [], findings
    _, findings = check(log, TrustedKey(old.public))
    assert blocking(findings) == [], findings


def _clip_after_rotation(log: Path) -> tuple[list[ParsedLine], list[Any]]:
    """A clip cut as the exporter cuts it, starting after the rotation: its anchor is the
    new key's first checkpoint; the rotation itself is only in the carried pairs."""
    entries = [json.loads(line) for line in log.read_bytes().splitlines()]
    rot = next(e for e in entries if e.get("event") == "key_rotation")
    cps = [e for e in entries if e["type"] == "checkpoint"]
    anchor = next(c for c in cps if c["seq"] > rot["seq"])
    ctx = next(e for e in entries if e["type"] == "context" and e["seq"] > rot["seq"])
    chain = [e for e in entries if e["type"] != "checkpoint" and e["seq"] > anchor["seq"]]
    lines = [ParsedLine(i + 1, e) for i, e in enumerate(
        chain + [c for c in cps if c["seq"] > anchor["seq"]])]
    proof = [rot, next(c for c in cps if c["head"] == entry_hash(rot))]
    return lines, [anchor, ctx, proof]


def test_clip_after_a_rotation_carries_it(tmp_path: Path) -> None:
    from vidproof.verify.core import Anchor

    old, new = Signer(Ed25519PrivateKey.generate()), Signer(Ed25519PrivateKey.generate())
    log = write_run(tmp_path / CAMERA, old, rotate_to=new, rotate_at=25)
    lines, (anchor, ctx, proof) = _clip_after_rotation(log)

    def clip(rotations: list[Any], trust: Any) -> list[Finding]:
        a = Anchor(anchor, (ctx,), (new.material_json(),), tuple(rotations))
        return inspect_camera(CAMERA, lines, None, [], trust, None, a)[1]

    # The device's original key verifies the clip through the carried rotation.
    findings = clip([proof], TrustedKey(old.public))
    assert blocking(findings) == [] and "key_rotation" in {f.kind for f in findings}
    assert blocking(clip([proof], TrustedKey(new.public))) == []
    assert kinds(clip([], TrustedKey(old.public))) == {"untrusted_key"}
    # A carried rotation altered (its checkpoint no longer the old key's signature).
    bad = json.loads(json.dumps(proof))
    bad[1]["sig"] = ("0" if bad[1]["sig"][0] != "0" else "1") + bad[1]["sig"][1:]
    assert "key_not_introduced" in kinds(clip([bad], TrustedKey(old.public)))
    # A carried rotation naming the new key, made and signed by the new key itself.
    forged = json.loads(json.dumps(proof))
    forged[1]["key"], forged[1]["alg"] = new.key_id, new.alg
    body = {k: v for k, v in forged[1].items() if k != "sig"}
    forged[1]["sig"] = new.sign(canonical_bytes(body)).hex()
    findings = clip([forged], TrustedKey(old.public))
    assert "key_not_introduced" in kinds(findings)
    assert any("not by the old key" in f.message for f in findings)
