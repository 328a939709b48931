"""X.509 device certificates: reading them, and validating a device key's certificate
path to a trusted CA *as of the time a signature was made*, not as of today.

The path is built once per key (which certificates, which issuer signed which, which
revocations apply); the time checks are then made for each signing time. A path is:
the device (leaf) certificate, any intermediate CA certificates carried with it, and a
trust anchor given to the verifier. Checked (docs/FORMAT.md section 12.2):

- every certificate is signed by the next one, and the names chain (issuer = subject);
- intermediates and the anchor are CA certificates (basicConstraints cA=TRUE); the leaf
  is not, and when it has keyUsage, digitalSignature is set;
- at the signing time, every certificate of the path, the anchor included, is within its
  validity window (``certificate_not_yet_valid`` / ``certificate_expired``);
- at the signing time, no certificate of the path is revoked by a CRL its issuer signed
  (``key_revoked``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature

from .._lazy import lazy_module
from ..errors import KeyFormatError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID
else:  # imported when a certificate is met (vidproof/_lazy.py)
    x509 = lazy_module("cryptography.x509")
    Encoding = lazy_module("cryptography.hazmat.primitives.serialization", "Encoding")
    NameOID = lazy_module("cryptography.x509.oid", "NameOID")
from .crl import Revocation, dt_ns, iso, revocations_by
from .keytypes import PublicKey, is_supported, key_id

MAX_CERTS = 8
MAX_CERT_PEM = 16 << 10
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def load_pem_certificates(data: bytes, what: str = "certificate file") -> list[x509.Certificate]:
    """Every PEM certificate in ``data``, in order (KeyFormatError when none or damaged)."""
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise KeyFormatError(f"{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if len(blocks) > MAX_CERTS:
        raise KeyFormatError(f"{what} holds {len(blocks)} certificates; at most {MAX_CERTS}")
    certs = []
    for block in blocks:
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise KeyFormatError(f"{what} holds a damaged certificate ({exc})") from None
    return certs


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def name_text(name: x509.Name) -> str:
    return name.rfc4514_string()


def common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else None
    return value if isinstance(value, str) else None


def cert_key_id(cert: x509.Certificate) -> str | None:
    """The key id of the certificate's public key, or None when vidproof cannot use it."""
    public = cert.public_key()
    if not is_supported(public):
        return None
    assert isinstance(public, PublicKey)
    return key_id(public)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class CertPath:
    """A device certificate's path to a trust anchor, built once, checked at any time."""

    certs: tuple[x509.Certificate, ...]  # leaf first, then intermediates
    anchor: x509.Certificate
    revocations: tuple[Revocation | None, ...]  # per certificate of ``certs``
    crl_known_ns: int | None  # the leaf issuer's latest CRL thisUpdate, if any

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0]

    def describe(self) -> dict[str, object]:
        leaf = self.leaf
        rev = self.revocations[0]
        return {
            "subject": name_text(leaf.subject), "recorder_id": common_name(leaf),
            "serial": format(leaf.serial_number, "x"), "issuer": name_text(leaf.issuer),
            "not_before": iso(dt_ns(leaf.not_valid_before_utc)),
            "not_after": iso(dt_ns(leaf.not_valid_after_utc)),
            "anchor": name_text(self.anchor.subject),
            "revoked_from": None if rev is None else iso(rev.at_ns),
            "revocation_known_until": (None if self.crl_known_ns is None
                                       else iso(self.crl_known_ns)),
        }


class PathError(Exception):
    """The certificates do not lead to a trust anchor (time-independent)."""


def build_path(certs: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate],
               crls: Sequence[x509.CertificateRevocationList]) -> CertPath:
    if not certs:
        raise PathError("no certificate")
    leaf = certs[0]
    if is_ca(leaf):
        raise PathError(f"the certificate of the signing key ({name_text(leaf.subject)}) is a "
                        "CA certificate, not a device certificate")
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise PathError(f"the device certificate ({name_text(leaf.subject)}) does not allow "
                            "digital signatures (keyUsage)")
    except x509.ExtensionNotFound:
        pass
    path = [leaf]
    current = leaf
    anchor: x509.Certificate | None = None
    for _ in range(MAX_CERTS):
        anchor = next((a for a in anchors if current.issuer == a.subject
                       and _issued_by(current, a)), None)
        if anchor is not None:
            break
        nxt = next((c for c in certs[1:] if c not in path and c.subject == current.issuer
                    and is_ca(c) and _issued_by(current, c)), None)
        if nxt is None:
            trusted = ", ".join(f"'{name_text(a.subject)}'" for a in anchors)
            raise PathError(f"the certificate '{name_text(current.subject)}' (serial "
                            f"{current.serial_number:x}) is issued by "
                            f"'{name_text(current.issuer)}', which is not the trusted CA "
                            f"{trusted} nor certified by it")
        path.append(nxt)
        current = nxt
    if anchor is None:
        raise PathError("the certificate chain is too long")
    issuers = [*path[1:], anchor]
    revs: list[Revocation | None] = []
    known: int | None = None
    for i, (cert, issuer) in enumerate(zip(path, issuers, strict=True)):
        rev, k = revocations_by(issuer, crls, cert.serial_number)
        revs.append(rev)
        if i == 0:
            known = k
    return CertPath(tuple(path), anchor, tuple(revs), known)


@dataclass(frozen=True)
class TimeCheck:
    ok: bool
    kind: str = ""
    message: str = ""


def check_at(path: CertPath, at_ns: int) -> TimeCheck:
    """Is the path valid at ``at_ns``? The first problem found, leaf first."""
    when = iso(at_ns)
    for i, cert in enumerate([*path.certs, path.anchor]):
        role = ("device certificate" if i == 0 else
                "CA certificate" if i == len(path.certs) else "intermediate CA certificate")
        what = f"the {role} '{name_text(cert.subject)}' (serial {cert.serial_number:x})"
        nb, na = dt_ns(cert.not_valid_before_utc), dt_ns(cert.not_valid_after_utc)
        if at_ns < nb:
            return TimeCheck(False, "certificate_not_yet_valid",
                             f"{what} is valid only from {iso(nb)}, after the signing time "
                             f"{when}")
        if at_ns > na:
            return TimeCheck(False, "certificate_expired",
                             f"{what} expired on {iso(na)}, before the signing time {when}")
    for cert, rev in zip(path.certs, path.revocations, strict=True):
        if rev is not None and at_ns >= rev.at_ns:
            reason = f", reason {rev.reason}" if rev.reason else ""
            return TimeCheck(False, "key_revoked",
                             f"the certificate '{name_text(cert.subject)}' (serial "
                             f"{cert.serial_number:x}) is revoked from {iso(rev.at_ns)}"
                             f"{reason} (CRL of {iso(rev.crl_issued_ns)}); signing time "
                             f"{when} is after the revocation")
    return TimeCheck(True)
