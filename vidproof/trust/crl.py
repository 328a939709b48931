"""Certificate revocation lists: reading them, and the instant a revocation takes effect.

A CRL entry has a ``revocationDate`` and may have an ``invalidityDate`` extension (RFC
5280 section 5.3.2: the time the key is known or suspected to have been compromised,
which can be earlier). A key is treated as revoked from the earlier of the two: what it
signed before then stays valid, what it signed from then on is not trusted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .._lazy import lazy_module
from ..errors import KeyFormatError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.x509.oid import CRLEntryExtensionOID
else:  # imported when a CRL is met (vidproof/_lazy.py)
    x509 = lazy_module("cryptography.x509")
    CRLEntryExtensionOID = lazy_module("cryptography.x509.oid", "CRLEntryExtensionOID")

MAX_CRL_BYTES = 4 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)


def dt_ns(value: datetime) -> int:
    """A UTC datetime as integer nanoseconds since 1970 (exact, no float)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def ns_dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def iso(ns: int) -> str:
    return ns_dt(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_pem_crls(data: bytes, what: str = "CRL") -> list[x509.CertificateRevocationList]:
    """Every PEM CRL in ``data`` (KeyFormatError when there is none or one is damaged)."""
    if len(data) > MAX_CRL_BYTES:
        raise KeyFormatError(f"{what} is over {MAX_CRL_BYTES} bytes")
    blocks = _PEM_CRL.findall(data)
    if not blocks:
        raise KeyFormatError(f"{what} is not a PEM certificate revocation list "
                             "(-----BEGIN X509 CRL-----)")
    crls = []
    for block in blocks:
        try:
            crls.append(x509.load_pem_x509_crl(block))
        except ValueError as exc:
            raise KeyFormatError(f"{what} holds a damaged CRL ({exc})") from None
    return crls


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return crl.public_bytes(Encoding.PEM).decode("ascii")


@dataclass(frozen=True)
class Revocation:
    serial: int
    at_ns: int  # effective instant: min(revocationDate, invalidityDate)
    revoked_ns: int  # revocationDate
    reason: str | None
    crl_issued_ns: int  # thisUpdate of the CRL that says so


def revocation_of(entry: x509.RevokedCertificate, crl: x509.CertificateRevocationList
                  ) -> Revocation:
    revoked = dt_ns(entry.revocation_date_utc)
    at = revoked
    reason: str | None = None
    try:
        inv = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.INVALIDITY_DATE).value
        assert isinstance(inv, x509.InvalidityDate)
        at = min(at, dt_ns(inv.invalidity_date_utc))
    except x509.ExtensionNotFound:
        pass
    try:
        rc = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON).value
        assert isinstance(rc, x509.CRLReason)
        reason = rc.reason.value
    except x509.ExtensionNotFound:
        pass
    return Revocation(entry.serial_number, at, revoked, reason,
                      dt_ns(crl.last_update_utc))


def revocations_by(issuer: x509.Certificate, crls: Sequence[x509.CertificateRevocationList],
                   serial: int) -> tuple[Revocation | None, int | None]:
    """The earliest revocation of ``serial`` in the CRLs that ``issuer`` signed, and the
    latest thisUpdate among those CRLs (how far the revocation status is known)."""
    found: Revocation | None = None
    known: int | None = None
    for crl in crls:
        if crl.issuer != issuer.subject:
            continue
        try:
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
        except (TypeError, ValueError):
            continue
        issued = dt_ns(crl.last_update_utc)
        known = issued if known is None else max(known, issued)
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        if entry is not None:
            rev = revocation_of(entry, crl)
            if found is None or rev.at_ns < found.at_ns:
                found = rev
    return found, known
