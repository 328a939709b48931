"""RFC 3161 time-stamp tokens and clock quality, for the verifier. Pure: bytes in, result out.

A token is a CMS SignedData (RFC 5652) whose content is a TSTInfo (RFC 3161 section
2.4.2): a trusted third party, the time-stamp authority (TSA), signs "this hash
existed at genTime". vidproof asks for tokens over checkpoints: the message
imprint is the checkpoint's entry hash (SHA-256 of its canonical bytes, docs/FORMAT.md
section 13), so a token proves that the checkpoint, and every entry and earlier
checkpoint it commits to, existed by genTime.

:func:`inspect_token` checks one token (steps T1-T7 of docs/FORMAT.md section 13.4);
:func:`check_timestamps` checks a camera's tokens against its checkpoints and gives,
for each stretch of footage, the latest time by which it provably existed;
:func:`clock_quality` summarises the recorder's clock measurements and jumps. ASN.1 is
parsed by asn1crypto, signatures are checked by cryptography: no home-made parser.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .._lazy import lazy_module
from ..canonical import CanonicalError, canonical_bytes, sha256_hex
from ..model import Checkpoint, ContextRecord, EventRecord, RecordError, entry_from_json
from ..timefmt import iso_ns

if TYPE_CHECKING:
    from asn1crypto import cms, core, tsp
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed448, padding, rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID
else:  # imported when a token or certificate is met (vidproof/_lazy.py)
    cms, core, tsp = (lazy_module(f"asn1crypto.{m}") for m in ("cms", "core", "tsp"))
    x509 = lazy_module("cryptography.x509")
    ed448, padding, rsa = (lazy_module(f"cryptography.hazmat.primitives.asymmetric.{m}")
                           for m in ("ed448", "padding", "rsa"))
    ExtendedKeyUsageOID = lazy_module("cryptography.x509.oid", "ExtendedKeyUsageOID")
    Encoding = lazy_module("cryptography.hazmat.primitives.serialization", "Encoding")

MAX_TOKEN_BYTES = 64 * 1024
MAX_CERTS = 16  # certificates in one token
MAX_CHAIN = 4  # certificates from the TSA's up to an anchor
MAX_TOKENS = 1_000_000  # per camera
CLOCK_AHEAD_TOLERANCE_NS = 1_000_000_000  # beyond the TSA's stated accuracy

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# Compared as dotted OIDs: asn1crypto names id-ct-TSTInfo "tst_info" only once its tsp
# module is imported, which the lazy imports above may not have done yet.
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"

# A finding as the core takes it: kind, severity, message, first, last, first_utc, last_utc.
FindingTuple = tuple[str, str, str, int | None, int | None, int | None, int | None]


class TokenError(ValueError):
    """The token is malformed, or its signature or certificate does not hold."""


class TokenMismatch(TokenError):
    """A valid token, over other data than expected."""


class TokenUntrusted(TokenError):
    """A valid token, whose TSA certificate does not lead to a given trust anchor."""


@dataclass(frozen=True)
class TokenInfo:
    gen_time_ns: int
    accuracy_ns: int | None
    hash_alg: str
    imprint: bytes
    serial: int
    nonce: int | None
    policy: str
    tsa_name: str | None
    signer: str  # the TSA certificate's subject, RFC 4514
    signer_sha256: str  # SHA-256 of the TSA certificate (DER)
    anchored: bool  # the TSA certificate leads to one of the trust anchors given


def _ns(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _load(spec: type[core.Asn1Value], data: bytes, what: str) -> Any:
    try:
        value = spec.load(data, strict=True)
        value.native  # noqa: B018 - parses every member now, so errors surface here
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise TokenError(f"{what} is not valid DER ({exc})") from None
    return value


def parse_anchors_pem(data: bytes) -> list[bytes]:
    """The DER of each certificate in a PEM file (a TSA trust anchor, or several)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TokenError(f"not a PEM certificate ({exc})") from None
    return [c.public_bytes(Encoding.DER) for c in certs]




