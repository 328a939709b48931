"""The operator's certificate authority: ``vidproof ca init|revoke|crl`` and
``vidproof device enroll``.

A CA directory holds ``ca.pem`` (the CA certificate: the trust anchor handed to whoever
verifies, ``--trust ca.pem``), ``ca.key`` (its private key, mode 0600, encrypted when a
passphrase is given), ``issued/<serial>.pem`` (every device certificate issued) and
``revoked.json`` (the revocations, from which ``ca crl`` makes a signed CRL).

Device certificates: subject CN = the recorder id, basicConstraints cA=FALSE and
keyUsage digitalSignature + nonRepudiation (critical), for an Ed25519 or ECDSA P-256
key. ``device.pem`` is the device certificate followed by the CA certificate.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from ..errors import UsageError
from .certs import cert_pem, load_pem_certificates, name_text
from .crl import crl_pem, dt_ns, iso, ns_dt
from .keytypes import ED25519, PublicKey, public_pem

CA_PEM, CA_KEY, REVOKED, ISSUED = "ca.pem", "ca.key", "revoked.json", "issued"
CA_PASSPHRASE_ENV = "VIDPROOF_CA_PASSPHRASE"
REASONS = {r.value: r for r in x509.ReasonFlags  # RFC 5280 names: keyCompromise, superseded…
           if r not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)}

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()


def _ski(public: PublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public)


def init_ca(out: Path, now_ns: int, *, name: str = "vidproof operator CA",
            alg: str = ED25519, days: int = 3650,
            passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Make a CA in ``out``: ``ca.pem`` and ``ca.key`` (refuses to overwrite)."""
    from ..keys import new_private_key, write_private_key

    out.mkdir(parents=True, exist_ok=True)
    pem_path, key_path = out / CA_PEM, out / CA_KEY
    for path in (pem_path, key_path):
        if path.exists():
            raise UsageError(f"{path} already exists: refusing to overwrite a CA")
    key = new_private_key(alg)
    public = key.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = ns_dt(now_ns).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(_ski(public), critical=False)
        .sign(key, _hash_for(key))
    )
    write_private_key(key_path, key, passphrase)
    pem_path.write_text(cert_pem(cert))
    (out / ISSUED).mkdir(exist_ok=True)
    return pem_path, key_path


@dataclass(frozen=True)
class CA:
    directory: Path
    cert: x509.Certificate
    key: PrivateKey


def open_ca(directory: Path, passphrase: bytes | None = None) -> CA:
    from ..keys import _read, load_private_key, passphrase_from

    pem = directory / CA_PEM
    if not pem.is_file() or not (directory / CA_KEY).is_file():
        raise UsageError(f"{directory} is not a CA directory: expected {CA_PEM} and {CA_KEY} "
                         "(made by 'vidproof ca init')")
    cert = load_pem_certificates(_read(pem, "CA certificate"), str(pem))[0]
    if passphrase is None:
        passphrase = passphrase_from(None, CA_PASSPHRASE_ENV)
    key = load_private_key(directory / CA_KEY, passphrase)
    if public_pem(key.public_key()) != public_pem(cert.public_key()):  # type: ignore[arg-type]
        raise UsageError(f"{directory}: {CA_KEY} is not the key of {CA_PEM}")
    return CA(directory, cert, key)


def issue_device_cert(ca: CA, public: PublicKey, recorder_id: str, not_before_ns: int,
                      not_after_ns: int) -> x509.Certificate:
    """A device certificate for ``public``, valid over the given window."""
    if not recorder_id or len(recorder_id) > 64:
        raise UsageError("--recorder-id must be 1 to 64 characters")
    if not_after_ns <= not_before_ns:
        raise UsageError("the certificate would end before it starts")
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
        ca.cert.public_key())  # type: ignore[arg-type]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, recorder_id)]))
        .issuer_name(ca.cert.subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(ns_dt(not_before_ns).replace(microsecond=0))
        .not_valid_after(ns_dt(not_after_ns).replace(microsecond=0))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(_ski(public), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca.key, _hash_for(ca.key))
    )
    issued = ca.directory / ISSUED
    issued.mkdir(exist_ok=True)
    (issued / f"{cert.serial_number:x}.pem").write_text(cert_pem(cert))
    return cert


