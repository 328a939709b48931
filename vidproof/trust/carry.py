"""What an export bundle carries so that it verifies offline with only the trust anchor
(docs/FORMAT.md section 12.5): the keys that sign it, the camera's key rotations up to
now, and the CRLs in force.

- ``keys``: for each key that signs the anchor, a checkpoint of the clip, a carried
  rotation or the export entry: ``{"id", "alg", "public"?, "certs"?}``, gathered from the
  camera's contexts (certificates) and rotation events (public keys).
- ``rotations``: every ``key_rotation`` event of the camera's log with the checkpoint
  whose head it is (the old key's signature over it), oldest first.
- ``crls``: the PEM CRLs given to ``export --crl``.
Nothing here needs to be trusted as such: certificates and CRLs are signed by the CA,
rotations by the old key, and a public key is bound to its id by the hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..canonical import entry_hash
from ..keys import Signer
from .policy import TrustPolicy


def _merge(into: dict[str, dict[str, Any]], obj: object) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return
    have = into.setdefault(obj["id"], {"id": obj["id"], "alg": obj.get("alg")})
    for member in ("public", "certs"):
        if member in obj and member not in have:
            have[member] = obj[member]


def carried_trust(entries: Iterable[dict[str, Any]], checkpoints: Sequence[dict[str, Any]],
                  evidence: dict[str, Any], signer: Signer,
                  crl_pems: Sequence[str] = ()) -> dict[str, Any]:
    """The ``keys``, ``rotations`` and ``crls`` members of a bundle's evidence.json."""
    material: dict[str, dict[str, Any]] = {}
    _merge(material, signer.material_json())
    rotations: list[list[dict[str, Any]]] = []
    by_head = {(c.get("seq"), c.get("head")): c for c in checkpoints}
    for e in sorted(entries, key=lambda e: e["seq"]):
        if e.get("type") == "context":
            _merge(material, e["context"].get("key"))
        elif e.get("type") == "event" and e.get("event") == "key_rotation":
            _merge(material, e["detail"].get("key"))
            _merge(material, {"id": e["detail"].get("previous_key"),
                              "public": e["detail"].get("previous_public")})
            cp = by_head.get((e["seq"], entry_hash(e)))
            if cp is not None:
                rotations.append([e, cp])
    needed = {c.get("key") for c in [evidence["anchor"], *evidence["checkpoints"]]}
    needed |= {cp.get("key") for _, cp in rotations}
    needed.add(signer.key_id)
    keys = [material[k] for k in sorted(k for k in needed if isinstance(k, str))
            if k in material]
    out: dict[str, Any] = {"keys": keys, "rotations": rotations}
    if crl_pems:
        out["crls"] = list(crl_pems)
    return out


def self_check_policy(signer: Signer, evidence: dict[str, Any]) -> TrustPolicy:
    """The trust the exporter checks its own bundle with, as a court would: the CA at the
    end of the signer's certificate chain; else the camera's first key (the old key of
    its first rotation), or the signer's own key."""
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from .certs import is_ca, load_pem_certificates
    from .keytypes import load_public_pem
    from .policy import BareKeyPolicy, CAPolicy

    certs = list(signer.certs)
    if not certs:
        mine: dict[str, Any] = next((k for k in evidence.get("keys", [])
                                     if k.get("id") == signer.key_id), {})
        certs = list(mine.get("certs") or [])
    if certs:
        last = load_pem_certificates(certs[-1].encode("ascii"))[0]
        if is_ca(last):
            return CAPolicy([last])
    rotations = evidence.get("rotations") or []
    if rotations:
        pem = rotations[0][0]["detail"].get("previous_public")
        if isinstance(pem, str):
            return BareKeyPolicy(load_public_pem(pem))
    public = signer.public
    assert isinstance(public, Ed25519PublicKey | EllipticCurvePublicKey)
    return BareKeyPolicy(public)