def _verify_sig(public: object, sig_algo: str, hash_name: str, signature: bytes,
                data: bytes, pss: Any = None) -> None:
    """Raise TokenError unless ``signature`` over ``data`` verifies with ``public``."""
    h = _HASHES.get(hash_name)
    try:
        if isinstance(public, rsa.RSAPublicKey) and sig_algo == "rsassa_pkcs1v15":
            if h is None:
                raise TokenError(f"digest {hash_name} is not accepted")
            public.verify(signature, data, padding.PKCS1v15(), h())
        elif isinstance(public, rsa.RSAPublicKey) and sig_algo == "rsassa_pss":
            mgf_hash = _HASHES.get(pss["mask_gen_algorithm"]["parameters"]["algorithm"].native)
            ph = _HASHES.get(pss["hash_algorithm"]["algorithm"].native)
            if mgf_hash is None or ph is None:
                raise TokenError("RSA-PSS parameters name a digest that is not accepted")
            public.verify(signature, data, padding.PSS(padding.MGF1(mgf_hash()),
                                                       pss["salt_length"].native), ph())
        elif isinstance(public, ec.EllipticCurvePublicKey) and sig_algo == "ecdsa":
            if h is None:
                raise TokenError(f"digest {hash_name} is not accepted")
            public.verify(signature, data, ec.ECDSA(h()))
        elif isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) \
                and sig_algo in ("ed25519", "ed448"):
            public.verify(signature, data)
        else:
            raise TokenError(f"signature algorithm {sig_algo} does not match the TSA "
                             f"certificate's key ({type(public).__name__})")
    except InvalidSignature:
        raise TokenError("the TSA signature is invalid: the token was altered") from None
    except (UnsupportedAlgorithm, ValueError, KeyError, TypeError) as exc:
        raise TokenError(f"the TSA signature cannot be checked ({exc})") from None


def _cert_valid_at(cert: x509.Certificate, t_ns: int) -> bool:
    return _ns(cert.not_valid_before_utc) <= t_ns <= _ns(cert.not_valid_after_utc)


def _signer_cert(signer: Any, certs: Sequence[x509.Certificate]) -> x509.Certificate:
    sid = signer["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (sid.chosen["serial_number"].native == cert.serial_number
                    and sid.chosen["issuer"].dump() == cert.issuer.public_bytes()):
                return cert
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.chosen.native:
                return cert
    raise TokenError("the TSA certificate that signed the token is neither in the token nor "
                     "among the trust anchors (ask the TSA to include it: certReq)")


def _check_ess(attrs: dict[str, Any], cert_der: bytes) -> None:
    """RFC 3161 2.4.1 / RFC 5816: the signed attributes name the signing certificate."""
    if "signing_certificate_v2" in attrs:
        for cid in attrs["signing_certificate_v2"][0]["certs"]:
            alg = cid["hash_algorithm"]["algorithm"].native
            h = _HASHES.get(alg)
            if h is not None and hashes_digest(h(), cert_der) == cid["cert_hash"].native:
                return
            break  # the first ESSCertIDv2 names the signer
    elif "signing_certificate" in attrs:
        for cid in attrs["signing_certificate"][0]["certs"]:
            if hashlib.sha1(cert_der).digest() == cid["cert_hash"].native:  # noqa: S324
                return
            break
    else:
        raise TokenError("the token does not name its signing certificate (no "
                         "SigningCertificate attribute, RFC 3161 section 2.4.1)")
    raise TokenError("the signing-certificate attribute does not match the TSA certificate")


def hashes_digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _chain_to_anchor(cert: x509.Certificate, pool: Sequence[x509.Certificate],
                     anchors: Sequence[x509.Certificate], t_ns: int) -> bool:
    """True when ``cert`` is an anchor or is issued, through at most MAX_CHAIN
    certificates of ``pool``, by one; each valid at ``t_ns`` (the token's genTime)."""
    anchor_der = {a.public_bytes(Encoding.DER) for a in anchors}
    current = cert
    for _ in range(MAX_CHAIN):
        if current.public_bytes(Encoding.DER) in anchor_der:
            return True
        issuer = None
        for cand in [*anchors, *pool]:
            if cand.subject != current.issuer or not _cert_valid_at(cand, t_ns):
                continue
            try:
                current.verify_directly_issued_by(cand)
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                continue
            if cand.public_bytes(Encoding.DER) not in anchor_der:
                try:
                    bc = cand.extensions.get_extension_for_class(x509.BasicConstraints).value
                except x509.ExtensionNotFound:
                    continue
                if not bc.ca:
                    continue
            issuer = cand
            break
        if issuer is None:
            return False
        current = issuer
    return current.public_bytes(Encoding.DER) in anchor_der


