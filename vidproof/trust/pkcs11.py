"""Keys in a PKCS#11 token (an HSM, a smart card, SoftHSM2): they sign, they never leave.

A key is named by a PKCS#11 URI (RFC 7512), e.g.::

    pkcs11:token=vidproof;object=cam-entrance?module-path=/usr/lib/softhsm/libsofthsm2.so

- path attributes (``;``-separated): ``token`` (label) or ``serial``, ``object`` (the key
  label) and/or ``id`` (percent-encoded bytes);
- query attributes (``&``-separated): ``module-path`` (the PKCS#11 library; otherwise
  ``$VIDPROOF_PKCS11_MODULE``), ``pin-source=file:/path`` (a file holding the user PIN).

The user PIN comes from ``pin-source``, else from ``--key-passphrase-file`` or
``$VIDPROOF_KEY_PASSPHRASE`` (the secret that unlocks the key), else from
``$VIDPROOF_PKCS11_PIN``. ``pin-value`` is refused: the URI is written to
``STORE/recorder.json`` and may appear in logs, and the PIN must not.

Supported keys: ECDSA P-256 (``CKM_ECDSA`` over a SHA-256 digest computed here; the
token returns ``r || s``, which is the signature format of vidproof) and Ed25519
(``CKM_EDDSA``). A key generated here (``device enroll --key pkcs11:…``) is made in the
token as sensitive and not extractable.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ..errors import KeyFormatError, UsageError
from .keytypes import ECDSA_P256, ED25519, PublicKey, alg_of

MODULE_ENV = "VIDPROOF_PKCS11_MODULE"
PIN_ENV = "VIDPROOF_PKCS11_PIN"
_PATH_ATTRS = {"token", "serial", "object", "id", "manufacturer", "model", "type",
               "slot-id", "slot-description", "library-description"}
_QUERY_ATTRS = {"module-path", "pin-source", "pin-value", "module-name"}


@dataclass(frozen=True)
class TokenUri:
    token: str | None
    serial: str | None
    label: str | None
    key_id: bytes | None
    module: str | None
    pin_source: str | None

    def describe(self) -> str:
        """The URI without anything secret (there is nothing secret in it)."""
        parts = [f"{k}={v}" for k, v in (("token", self.token), ("serial", self.serial),
                                          ("object", self.label)) if v]
        if self.key_id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.key_id))
        return "pkcs11:" + ";".join(parts)


def parse_uri(uri: str) -> TokenUri:
    if not uri.startswith("pkcs11:"):
        raise UsageError(f"{uri!r} is not a pkcs11: URI")
    body = uri[len("pkcs11:"):]
    path, _, query = body.partition("?")
    attrs: dict[str, str] = {}
    raw_id: bytes | None = None
    for part in filter(None, path.split(";")):
        name, eq, value = part.partition("=")
        if not eq or name not in _PATH_ATTRS:
            raise UsageError(f"PKCS#11 URI: unknown or malformed attribute {part!r}; "
                             "expected e.g. pkcs11:token=LABEL;object=KEY")
        if name == "id":
            raw_id = unquote_to_bytes(value)
        else:
            attrs[name] = unquote(value)
    for part in filter(None, query.split("&")):
        name, eq, value = part.partition("=")
        if not eq or name not in _QUERY_ATTRS:
            raise UsageError(f"PKCS#11 URI: unknown or malformed query attribute {part!r}")
        if name == "pin-value":
            raise UsageError("PKCS#11 URI: pin-value is refused, the PIN would be written "
                             "with the URI; use pin-source=file:PATH or "
                             "$VIDPROOF_KEY_PASSPHRASE")
        attrs[name] = unquote(value)
    if "object" not in attrs and raw_id is None:
        raise UsageError("PKCS#11 URI: name the key with object=LABEL or id=…")
    if "token" not in attrs and "serial" not in attrs:
        raise UsageError("PKCS#11 URI: name the token with token=LABEL or serial=…")
    return TokenUri(attrs.get("token"), attrs.get("serial"), attrs.get("object"), raw_id,
                    attrs.get("module-path"), attrs.get("pin-source"))


def _pin(uri: TokenUri, secret: bytes | None) -> str:
    if uri.pin_source is not None:
        src = uri.pin_source.removeprefix("file:")
        try:
            lines = Path(src).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the token PIN from {src}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        if not lines or not lines[0]:
            raise UsageError(f"the PIN file {src} is empty")
        return lines[0]
    if secret is None:
        from ..keys import passphrase_from

        secret = passphrase_from(None)
    if secret is None:
        env = os.environ.get(PIN_ENV)
        secret = env.encode("utf-8") if env else None
    if secret is None:
        raise UsageError(f"{uri.describe()}: no PIN for the token; give pin-source=file:PATH "
                         f"in the URI, --key-passphrase-file, or ${PIN_ENV}")
    return secret.decode("utf-8")


def _module(uri: TokenUri) -> str:
    module = uri.module or os.environ.get(MODULE_ENV)
    if not module:
        raise UsageError(f"{uri.describe()}: which PKCS#11 library? add "
                         f"?module-path=/path/to/lib.so to the URI or set ${MODULE_ENV}")
    if not Path(module).is_file():
        raise UsageError(f"PKCS#11 library {module} does not exist")
    return module


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise UsageError("PKCS#11 keys need the python-pkcs11 package "
                         "(pip install 'vidproof[hsm]')") from None
    return pkcs11


def _open_session(uri: TokenUri, secret: bytes | None, rw: bool = False) -> tuple[Any, Any]:
    p11 = _pkcs11()
    module = _module(uri)
    pin = _pin(uri, secret)
    try:
        lib = p11.lib(module)
        kwargs = {"token_label": uri.token} if uri.token else {"token_serial": uri.serial}
        token = lib.get_token(**kwargs)
        session = token.open(user_pin=pin, rw=rw)
    except p11.exceptions.NoSuchToken:
        raise UsageError(f"{uri.describe()}: no such token in {module}") from None
    except p11.exceptions.MultipleTokensReturned:
        raise UsageError(f"{uri.describe()}: several tokens match; name it by serial") from None
    except p11.exceptions.PinIncorrect:
        raise UsageError(f"{uri.describe()}: the token refused the PIN") from None
    except p11.exceptions.PinLocked:
        raise UsageError(f"{uri.describe()}: the token's PIN is locked") from None
    except (p11.exceptions.PKCS11Error, RuntimeError, OSError) as exc:
        raise UsageError(f"{uri.describe()}: cannot open the token "
                         f"({type(exc).__name__} {exc})") from None
    return lib, session


def _find(session: Any, uri: TokenUri, object_class: Any) -> Any:
    p11 = _pkcs11()
    query: dict[str, Any] = {"object_class": object_class}
    if uri.label is not None:
        query["label"] = uri.label
    if uri.key_id is not None:
        query["id"] = uri.key_id
    try:
        return session.get_key(**query)
    except p11.exceptions.NoSuchKey:
        return None
    except p11.exceptions.MultipleObjectsReturned:
        raise UsageError(f"{uri.describe()}: several keys match; add id=… to the URI") from None


def _public_from(pub: Any, key_type: Any) -> PublicKey:
    p11 = _pkcs11()
    from pkcs11.util.ec import encode_ec_public_key

    if key_type == p11.KeyType.EC:
        public = load_der_public_key(encode_ec_public_key(pub))
    else:
        point = bytes(pub[p11.Attribute.EC_POINT])
        if len(point) == 34 and point[:2] == b"\x04\x20":  # DER OCTET STRING of 32 bytes
            point = point[2:]
        public = Ed25519PublicKey.from_public_bytes(point)
    alg_of(public)
    assert isinstance(public, Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return public


class Pkcs11Key:
    """A token-held private key: :meth:`sign_raw` asks the token; nothing else is read."""

    def __init__(self, uri: TokenUri, lib: Any, session: Any, private: Any,
                 public: PublicKey) -> None:
        self.uri = uri
        self._lib, self._session, self._private = lib, session, private
        self._public = public
        self.alg = alg_of(public)

    def public_key(self) -> PublicKey:
        return self._public

    def sign_raw(self, data: bytes) -> bytes:
        p11 = _pkcs11()
        try:
            if self.alg == ECDSA_P256:
                sig = self._private.sign(hashlib.sha256(data).digest(),
                                         mechanism=p11.Mechanism.ECDSA)
            else:
                sig = self._private.sign(data, mechanism=p11.Mechanism.EDDSA)
        except p11.exceptions.PKCS11Error as exc:
            raise UsageError(f"{self.uri.describe()}: the token did not sign "
                             f"({type(exc).__name__})") from None
        return bytes(sig)

    def __repr__(self) -> str:
        return f"Pkcs11Key({self.uri.describe()}, {self.alg})"


def open_token_key(uri_text: str, secret: bytes | None = None) -> Pkcs11Key:
    uri = parse_uri(uri_text)
    p11 = _pkcs11()
    lib, session = _open_session(uri, secret)
    private = _find(session, uri, p11.ObjectClass.PRIVATE_KEY)
    if private is None:
        raise UsageError(f"{uri.describe()}: no such private key in the token")
    pub = _find(session, uri, p11.ObjectClass.PUBLIC_KEY)
    if pub is None:
        raise UsageError(f"{uri.describe()}: the token has no public key object beside the "
                         "private key")
    key_type = private.key_type
    if key_type not in (p11.KeyType.EC, p11.KeyType.EC_EDWARDS):
        raise KeyFormatError(f"{uri.describe()}: the key is {key_type.name}; expected ECDSA "
                             "P-256 or Ed25519")
    try:
        public = _public_from(pub, key_type)
    except (KeyFormatError, ValueError) as exc:
        raise KeyFormatError(f"{uri.describe()}: {exc}") from None
    return Pkcs11Key(uri, lib, session, private, public)


def generate_token_key(uri_text: str, secret: bytes | None = None,
                       alg: str = ECDSA_P256) -> Pkcs11Key:
    """Make a new key pair in the token (sensitive, not extractable) under the URI's
    label and id; refuses when a key is already there."""
    uri = parse_uri(uri_text)
    if alg != ECDSA_P256:
        raise UsageError(f"keys made in a token are ECDSA P-256 here, not {alg}")
    if uri.label is None:
        raise UsageError("to make a key in a token, name it with object=LABEL")
    p11 = _pkcs11()
    from pkcs11.util.ec import encode_named_curve_parameters

    lib, session = _open_session(uri, secret, rw=True)
    if _find(session, uri, p11.ObjectClass.PRIVATE_KEY) is not None:
        raise UsageError(f"{uri.describe()}: a key with that label is already in the token")
    attr = p11.Attribute
    try:
        params = session.create_domain_parameters(
            p11.KeyType.EC, {attr.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True)
        key_id = uri.key_id or os.urandom(8)
        params.generate_keypair(
            store=True, label=uri.label, id=key_id,
            private_template={attr.SENSITIVE: True, attr.EXTRACTABLE: False,
                              attr.SIGN: True, attr.TOKEN: True, attr.PRIVATE: True},
            public_template={attr.VERIFY: True, attr.TOKEN: True})
    except p11.exceptions.PKCS11Error as exc:
        raise UsageError(f"{uri.describe()}: the token could not make the key "
                         f"({type(exc).__name__})") from None
    session.close()
    return open_token_key(uri_text, secret)


def token_key_for_enrollment(uri_text: str, secret: bytes | None = None,
                             alg: str = ECDSA_P256) -> tuple[Pkcs11Key, bool]:
    """The key to certify: the token's key under the URI if there is one (made by the
    token's own tools), else a new one made in the token. Returns (key, made here)."""
    uri = parse_uri(uri_text)
    p11 = _pkcs11()
    _, session = _open_session(uri, secret)
    exists = _find(session, uri, p11.ObjectClass.PRIVATE_KEY) is not None
    session.close()
    if exists:
        return open_token_key(uri_text, secret), False
    return generate_token_key(uri_text, secret, alg), True


__all__ = ["ED25519", "Pkcs11Key", "TokenUri", "generate_token_key", "open_token_key",
           "parse_uri", "token_key_for_enrollment"]
