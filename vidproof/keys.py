"""Device signing keys and trust anchors.

Keys are Ed25519, or ECDSA P-256 where a hardware token needs it
(:mod:`vidproof.trust.keytypes`). A key is identified by the SHA-256 of its raw public
key (``key_id``). Private keys are PEM PKCS#8 files with mode 0600, encrypted when a
passphrase is given (``--key-passphrase-file`` or ``VIDPROOF_KEY_PASSPHRASE``), or keys
in a PKCS#11 token (``pkcs11:token=…;object=…``, :mod:`vidproof.trust.pkcs11`) that
never leave it. A signer may carry its X.509 certificate chain (``--cert``), which the
recorder writes into the evidence so that a verifier trusting the CA can check it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import KeyFormatError, UsageError
from .trust.keytypes import (
    ECDSA_P256,
    ED25519,
    PublicKey,
    alg_of,
    ecdsa_raw_from_der,
    ed25519_private_from_pem,
    key_id,
    load_public_pem,
    public_pem,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import serialization

    from .trust.policy import TrustedKey
else:  # a start-up cost: only for keys other than those 'vidproof keygen' writes
    from ._lazy import lazy_module

    serialization = lazy_module("cryptography.hazmat.primitives.serialization")

ALG = ED25519  # the default algorithm
PASSPHRASE_ENV = "VIDPROOF_KEY_PASSPHRASE"
ALG_CHOICES = {"ed25519": ED25519, "p256": ECDSA_P256}

__all__ = ["ALG", "ECDSA_P256", "ED25519", "Signer", "TrustedKey", "generate", "key_id",
           "load_signer", "load_trusted", "public_pem"]


class TokenKey(Protocol):
    """A private key held elsewhere (a PKCS#11 token): it signs, it is never read."""

    alg: str

    def public_key(self) -> PublicKey: ...

    def sign_raw(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Signer:
    """Signs checkpoints with a device key; ``certs``: its PEM certificate chain, leaf
    first (empty when the key is trusted as a bare public key)."""

    private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey | TokenKey
    certs: tuple[str, ...] = ()

    @cached_property
    def public(self) -> PublicKey:
        public = self.private.public_key()
        assert isinstance(public, PublicKey)
        return public

    @cached_property
    def key_id(self) -> str:
        return key_id(self.public)

    @cached_property
    def alg(self) -> str:
        return alg_of(self.public)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, Ed25519PrivateKey):
            return self.private.sign(data)
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            return ecdsa_raw_from_der(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return self.private.sign_raw(data)

    def key_json(self) -> dict[str, Any]:
        """The context's ``key`` member: algorithm and id, and the certificate chain when
        the key has one (docs/FORMAT.md 4.3, 12.1)."""
        out: dict[str, Any] = {"alg": self.alg, "id": self.key_id}
        if self.certs:
            out["certs"] = list(self.certs)
        return out

    def material_json(self) -> dict[str, Any]:
        """The key as a rotation event introduces it: with its public key."""
        return {**self.key_json(), "public": public_pem(self.public)}


def __getattr__(name: str) -> Any:
    # TrustedKey is a trust policy (vidproof.trust.policy, with the certificate code):
    # imported when asked for, not by every recorder that loads its signing key.
    if name == "TrustedKey":
        from .trust.policy import TrustedKey

        return TrustedKey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def passphrase_from(file: Path | None, env: str = PASSPHRASE_ENV) -> bytes | None:
    """The secret that unlocks a key: the first line of ``file``, else ``$env``."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read passphrase file {file}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        line = text.splitlines()[0] if text.splitlines() else ""
        if not line:
            raise UsageError(f"passphrase file {file} is empty")
        return line.encode("utf-8")
    value = os.environ.get(env)
    return value.encode("utf-8") if value else None


def write_private_key(path: Path, private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
                      passphrase: bytes | None = None) -> None:
    """PEM PKCS#8, mode 0600 from its creation, never overwriting; encrypted (AES-256,
    the best available) when a passphrase is given."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8, enc)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists: refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def new_private_key(alg: str) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if alg == ED25519:
        return Ed25519PrivateKey.generate()
    if alg == ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    raise UsageError(f"unknown key algorithm {alg!r}; expected one of "
                     f"{', '.join(ALG_CHOICES)}")


def generate(out_dir: Path, alg: str = ED25519,
             passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write ``device.key`` (PKCS#8 PEM, 0600) and ``device.pub`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / "device.key", out_dir / "device.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise UsageError(f"{path} already exists: refusing to overwrite a key")
    private = new_private_key(alg)
    write_private_key(key_path, private, passphrase)
    pub_path.write_text(public_pem(private.public_key()))
    return key_path, pub_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def is_token_uri(spec: str | Path) -> bool:
    return str(spec).startswith("pkcs11:")


def load_private_key(path: Path, passphrase: bytes | None
                     ) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    data = _read(path, "private key")
    if passphrase is None:
        passphrase = passphrase_from(None)
    encrypted = b"ENCRYPTED PRIVATE KEY" in data
    fast = None if encrypted else ed25519_private_from_pem(data)
    if fast is not None:
        return fast  # an Ed25519 key, as 'vidproof keygen' writes it
    try:
        private = serialization.load_pem_private_key(data, password=passphrase
                                                     if encrypted else None)
    except TypeError:
        raise KeyFormatError(f"{path} is an encrypted private key: give its passphrase with "
                             f"--key-passphrase-file or ${PASSPHRASE_ENV}") from None
    except ValueError as exc:
        if encrypted:
            raise KeyFormatError(f"{path}: wrong passphrase, or a damaged encrypted "
                                 "key") from None
        raise KeyFormatError(
            f"{path} is not a PEM PKCS#8 private key ({exc}); "
            "expected a key made by 'vidproof keygen' or 'vidproof device enroll'"
        ) from None
    if not isinstance(private, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFormatError(f"{path} holds a {type(private).__name__.lstrip('_')}; expected "
                             "an Ed25519 or ECDSA P-256 key")
    try:
        alg_of(private.public_key())
    except KeyFormatError as exc:
        raise KeyFormatError(f"{path} holds {exc}") from None
    return private


def load_cert_chain(path: Path, public: PublicKey) -> tuple[str, ...]:
    """``--cert``: the PEM chain, leaf first; the leaf must certify ``public``."""
    from .trust.certs import cert_key_id, cert_pem, load_pem_certificates

    certs = load_pem_certificates(_read(path, "certificate"), str(path))
    if cert_key_id(certs[0]) != key_id(public):
        raise KeyFormatError(f"{path} is the certificate of another key: its first "
                             "certificate must certify the signing key (--key)")
    return tuple(cert_pem(c) for c in certs)


def load_signer(path: Path | str, *, passphrase: bytes | None = None,
                cert: Path | None = None) -> Signer:
    """A signer from a PEM key file or a ``pkcs11:`` URI, with its certificate chain."""
    private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey | TokenKey
    if is_token_uri(path):
        from .trust.pkcs11 import open_token_key

        private = open_token_key(str(path), passphrase)
    else:
        private = load_private_key(Path(path), passphrase)
    signer = Signer(private)
    if cert is not None:
        signer = Signer(private, load_cert_chain(cert, signer.public))
    return signer


def load_trusted(path: Path) -> TrustedKey:
    """A bare public key (or a certificate's public key): the journal's trust anchor."""
    from .trust.policy import TrustedKey

    data = _read(path, "trust anchor")
    try:
        return TrustedKey(load_public_pem(data))
    except KeyFormatError:
        pass
    try:
        from cryptography import x509

        public = x509.load_pem_x509_certificate(data).public_key()
    except (ValueError, TypeError):
        raise KeyFormatError(
            f"{path} is not a PEM public key or certificate; expected e.g. device.pub "
            "from 'vidproof keygen'"
        ) from None
    try:
        alg_of(public)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{path} holds {exc}") from None
    assert isinstance(public, PublicKey)
    return TrustedKey(public)