def inspect_token(token: bytes, anchors: Sequence[bytes] = (), *,
                  expected_imprint: bytes | None = None, nonce: int | None = None) -> TokenInfo:
    """Check one RFC 3161 token (DER ContentInfo). Raises :class:`TokenError` (malformed
    or not validly signed), :class:`TokenMismatch` (over other data, or another nonce)
    or :class:`TokenUntrusted` (anchors given, and the TSA is not one of theirs)."""
    # T1: the structure. Importing asn1crypto.tsp (lazily bound above) first registers the
    # TSTInfo and signing-certificate types with asn1crypto.cms: without it they parse as Any.
    tsp.TSTInfo  # noqa: B018
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError(f"the token is {len(token)} bytes, over the {MAX_TOKEN_BYTES} limit")
    ci = _load(cms.ContentInfo, token, "the token")
    if ci["content_type"].dotted != _ID_SIGNED_DATA:
        raise TokenError("the token is not a CMS SignedData")
    sd = ci["content"]
    eci = sd["encap_content_info"]
    if eci["content_type"].dotted != _ID_CT_TSTINFO or eci["content"].native is None:
        raise TokenError("the token does not hold a TSTInfo (RFC 3161 section 2.4.2)")
    tst_der = eci["content"].contents  # the OCTET STRING's bytes: the DER TSTInfo
    tst = _load(tsp.TSTInfo, tst_der, "the TSTInfo")
    if tst["version"].native != "v1":
        raise TokenError("the TSTInfo version is not 1")
    signers = list(sd["signer_infos"])
    if len(signers) != 1:
        raise TokenError(f"the token has {len(signers)} signers; RFC 3161 requires one")
    signer = signers[0]
    gen_time_ns = _ns(tst["gen_time"].native)
    acc = tst["accuracy"]
    accuracy_ns = None
    if acc.native is not None:
        a = acc.native
        accuracy_ns = ((a.get("seconds") or 0) * 10**9 + (a.get("millis") or 0) * 10**6
                       + (a.get("micros") or 0) * 10**3)
    # T2: the message imprint.
    hash_alg = tst["message_imprint"]["hash_algorithm"]["algorithm"].native
    imprint = tst["message_imprint"]["hashed_message"].native
    if expected_imprint is not None and (hash_alg != "sha256" or imprint != expected_imprint):
        raise TokenMismatch(f"the token is over other data ({hash_alg} "
                            f"{imprint.hex()[:16]}…, expected sha256 "
                            f"{expected_imprint.hex()[:16]}…)")
    if nonce is not None and tst["nonce"].native != nonce:
        raise TokenMismatch("the token's nonce is not the one sent")
    # T3: the TSA certificate.
    certs: list[x509.Certificate] = []
    for choice in sd["certificates"] or []:
        if choice.name != "certificate" or len(certs) >= MAX_CERTS:
            continue
        try:
            certs.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except ValueError:
            continue
    anchor_certs: list[x509.Certificate] = []
    for der in anchors:
        try:
            anchor_certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise TokenError("a TSA trust anchor is not a DER certificate") from None
    cert = _signer_cert(signer, [*certs, *anchor_certs])
    cert_der = cert.public_bytes(Encoding.DER)
    # T4: the signed attributes: content type, message digest, signing certificate.
    if signer["signed_attrs"].native is None:
        raise TokenError("the token has no signed attributes (RFC 3161 requires them)")
    attrs = {a["type"].native: a["values"] for a in signer["signed_attrs"]}
    if attrs.get("content_type") is None or \
            attrs["content_type"][0].dotted != _ID_CT_TSTINFO:
        raise TokenError("the signed content-type attribute is not id-ct-TSTInfo")
    digest_alg = signer["digest_algorithm"]["algorithm"].native
    h = _HASHES.get(digest_alg)
    if h is None:
        raise TokenError(f"digest algorithm {digest_alg} is not accepted")
    if attrs.get("message_digest") is None or \
            attrs["message_digest"][0].native != hashes_digest(h(), tst_der):
        raise TokenError("the signed message digest does not match the TSTInfo: the token "
                         "was altered")
    _check_ess(attrs, cert_der)
    # T5: the signature over the DER SET OF signed attributes.
    signed_bytes = signer["signed_attrs"].untag().dump()
    sig_alg = signer["signature_algorithm"]
    sig_algo = sig_alg.signature_algo
    try:
        sig_hash = sig_alg.hash_algo
    except ValueError:
        sig_hash = digest_alg
    _verify_sig(cert.public_key(), sig_algo, sig_hash, signer["signature"].native,
                signed_bytes, sig_alg["parameters"] if sig_algo == "rsassa_pss" else None)
    # T6: the certificate is a TSA's, valid at genTime.
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TokenError("the TSA certificate has no extended key usage; RFC 3161 requires "
                         "a critical id-kp-timeStamping") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TokenError("the TSA certificate's extended key usage is not a critical "
                         "id-kp-timeStamping only (RFC 3161 section 2.3)")
    if not _cert_valid_at(cert, gen_time_ns):
        raise TokenError("the TSA certificate was not valid at the token's time")
    # T7: trust: the certificate leads to an anchor, when anchors are given.
    anchored = bool(anchor_certs) and _chain_to_anchor(cert, certs, anchor_certs, gen_time_ns)
    if anchor_certs and not anchored:
        raise TokenUntrusted(f"the TSA certificate ({cert.subject.rfc4514_string()}) does "
                             "not lead to the trusted TSA certificate")
    tsa_name = None
    if tst["tsa"].native is not None:
        name = tst["tsa"]
        tsa_name = (name.chosen.human_friendly if name.name == "directory_name"
                    else str(name.native))
    return TokenInfo(gen_time_ns, accuracy_ns, hash_alg, imprint, tst["serial_number"].native,
                     tst["nonce"].native, tst["policy"].native, tsa_name,
                     cert.subject.rfc4514_string(), sha256_hex(cert_der), anchored)


