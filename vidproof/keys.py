"""Device signing keys and trust anchors.

Keys are Ed25519. A key is identified by the SHA-256 of its raw 32-byte public
key (``key_id``). Private keys are PEM PKCS#8 files with mode 0600.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import KeyFormatError, UsageError

ALG = "Ed25519"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True)
class Signer:
    """Signs checkpoints with a device key."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    alg = ALG

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier was told to trust."""

    public: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def generate(out_dir: Path) -> tuple[Path, Path]:
    """Write ``device.key`` (PKCS#8 PEM, 0600) and ``device.pub`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / "device.key", out_dir / "device.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise UsageError(f"{path} already exists: refusing to overwrite a key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    pub_path.write_text(public_pem(private.public_key()))
    return key_path, pub_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_signer(path: Path) -> Signer:
    data = _read(path, "private key")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(
            f"{path} is not an unencrypted PEM PKCS#8 private key ({exc}); "
            "expected a key made by 'vidproof keygen'"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFormatError(f"{path} holds a {type(private).__name__}; expected an Ed25519 key")
    return Signer(private)


def load_trusted(path: Path) -> TrustedKey:
    data = _read(path, "trust anchor")
    public: object
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            from cryptography import x509

            public = x509.load_pem_x509_certificate(data).public_key()
        except (ValueError, TypeError):
            raise KeyFormatError(
                f"{path} is not a PEM public key or certificate; expected e.g. device.pub "
                "from 'vidproof keygen'"
            ) from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFormatError(f"{path} holds a {type(public).__name__}; expected an Ed25519 key")
    return TrustedKey(public)
