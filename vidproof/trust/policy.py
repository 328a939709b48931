"""What a verifier trusts, given to it explicitly: a trust policy.

- :class:`BareKeyPolicy`: one public key (``--trust device.pub``). Keys introduced by a
  signed ``key_rotation`` event of a trusted key are trusted too (the verifier core
  decides which rotations are valid and says so with ``introduced``).
- :class:`CAPolicy`: one or more CA certificates (``--trust ca.pem``) and the CRLs known
  (``--crl``, or carried in a bundle). A key is trusted at a given time when the
  evidence carries a certificate path for it to the CA that is valid, and not revoked,
  at that time.

Policies are pure: no I/O and no clock; the time is always passed in (a checkpoint's
``utc_ns``, an export's ``utc_ns``). :func:`load_policy` is the one loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import KeyFormatError, UsageError
from .certs import (
    MAX_CERT_PEM,
    MAX_CERTS,
    CertPath,
    PathError,
    build_path,
    cert_key_id,
    check_at,
    is_ca,
    load_pem_certificates,
    name_text,
)
from .crl import load_pem_crls
from .keytypes import ALGORITHMS, PublicKey, alg_of, key_id, load_public_pem, verify_signature

if TYPE_CHECKING:
    from cryptography import x509
else:  # imported when a certificate is met (vidproof/_lazy.py)
    x509 = lazy_module("cryptography.x509")

UNTRUSTED_KEY = "untrusted_key"
UNTRUSTED_CERTIFICATE = "untrusted_certificate"


@dataclass(frozen=True)
class KeyMaterial:
    """What the evidence offers about one key: its public key and certificates. The
    public key, when present, hashes to ``key_id`` (checked when it is built)."""

    key_id: str
    alg: str
    public: PublicKey | None = None
    certs: tuple[x509.Certificate, ...] = ()
    problem: str | None = None  # why the offered material cannot be used

    @classmethod
    def of(cls, public: PublicKey, certs: Sequence[x509.Certificate] = ()) -> KeyMaterial:
        return cls(key_id(public), alg_of(public), public, tuple(certs))

    def merged(self, other: KeyMaterial) -> KeyMaterial:
        """Combine two offers for one key: the first usable public key and certificates."""
        if self.problem is not None and other.problem is None:
            return other
        if other.problem is not None:
            return self
        return KeyMaterial(self.key_id, self.alg, self.public or other.public,
                           self.certs or other.certs)


def material_from_json(obj: object) -> KeyMaterial | None:
    """Read ``{"id", "alg", "public"?, "certs"?}`` (a context's ``key``, a rotation's
    ``detail.key``, a bundle's ``keys`` item). None when it has no usable id; a
    material with ``problem`` when the public key or certificates are not that key's."""
    if not isinstance(obj, dict):
        return None
    kid, alg = obj.get("id"), obj.get("alg")
    if not isinstance(kid, str) or len(kid) != 64 or not isinstance(alg, str):
        return None
    public: PublicKey | None = None
    certs: list[x509.Certificate] = []
    try:
        pem = obj.get("public")
        if pem is not None:
            if not isinstance(pem, str) or len(pem) > MAX_CERT_PEM:
                raise KeyFormatError("'public' is not a PEM public key")
            public = load_public_pem(pem)
        raw_certs = obj.get("certs")
        if raw_certs is not None:
            if (not isinstance(raw_certs, list) or not 0 < len(raw_certs) <= MAX_CERTS
                    or not all(isinstance(c, str) and len(c) <= MAX_CERT_PEM
                               for c in raw_certs)):
                raise KeyFormatError(f"'certs' is not a list of 1 to {MAX_CERTS} PEM "
                                     "certificates")
            for c in raw_certs:
                certs.extend(load_pem_certificates(c.encode("ascii", "replace"),
                                                   "a carried certificate"))
            leaf_id = cert_key_id(certs[0])
            if leaf_id != kid:
                raise KeyFormatError(f"the certificate '{name_text(certs[0].subject)}' is "
                                     f"for another key ({(leaf_id or 'unusable')[:16]}…)")
            if public is None:
                leaf_key = certs[0].public_key()
                assert isinstance(leaf_key, PublicKey)
                public = leaf_key
        if public is not None:
            if key_id(public) != kid:
                raise KeyFormatError("the public key carried does not have this key id")
            if alg_of(public) != alg:
                raise KeyFormatError(f"the key is {alg_of(public)}, not {alg}")
    except KeyFormatError as exc:
        return KeyMaterial(kid, alg, problem=f"key {kid[:16]}…: {exc}")
    return KeyMaterial(kid, alg, public, tuple(certs))


@dataclass(frozen=True)
class KeyJudgement:
    ok: bool
    kind: str = ""
    message: str = ""


class TrustPolicy:
    """Base class: decides whether a key may sign at a given time."""

    description = "nothing"

    def known_keys(self) -> Mapping[str, KeyMaterial]:
        """Keys the policy itself holds (a bare key), as material."""
        return {}

    def judge(self, key: str, material: KeyMaterial | None, at_ns: int,
              introduced: bool) -> KeyJudgement:
        raise NotImplementedError

    def verify_checkpoint(self, material: KeyMaterial, alg: str, signature: bytes,
                          data: bytes) -> bool:
        return material.public is not None and verify_signature(material.public, alg,
                                                                 signature, data)

    def describe(self, key: str, material: KeyMaterial | None) -> dict[str, Any]:
        """What the report says about a key (subject, validity, revocation)."""
        return {"id": key, "alg": None if material is None else material.alg}

    def with_crls(self, crls: Iterable[x509.CertificateRevocationList]) -> TrustPolicy:
        """The same policy knowing more CRLs (carried in a bundle)."""
        return self


class BareKeyPolicy(TrustPolicy):
    """Trust one public key, and the keys it introduces by signed rotation."""

    def __init__(self, public: PublicKey) -> None:
        self.public = public
        self.material = KeyMaterial.of(public)
        self.description = f"public key {self.material.key_id}"

    @property
    def key_id(self) -> str:
        return self.material.key_id

    def known_keys(self) -> Mapping[str, KeyMaterial]:
        return {self.material.key_id: self.material}

    def judge(self, key: str, material: KeyMaterial | None, at_ns: int,
              introduced: bool) -> KeyJudgement:
        if key == self.material.key_id or introduced:
            return KeyJudgement(True)
        return KeyJudgement(False, UNTRUSTED_KEY,
                            f"key {key[:16]}… is not the trusted key "
                            f"{self.material.key_id[:16]}…, nor introduced by it")

    def describe(self, key: str, material: KeyMaterial | None) -> dict[str, Any]:
        out = super().describe(key, material)
        out["trusted_as"] = ("the trusted key" if key == self.material.key_id else
                             "introduced by a signed key rotation")
        return out


class TrustedKey(BareKeyPolicy):
    """A public key the verifier was told to trust (a bare-key trust policy). Also
    ``vidproof.keys.TrustedKey``, where it is imported on first use."""

    def verify(self, signature: bytes, data: bytes) -> bool:
        return verify_signature(self.public, self.material.alg, signature, data)


@dataclass
class _PathCache:
    paths: dict[tuple[str, tuple[bytes, ...]], CertPath | str] = field(default_factory=dict)


class CAPolicy(TrustPolicy):
    """Trust keys certified by one of ``anchors``, as of the signing time."""

    def __init__(self, anchors: Sequence[x509.Certificate],
                 crls: Sequence[x509.CertificateRevocationList] = ()) -> None:
        if not anchors:
            raise UsageError("a CA trust policy needs at least one CA certificate")
        self.anchors = tuple(anchors)
        self.crls = tuple(crls)
        self.description = "CA " + ", ".join(f"'{name_text(a.subject)}'" for a in anchors)
        self._cache = _PathCache()

    def with_crls(self, crls: Iterable[x509.CertificateRevocationList]) -> CAPolicy:
        extra = [c for c in crls if c not in self.crls]
        return self if not extra else CAPolicy(self.anchors, (*self.crls, *extra))

    def crl_signed_by_anchor(self, crl: x509.CertificateRevocationList) -> bool:
        for a in self.anchors:
            if crl.issuer != a.subject:
                continue
            try:
                if crl.is_signature_valid(a.public_key()):  # type: ignore[arg-type]
                    return True
            except (TypeError, ValueError):
                continue
        return False

    def path(self, material: KeyMaterial) -> CertPath | str:
        """The key's certificate path to an anchor, or why there is none (cached)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        ck = (material.key_id, tuple(c.public_bytes(Encoding.DER) for c in material.certs))
        found = self._cache.paths.get(ck)
        if found is None:
            try:
                found = build_path(material.certs, self.anchors, self.crls)
            except PathError as exc:
                found = str(exc)
            self._cache.paths[ck] = found
        return found

    def judge(self, key: str, material: KeyMaterial | None, at_ns: int,
              introduced: bool) -> KeyJudgement:
        if material is not None and material.problem is not None:
            return KeyJudgement(False, UNTRUSTED_CERTIFICATE, material.problem)
        if material is None or not material.certs:
            return KeyJudgement(False, UNTRUSTED_KEY,
                                f"key {key[:16]}… has no certificate in the evidence (the "
                                f"trust anchor is the {self.description})")
        path = self.path(material)
        if isinstance(path, str):
            return KeyJudgement(False, UNTRUSTED_CERTIFICATE, f"key {key[:16]}…: {path}")
        check = check_at(path, at_ns)
        if not check.ok:
            return KeyJudgement(False, check.kind, f"key {key[:16]}…: {check.message}")
        return KeyJudgement(True)

    def describe(self, key: str, material: KeyMaterial | None) -> dict[str, Any]:
        out = super().describe(key, material)
        if material is None or not material.certs:
            out["certificate"] = None
            return out
        path = self.path(material) if material.problem is None else material.problem
        out["certificate"] = path if isinstance(path, str) else path.describe()
        return out


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_policy(path: Path, crl_paths: Sequence[Path] = ()) -> TrustPolicy:
    """``--trust FILE [--crl FILE]...``: a PEM public key gives a :class:`BareKeyPolicy`;
    a PEM CA certificate (basicConstraints cA=TRUE) gives a :class:`CAPolicy`; any other
    certificate stands for its public key, as a bare key."""
    data = _read(path, "trust anchor")
    policy: TrustPolicy
    if b"-----BEGIN CERTIFICATE-----" in data:
        certs = load_pem_certificates(data, str(path))
        cas = [c for c in certs if is_ca(c)]
        if is_ca(certs[0]):
            policy = CAPolicy(cas)
        else:
            public = certs[0].public_key()
            try:
                alg_of(public)
            except KeyFormatError as exc:
                raise KeyFormatError(f"{path}: the certificate holds {exc}") from None
            assert isinstance(public, PublicKey)
            policy = BareKeyPolicy(public)
    else:
        try:
            policy = BareKeyPolicy(load_public_pem(data))
        except KeyFormatError as exc:
            raise KeyFormatError(
                f"{path} is not a PEM public key or CA certificate ({exc}); expected e.g. "
                "device.pub from 'vidproof keygen' or ca.pem from 'vidproof ca init'"
            ) from None
    if crl_paths and not isinstance(policy, CAPolicy):
        raise UsageError("--crl needs --trust to be a CA certificate (a CRL revokes "
                         "certificates, not bare keys)")
    for crl_path in crl_paths:
        assert isinstance(policy, CAPolicy)
        crls = load_pem_crls(_read(crl_path, "CRL"), str(crl_path))
        if not all(policy.crl_signed_by_anchor(crl) for crl in crls):
            raise UsageError(f"{crl_path} is not a CRL signed by the trusted CA "
                             f"({policy.description})")
        policy = policy.with_crls(crls)
    return policy


__all__ = ["ALGORITHMS", "BareKeyPolicy", "CAPolicy", "KeyJudgement", "KeyMaterial",
           "TrustPolicy", "TrustedKey", "load_policy", "material_from_json"]