# --- A camera's tokens ----------------------------------------------------------------------

@dataclass(frozen=True)
class Stamp:
    """A timestamp entry as the core found it (docs/FORMAT.md section 13.2)."""

    line: int
    seq: int
    checkpoint: str
    token: str  # base64
    utc_ns: int


@dataclass
class TimestampResult:
    tokens: int = 0
    valid: int = 0
    tsa: list[str] = field(default_factory=list)
    anchored: bool | None = None  # None: no anchor given
    proven_existence: list[dict[str, Any]] = field(default_factory=list)
    findings: list[FindingTuple] = field(default_factory=list)


def _linked(base: list[tuple[int, str, int]], linked: Sequence[Any], camera: str,
            out: TimestampResult) -> None:
    """Append the checkpoints carried after a clip's end (bundles): each must commit to
    the one before by ``prev_checkpoint``, which is all a timestamp needs."""
    for raw in linked:
        try:
            cp = entry_from_json(raw)
            h = sha256_hex(canonical_bytes(raw))
        except (RecordError, CanonicalError) as exc:
            out.findings.append(("timestamp_invalid", "error",
                                 f"a checkpoint carried for the timestamps is malformed: "
                                 f"{exc}", None, None, None, None))
            return
        if not isinstance(cp, Checkpoint) or cp.camera != camera or not base \
                or cp.prev_checkpoint != base[-1][1]:
            out.findings.append(("timestamp_mismatch", "error",
                                 "the checkpoints carried for the timestamps do not follow the "
                                 "clip's last checkpoint", None, None, None, None))
            return
        base.append((cp.seq, h, cp.utc_ns))


