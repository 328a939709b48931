"""Command-line pieces for keys and certificates, used by :mod:`vidproof.cli`:
``vidproof ca init|revoke|crl``, ``vidproof device enroll``, and the key flags of
``record`` and ``export``. Thin: parse, call :mod:`.ca` / :mod:`vidproof.keys`, print."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .keytypes import ED25519

ALG_HELP = "key algorithm: ed25519 (default) or p256 (ECDSA P-256, for hardware tokens)"


def _alg(text: str) -> str:
    from ..keys import ALG_CHOICES

    try:
        return ALG_CHOICES[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ed25519 or p256") from None


def _time(text: str) -> int:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time, e.g. "
                                         "2026-11-26T14:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +01:00")
    from .crl import dt_ns  # here: datetime and the CRL code are not every command's

    return dt_ns(value)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < 10**9:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more seconds")
    return value


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 0 < value <= 36500:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 to 36500 days")
    return value


def add_key_flags(p: argparse.ArgumentParser, *, rotation: bool = False) -> None:
    """``--cert`` and the key's passphrase; for ``record``, the rotation flags too."""
    p.add_argument("--cert", type=Path,
                   help="the key's certificate chain (PEM, device certificate first, e.g. "
                        "device.pem from 'vidproof device enroll'): written into the evidence")
    p.add_argument("--key-passphrase-file", type=Path, metavar="FILE",
                   help="file whose first line unlocks the key: an encrypted PEM's "
                        "passphrase or a PKCS#11 token's PIN (or $VIDPROOF_KEY_PASSPHRASE)")
    if rotation:
        g = p.add_argument_group("key rotation (also: replace --key/--cert and send SIGHUP)")
        g.add_argument("--rotate-key", metavar="KEY",
                       help="rotate to this key (PEM file or pkcs11: URI) at the first "
                            "keyframe, signed by --key")
        g.add_argument("--rotate-cert", type=Path, metavar="PEM",
                       help="the certificate chain of --rotate-key")
        g.add_argument("--rotate-after", type=_seconds, default=0.0, metavar="SECONDS",
                       help="rotate after this much footage instead of at once")


