"""Signature algorithms, key ids and public-key PEM: the definitions every other part uses.

Two algorithms (docs/FORMAT.md section 5):

- ``Ed25519``: RFC 8032 pure Ed25519; the signature is 64 bytes.
- ``ECDSA-P256-SHA256``: ECDSA over NIST P-256 with SHA-256 (FIPS 186-4), for keys in
  hardware tokens that do not do Ed25519; the signature is ``r || s``, each 32 bytes
  big-endian (64 bytes, as PKCS#11 ``CKM_ECDSA`` returns it), not DER.

Key id = SHA-256 (hex) of the raw public key: the 32 bytes of an Ed25519 key, the
65-byte uncompressed point ``04 || X || Y`` of a P-256 key.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .._lazy import lazy_module
from ..errors import KeyFormatError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import serialization
else:  # about as long to import as the rest of cryptography: only for other key forms
    serialization = lazy_module("cryptography.hazmat.primitives.serialization")

ED25519 = "Ed25519"
ECDSA_P256 = "ECDSA-P256-SHA256"
ALGORITHMS = (ED25519, ECDSA_P256)
SIGNATURE_BYTES = 64

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def alg_of(public: object) -> str:
    """The algorithm of a public key; refuses keys vidproof does not sign with."""
    if isinstance(public, Ed25519PublicKey):
        return ED25519
    if isinstance(public, ec.EllipticCurvePublicKey):
        if isinstance(public.curve, ec.SECP256R1):
            return ECDSA_P256
        raise KeyFormatError(f"an ECDSA key on {public.curve.name}; expected Ed25519 or "
                             "ECDSA P-256 (secp256r1)")
    raise KeyFormatError(f"a {type(public).__name__.lstrip('_')}; expected an Ed25519 or "
                         "ECDSA P-256 key")


def is_supported(public: object) -> bool:
    try:
        alg_of(public)
    except KeyFormatError:
        return False
    return True


def raw_public(public: PublicKey) -> bytes:
    if isinstance(public, Ed25519PublicKey):
        return public.public_bytes_raw()  # = public_bytes(Encoding.Raw, PublicFormat.Raw)
    return public.public_bytes(serialization.Encoding.X962,
                               serialization.PublicFormat.UncompressedPoint)


def key_id(public: PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()


def public_pem(public: PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# The keys 'vidproof keygen' writes, read without the serialization module (a start-up
# cost of every record and verify run): a file that is exactly one PEM block of an
# Ed25519 key (RFC 8410: a fixed DER prefix, then the 32 key bytes). Anything else is
# read by cryptography's PEM loader, as before.
_PEM = re.compile(rb"-----BEGIN (PUBLIC|PRIVATE) KEY-----\r?\n([A-Za-z0-9+/=\r\n]{1,200})"
                  rb"-----END \1 KEY-----\s*")
_ED25519_DER_PREFIX = {b"PUBLIC": bytes.fromhex("302a300506032b6570032100"),
                       b"PRIVATE": bytes.fromhex("302e020100300506032b657004220420")}


def _ed25519_der(data: bytes, kind: bytes) -> bytes | None:
    """The 32 key bytes of an Ed25519 PEM file of ``kind`` (b"PUBLIC" or b"PRIVATE")."""
    m = _PEM.fullmatch(data)
    if m is None or m.group(1) != kind:
        return None
    try:
        der = binascii.a2b_base64(m.group(2).replace(b"\r", b"").replace(b"\n", b""),
                                  strict_mode=True)
    except binascii.Error:
        return None
    prefix = _ED25519_DER_PREFIX[kind]
    return der[len(prefix):] if len(der) == len(prefix) + 32 and der.startswith(prefix) else None


def ed25519_private_from_pem(data: bytes) -> Ed25519PrivateKey | None:
    """An unencrypted PKCS#8 Ed25519 private key PEM file, as 'vidproof keygen' writes it;
    None for anything else (read it with cryptography's loader)."""
    raw = _ed25519_der(data, b"PRIVATE")
    return None if raw is None else Ed25519PrivateKey.from_private_bytes(raw)


def load_public_pem(text: str | bytes) -> PublicKey:
    """A PEM SubjectPublicKeyInfo of a supported key (KeyFormatError otherwise)."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    raw = _ed25519_der(data, b"PUBLIC")
    if raw is not None:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a PEM public key ({exc})") from None
    alg_of(public)
    assert isinstance(public, Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return public


def ecdsa_raw_from_der(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_signature(public: PublicKey, alg: str, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is a valid ``alg`` signature of ``data`` by ``public``; an
    algorithm that is not the key's is a failure, never a fallback."""
    try:
        if alg != alg_of(public) or len(signature) != SIGNATURE_BYTES:
            return False
    except KeyFormatError:
        return False
    try:
        if isinstance(public, Ed25519PublicKey):
            public.verify(signature, data)
        else:
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))
            public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