def check_timestamps(camera: str, stamps: Sequence[Stamp],
                     checkpoints: Sequence[tuple[int, str, int]],
                     frames: Sequence[tuple[int, int]], anchors: Sequence[bytes] | None,
                     linked: Sequence[Any] = ()) -> TimestampResult:
    """Step 6 (docs/FORMAT.md section 13.4). ``checkpoints``: (seq, entry hash, utc_ns)
    of the camera's checkpoint lines in log order (a bundle's anchor first); ``frames``:
    (seq, utc_ns) of the frame entries in chain order."""
    out = TimestampResult(anchored=None if anchors is None else False)
    if not stamps:
        if frames:
            out.proven_existence.append(_stretch(frames[0], frames[-1], None))
        return out
    order = list(checkpoints)
    _linked(order, linked, camera, out)
    pos_of = {h: i for i, (_, h, _) in enumerate(order)}
    best: dict[int, tuple[int, str]] = {}  # checkpoint position -> (genTime, TSA)
    anchored_any = False
    for st in stamps[:MAX_TOKENS]:
        out.tokens += 1
        where = f"timestamp (evidence line {st.line}) over checkpoint seq {st.seq}"
        pos = pos_of.get(st.checkpoint)
        if pos is None or order[pos][0] != st.seq:
            out.findings.append(("timestamp_mismatch", "error",
                                 f"{where}: no checkpoint of the evidence has that hash and "
                                 "seq", st.seq, st.seq, st.utc_ns, st.utc_ns))
            continue
        cp_seq, cp_hash, cp_utc = order[pos]
        try:
            info = inspect_token(base64.b64decode(st.token, validate=True), anchors or (),
                                 expected_imprint=bytes.fromhex(cp_hash))
        except TokenMismatch as exc:
            out.findings.append(("timestamp_mismatch", "error",
                                 f"{where}: {exc}: it does not prove that this checkpoint "
                                 "existed", cp_seq, cp_seq, cp_utc, cp_utc))
            continue
        except TokenUntrusted as exc:
            out.findings.append(("timestamp_untrusted", "error", f"{where}: {exc}",
                                 cp_seq, cp_seq, cp_utc, cp_utc))
            continue
        except (TokenError, ValueError) as exc:
            out.findings.append(("timestamp_invalid", "error", f"{where}: {exc}",
                                 cp_seq, cp_seq, cp_utc, cp_utc))
            continue
        out.valid += 1
        anchored_any |= info.anchored
        tsa = info.tsa_name or info.signer
        if tsa not in out.tsa:
            out.tsa.append(tsa)
        # The checkpoint existed by genTime, give or take the TSA's stated accuracy: the
        # bound reported is genTime + accuracy (the latest time it may mean).
        by = info.gen_time_ns + (info.accuracy_ns or 0)
        prev = best.get(pos)
        if prev is None or by < prev[0]:
            best[pos] = (by, tsa)
        slack = (info.accuracy_ns or 0) + CLOCK_AHEAD_TOLERANCE_NS
        if cp_utc > info.gen_time_ns + slack:
            out.findings.append((
                "clock_ahead_of_tsa", "info",
                f"checkpoint seq {cp_seq} was signed at {_iso(cp_utc)} by the recorder's "
                f"clock, but the TSA proves it existed by {_iso(info.gen_time_ns)}: the "
                f"recorder's clock was at least {(cp_utc - info.gen_time_ns - slack) / 1e9:.3f}"
                " s ahead", cp_seq, cp_seq, cp_utc, cp_utc))
    if anchors is not None:
        out.anchored = anchored_any and out.valid > 0
    elif out.valid:
        out.findings.append((
            "timestamp_unanchored", "info",
            f"{out.valid} timestamp tokens were checked against the TSA certificate they carry "
            f"({', '.join(out.tsa)[:200]}), not against a trusted TSA certificate (--tsa-cert)",
            None, None, None, None))
    # The latest time by which each checkpoint provably existed: the earliest genTime of a
    # valid token over it or over any later checkpoint (which commits to it).
    bound: list[tuple[int, str] | None] = [None] * len(order)
    running: tuple[int, str] | None = None
    for i in range(len(order) - 1, -1, -1):
        b = best.get(i)
        if b is not None and (running is None or b[0] < running[0]):
            running = b
        bound[i] = running
    cp_seqs = [s for s, _, _ in order]
    sorted_ok = all(a <= b for a, b in zip(cp_seqs, cp_seqs[1:], strict=False))
    cur: tuple[int, str] | None = None
    start: tuple[int, int] | None = None
    last: tuple[int, int] | None = None
    for fr in frames:
        i = bisect.bisect_left(cp_seqs, fr[0]) if sorted_ok else next(
            (k for k, s in enumerate(cp_seqs) if s >= fr[0]), len(cp_seqs))
        b = bound[i] if i < len(bound) else None
        if start is not None and b != cur:
            assert last is not None
            out.proven_existence.append(_stretch(start, last, cur))
            start = None
        if start is None:
            start, cur = fr, b
        last = fr
    if start is not None and last is not None:
        out.proven_existence.append(_stretch(start, last, cur))
    return out


_iso = iso_ns