def add_commands(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """The ``ca`` and ``device`` commands."""
    ca = sub.add_parser("ca", help="the operator's certificate authority for device keys")
    csub = ca.add_subparsers(dest="ca_command", required=True, parser_class=parser_class)
    ci = csub.add_parser("init", help="make a CA: DIR/ca.pem (the trust anchor), DIR/ca.key")
    ci.add_argument("--out", required=True, type=Path)
    ci.add_argument("--name", default="vidproof operator CA", help="the CA's common name")
    ci.add_argument("--alg", type=_alg, default=ED25519, help=ALG_HELP)
    ci.add_argument("--days", type=_days, default=3650)
    ci.add_argument("--ca-passphrase-file", type=Path, metavar="FILE",
                    help="encrypt ca.key with this passphrase (or $VIDPROOF_CA_PASSPHRASE)")
    cr = csub.add_parser("revoke", help="revoke a device certificate")
    cr.add_argument("--ca", required=True, type=Path, help="the CA directory")
    cr.add_argument("--cert", required=True, type=Path, help="the device certificate (PEM)")
    cr.add_argument("--date", type=_time,
                    help="from when the key is not to be trusted (ISO 8601; default now): "
                         "footage signed before stays valid")
    cr.add_argument("--reason", default="keyCompromise",
                    help="RFC 5280 reason: keyCompromise, superseded, cessationOfOperation…")
    cr.add_argument("--ca-passphrase-file", type=Path, metavar="FILE")
    cc = csub.add_parser("crl", help="write the CA's signed certificate revocation list")
    cc.add_argument("--ca", required=True, type=Path)
    cc.add_argument("--out", required=True, type=Path)
    cc.add_argument("--days", type=_days, default=7, help="until the next CRL is due")
    cc.add_argument("--ca-passphrase-file", type=Path, metavar="FILE")

    dv = sub.add_parser("device", help="device keys and certificates")
    dsub = dv.add_subparsers(dest="device_command", required=True, parser_class=parser_class)
    de = dsub.add_parser("enroll", help="make a device key and its certificate from the CA")
    de.add_argument("--ca", required=True, type=Path, help="the CA directory")
    de.add_argument("--recorder-id", required=True, help="the certificate's common name")
    de.add_argument("--out", required=True, type=Path,
                    help="directory for device.key (0600), device.pem, device.pub")
    de.add_argument("--alg", type=_alg, default=None, help=ALG_HELP)
    de.add_argument("--days", type=_days, default=825)
    de.add_argument("--not-before", type=_time, help="validity start (default: now)")
    de.add_argument("--not-after", type=_time, help="validity end (default: now + --days)")
    de.add_argument("--key", metavar="pkcs11:URI",
                    help="certify the key in this PKCS#11 token (made there if absent) "
                         "instead of writing device.key")
    de.add_argument("--key-passphrase-file", type=Path, metavar="FILE",
                    help="encrypt device.key with this passphrase (the token PIN with "
                         "--key); or $VIDPROOF_KEY_PASSPHRASE")
    de.add_argument("--ca-passphrase-file", type=Path, metavar="FILE")


def _open_ca(args: argparse.Namespace) -> Any:
    from ..keys import passphrase_from
    from .ca import CA_PASSPHRASE_ENV, open_ca

    return open_ca(args.ca, passphrase_from(args.ca_passphrase_file, CA_PASSPHRASE_ENV))


def ca_command(args: argparse.Namespace) -> int:
    from ..keys import passphrase_from
    from .ca import CA_PASSPHRASE_ENV, init_ca, make_crl, revoke
    from .crl import iso

    now = time.time_ns()
    if args.ca_command == "init":
        pem, key = init_ca(args.out, now, name=args.name, alg=args.alg, days=args.days,
                           passphrase=passphrase_from(args.ca_passphrase_file,
                                                      CA_PASSPHRASE_ENV))
        print(f"wrote {pem} (give it to verifiers: --trust {pem}) and {key} (keep it secret)")
    elif args.ca_command == "revoke":
        entry = revoke(_open_ca(args), args.cert, now, date_ns=args.date, reason=args.reason)
        print(f"revoked certificate serial {entry['serial']} ({entry['subject']}) from "
              f"{entry['invalid_from']}; publish a new CRL with 'vidproof ca crl'")
    else:
        out = make_crl(_open_ca(args), args.out, now, args.days)
        print(f"wrote {out} (CRL of {iso(now)})")
    return 0


def device_command(args: argparse.Namespace) -> int:
    from ..keys import passphrase_from
    from .ca import enroll

    ca = _open_ca(args)
    alg = args.alg
    if alg is None:
        from .keytypes import ECDSA_P256

        alg = ECDSA_P256 if args.key else ED25519
    if args.key is not None and not str(args.key).startswith("pkcs11:"):
        raise UsageError("device enroll --key takes a pkcs11: URI (a key made in a token); "
                         "without it the key is written to OUT/device.key")
    secret = passphrase_from(args.key_passphrase_file)
    key, pem = enroll(ca, args.recorder_id, args.out, time.time_ns(), alg=alg,
                      days=args.days, not_before_ns=args.not_before,
                      not_after_ns=args.not_after, passphrase=None if args.key else secret,
                      token_uri=args.key, token_secret=secret)
    where = f"{key}" if key is not None else f"the token ({args.key.split('?')[0]})"
    print(f"enrolled {args.recorder_id}: key in {where}, certificate chain {pem}")
    return 0


def signer_from_args(args: argparse.Namespace) -> Any:
    """``--key`` (file or pkcs11: URI), ``--cert``, ``--key-passphrase-file``."""
    from ..keys import load_signer, passphrase_from

    secret = passphrase_from(getattr(args, "key_passphrase_file", None))
    return load_signer(args.key, passphrase=secret, cert=getattr(args, "cert", None))


def rotation_from_args(args: argparse.Namespace, signer: Any) -> Any:
    """The recorder's :class:`~.rotation.KeyRotation` (SIGHUP, and ``--rotate-key``);
    refuses to start a camera whose chain another key signed (it must rotate instead)."""
    from ..chain import last_signing_key
    from ..keys import load_signer, passphrase_from
    from ..store import camera_dir
    from .rotation import KeyRotation

    secret = passphrase_from(args.key_passphrase_file)
    if args.rotate_cert is not None and args.rotate_key is None:
        raise UsageError("--rotate-cert applies with --rotate-key only")
    if args.rotate_after and args.rotate_key is None:
        raise UsageError("--rotate-after applies with --rotate-key only")
    rotate_to = None
    if args.rotate_key is not None:
        rotate_to = load_signer(args.rotate_key, passphrase=secret, cert=args.rotate_cert)
        if rotate_to.key_id == signer.key_id:
            raise UsageError("--rotate-key is the same key as --key")
    last = last_signing_key(camera_dir(args.store, args.camera_id))
    if last is not None and last != signer.key_id:
        raise UsageError(
            f"camera {args.camera_id}'s evidence is signed by key {last[:16]}…, and --key is "
            f"key {signer.key_id[:16]}…: a new key must be introduced by the old one (record "
            "with --key OLD --rotate-key NEW)")
    return KeyRotation(args.key, args.cert, secret, args.store, rotate_to, args.rotate_key,
                       args.rotate_cert, args.rotate_after)