def enroll(ca: CA, recorder_id: str, out: Path, now_ns: int, *, alg: str = ED25519,
           days: int = 825, not_before_ns: int | None = None, not_after_ns: int | None = None,
           passphrase: bytes | None = None, token_uri: str | None = None,
           token_secret: bytes | None = None) -> tuple[Path | None, Path]:
    """Make a device key (in ``out/device.key``, or in a token) and its certificate chain
    ``out/device.pem`` (device certificate, then the CA certificate)."""
    from ..keys import new_private_key, write_private_key

    out.mkdir(parents=True, exist_ok=True)
    key_path, pem_path = out / "device.key", out / "device.pem"
    for path in (pem_path, *(() if token_uri else (key_path,))):
        if path.exists():
            raise UsageError(f"{path} already exists: refusing to overwrite")
    start = now_ns - 300 * 10**9 if not_before_ns is None else not_before_ns
    end = now_ns + days * 86_400 * 10**9 if not_after_ns is None else not_after_ns
    private: PrivateKey | None = None
    if token_uri is not None:
        from .pkcs11 import token_key_for_enrollment

        public = token_key_for_enrollment(token_uri, token_secret, alg)[0].public_key()
    else:
        private = new_private_key(alg)
        pub = private.public_key()
        assert isinstance(pub, PublicKey)
        public = pub
    cert = issue_device_cert(ca, public, recorder_id, start, end)
    if private is not None:
        write_private_key(key_path, private, passphrase)
    pem_path.write_text(cert_pem(cert) + cert_pem(ca.cert))
    (out / "device.pub").write_text(public_pem(public))
    return (None if token_uri else key_path), pem_path


def _revocations(ca_dir: Path) -> list[dict[str, Any]]:
    path = ca_dir / REVOKED
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is damaged ({exc})") from None
    if not isinstance(data, list):
        raise UsageError(f"{path} is damaged (not a list)")
    return data


def revoke(ca: CA, cert_path: Path, now_ns: int, *, date_ns: int | None = None,
           reason: str = "keyCompromise") -> dict[str, Any]:
    """Record the revocation of a device certificate issued by this CA. ``date_ns``: from
    when the key is not to be trusted (the CRL's invalidityDate; default now)."""
    from ..keys import _read

    cert = load_pem_certificates(_read(cert_path, "certificate"), str(cert_path))[0]
    try:
        cert.verify_directly_issued_by(ca.cert)
    except Exception:  # noqa: BLE001 - any failure means: not ours
        raise UsageError(f"{cert_path} was not issued by this CA "
                         f"('{name_text(ca.cert.subject)}')") from None
    if reason not in REASONS:
        raise UsageError(f"unknown revocation reason {reason!r}; expected one of "
                         f"{', '.join(sorted(REASONS))}")
    entries = _revocations(ca.directory)
    serial = format(cert.serial_number, "x")
    if any(e.get("serial") == serial for e in entries):
        raise UsageError(f"certificate serial {serial} is already revoked")
    entry = {"serial": serial, "subject": name_text(cert.subject), "revoked": iso(now_ns),
             "invalid_from": iso(date_ns if date_ns is not None else now_ns),
             "reason": reason}
    entries.append(entry)
    tmp = ca.directory / (REVOKED + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, ca.directory / REVOKED)
    return entry


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_crl(ca: CA, out: Path, now_ns: int, days: int = 7) -> Path:
    """A CRL signed by the CA with every revocation: revocationDate (when the CA revoked)
    and invalidityDate (from when the key is not to be trusted)."""
    now = ns_dt(now_ns).replace(microsecond=0)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject).last_update(now)
               .next_update(now + timedelta(days=days)))
    for e in _revocations(ca.directory):
        try:
            revoked = _parse_iso(str(e["revoked"]))
            invalid = _parse_iso(str(e.get("invalid_from", e["revoked"])))
            serial = int(str(e["serial"]), 16)
        except (KeyError, ValueError) as exc:
            raise UsageError(f"{ca.directory / REVOKED} has a damaged entry ({exc})") from None
        rc = (x509.RevokedCertificateBuilder().serial_number(serial)
              .revocation_date(revoked)
              .add_extension(x509.InvalidityDate(invalid.replace(tzinfo=None)), critical=False)
              .add_extension(x509.CRLReason(REASONS.get(str(e.get("reason")),
                                                        x509.ReasonFlags.key_compromise)),
                             critical=False)
              .build())
        builder = builder.add_revoked_certificate(rc)
    crl = builder.sign(ca.key, _hash_for(ca.key))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(crl_pem(crl))
    return out


__all__ = ["CA", "enroll", "init_ca", "issue_device_cert", "make_crl", "open_ca", "revoke",
           "dt_ns"]