def _stretch(first: tuple[int, int], last: tuple[int, int],
             bound: tuple[int, str] | None) -> dict[str, Any]:
    return {
        "first_frame": first[0], "last_frame": last[0],
        "first_utc_ns": first[1], "last_utc_ns": last[1],
        "by_utc_ns": None if bound is None else bound[0],
        "tsa": None if bound is None else bound[1],
        "proof": "rfc3161" if bound is not None else "recorder_clock_only",
    }


# --- Clock quality --------------------------------------------------------------------------

def clock_quality(records: Sequence[Any]) -> tuple[dict[str, Any], list[FindingTuple]]:
    """What the signed evidence says about the recorder's clock: the synchronization
    measured at each context (``context.clock.sync``), the offsets re-measured during the
    recording (``clock_offset`` events) and the jumps of the wall clock against the
    monotonic clock (``clock_jump`` events). docs/FORMAT.md section 14."""
    measured: list[dict[str, Any]] = []
    jumps: list[dict[str, Any]] = []
    findings: list[FindingTuple] = []
    override = False
    unsynced_noted = False
    for rec in records:
        if isinstance(rec, ContextRecord):
            clock = rec.context.get("clock")
            sync = clock.get("sync") if isinstance(clock, dict) else None
            if not isinstance(sync, dict):
                continue
            m = _measurement(sync, rec.seq, rec.utc_ns, "context")
            measured.append(m)
            override |= sync.get("allow_unsynced") is True
            if m["status"] != "synchronized" and not unsynced_noted:
                unsynced_noted = True
                findings.append((
                    "clock_unsynced", "info",
                    f"recording started with the clock {m['status']} "
                    f"({_describe(sync)}); the operator overrode the check "
                    "(--allow-unsynced-clock): the frame times are only as good as the "
                    "recorder's own clock", rec.seq, rec.seq, rec.utc_ns, rec.utc_ns))
        elif isinstance(rec, EventRecord) and rec.event == "clock_offset":
            m = _measurement(rec.detail, rec.seq, rec.utc_ns, "event")
            measured.append(m)
            findings.append(("clock_offset", "info",
                             f"clock re-measured: {_describe(rec.detail)}",
                             rec.seq, rec.seq, rec.utc_ns, rec.utc_ns))
        elif isinstance(rec, EventRecord) and rec.event == "clock_jump":
            jump = rec.detail.get("jump_ns")
            jumps.append({"seq": rec.seq, "utc_ns": rec.utc_ns,
                          "jump_ns": jump if isinstance(jump, int) else None})
            what = (f"{jump / 1e9:+.3f} s" if isinstance(jump, int) and not isinstance(jump, bool)
                    else "an unknown amount")
            findings.append(("clock_jump", "info",
                             f"the recorder's wall clock jumped by {what} against its "
                             "monotonic clock (signed clock_jump event)",
                             rec.seq, rec.seq, rec.utc_ns, rec.utc_ns))
    offsets = [m["offset_ns"] for m in measured if isinstance(m["offset_ns"], int)]
    statuses = {m["status"] for m in measured}
    summary = {
        "measured": bool(measured),
        "synchronized": None if not measured else statuses == {"synchronized"},
        "override": override,
        "max_abs_offset_ns": max((abs(o) for o in offsets), default=None),
        "measurements": measured,
        "jumps": jumps,
    }
    return summary, findings


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _measurement(sync: dict[str, Any], seq: int, utc_ns: int, where: str) -> dict[str, Any]:
    status = sync.get("status")
    return {"seq": seq, "utc_ns": utc_ns, "where": where,
            "status": status if isinstance(status, str) else "unknown",
            "server": sync.get("server") if isinstance(sync.get("server"), str) else None,
            "offset_ns": _int(sync.get("offset_ns")), "delay_ns": _int(sync.get("delay_ns")),
            "stratum": _int(sync.get("stratum")),
            "max_offset_ns": _int(sync.get("max_offset_ns"))}


def _describe(sync: dict[str, Any]) -> str:
    off, server = _int(sync.get("offset_ns")), sync.get("server")
    status = sync.get("status", "unknown")
    if off is None:
        return f"{status}: no NTP server answered"
    return (f"{status}: offset {off / 1e9:+.3f} s against {server} "
            f"(stratum {_int(sync.get('stratum'))})")
