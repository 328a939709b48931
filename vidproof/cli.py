"""The command line: parses, calls the library, renders, and turns errors into exit codes.

Exit codes (docs/FORMAT.md, DESIGN.md section 3): ``verify`` exits 0 when the
evidence is authentic and complete, 1 when it is not, 2 when it could not be
checked. Other commands exit 0 on success and 2 on any error.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import CouldNotVerify, Error, UsageError

EXIT_OK, EXIT_NOT_AUTHENTIC, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every argument added (to check it); each one asks
        # shutil for the terminal's width, which imports shutil and the compression modules
        # it imports at every start-up. The width, found as shutil finds it, is given here.
        formatter: Any = self.formatter_class  # (typeshed's protocol for it has no width)
        return formatter(prog=self.prog, width=_help_width())  # type: ignore[no-any-return]


@functools.cache
def _help_width() -> int:
    """``shutil.get_terminal_size().columns - 2``, as argparse's help formatter takes it."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__
        try:
            columns = 0 if stdout is None else os.get_terminal_size(stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class _Unused:
    """The parser of a command that is not the one being run: what is added to it is never
    parsed, so it is not built (building every command's arguments costs more start-up
    time than anything else the CLI does before it starts working)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """Subcommands where only ``only`` gets a real parser (None: all of them, e.g. for
    ``vidproof --help`` or an unknown command, whose error lists them all)."""

    def __init__(self, sub: Any, only: str | None) -> None:
        self._sub, self._only = sub, only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self._only is None or name == self._only:
            return self._sub.add_parser(name, **kwargs)
        return _Unused()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
    return value


def _bitrate(text: str) -> int:
    """``2000000``, ``2000k`` or ``2M`` (bits per second)."""
    scale = {"k": 1000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bitrate (e.g. 2M, 800k)") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive bitrate")
    return round(value)


_ENCODING_FLAGS = ("codec", "preset", "crf", "bitrate", "gop", "stamp_corner", "stamp_style",
                   "timezone")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser; with ``only``, the parser of that command only."""
    p = _Parser(prog="vidproof", description="Forensic video recording and verification")
    p.add_argument("--version", action="version", version=f"vidproof {__version__}")
    sub: Any = _OnlyCommand(p.add_subparsers(dest="command", required=True,
                                             parser_class=_Parser), only)

    from .trust.commands import ALG_HELP, add_commands, add_key_flags

    k = sub.add_parser("keygen", help="make an Ed25519 device key pair")
    k.add_argument("--out", required=True, type=Path, help="directory for device.key/.pub")
    k.add_argument("--alg", choices=("ed25519", "p256"), default="ed25519", help=ALG_HELP)
    k.add_argument("--key-passphrase-file", type=Path, metavar="FILE",
                   help="encrypt device.key with this passphrase (or $VIDPROOF_KEY_PASSPHRASE)")
    add_commands(sub, _Parser)
    from .retention_cli import add_commands as add_hold_commands

    add_hold_commands(sub, _Parser)

    r = sub.add_parser("record", help="record a camera into a store, signing as it goes")
    r.add_argument("--source", required=True,
                   help="testsrc[:WxH@FPS], a media file, rtsp://… or rtsps://…, or (with "
                        "--stamp) device:/dev/videoN[:WxH[@FPS]]")
    r.add_argument("--camera-id", required=True)
    r.add_argument("--location", required=True, help='"LABEL;LAT,LON"')
    r.add_argument("--key", required=True, type=Path,
                   help="device private key (PEM), or pkcs11:token=…;object=… (a token key)")
    add_key_flags(r, rotation=True)
    r.add_argument("--store", required=True, type=Path)
    r.add_argument("--duration", type=_positive, help="seconds to record")
    r.add_argument("--fast", action="store_true",
                   help="do not pace file and testsrc sources at real time")
    r.add_argument("--stamp", action="store_true", help="burn in date, time and location")
    r.add_argument("--segment-seconds", type=_positive, default=60.0)
    r.add_argument("--status-file", type=Path, help="write health for a supervisor here")
    r.add_argument("--retention-days", type=_positive, metavar="DAYS",
                   help="destroy closed segments older than this (at most 30 days: decree of "
                        "3 August 2007); each destruction is signed, journaled and registered")
    r.add_argument("--retention-override", action="store_true",
                   help="allow --retention-days above 30 (a site with a legal exception)")
    r.add_argument("--tls-ca", type=Path,
                   help="CA certificate (PEM) that an rtsps:// camera must present; without "
                        "it the camera's certificate is not checked")
    r.add_argument("--wide-shot", action="store_true",
                   help="the camera does not film people close up (lower decree minimums)")
    r.add_argument("--allow-below-minimum", action="store_true",
                   help="record even below the decree's minimum profile (recorded as an "
                        "override in the evidence)")
    tt = r.add_argument_group("trusted time (RFC 3161 timestamps, NTP clock discipline)")
    tt.add_argument("--tsa", metavar="URL",
                    help="time-stamp authority (RFC 3161 over HTTP): checkpoints get tokens")
    tt.add_argument("--tsa-interval", type=_positive, default=60.0, metavar="SECONDS",
                    help="how often a checkpoint is time-stamped (default 60)")
    tt.add_argument("--tsa-cert", type=Path,
                    help="the TSA's certificate or its CA (PEM): tokens are checked on arrival")
    tt.add_argument("--ntp", action="append", metavar="HOST[:PORT]",
                    help="NTP server to measure the clock against (repeatable)")
    tt.add_argument("--max-clock-offset-ms", type=_positive, metavar="N",
                    help="refuse to record when the clock is off by more (default 500)")
    tt.add_argument("--allow-unsynced-clock", action="store_true",
                    help="record even when the clock cannot be checked or is off (recorded "
                         "in the signed evidence)")
    tt.add_argument("--ntp-interval", type=_positive, default=60.0, metavar="SECONDS",
                    help="how often the clock is measured again while recording (default 60)")
    enc = r.add_argument_group("transcode mode (--stamp)")
    enc.add_argument("--codec", choices=("libx264", "libx265"),
                     help="encoder (default libx264)")
    enc.add_argument("--preset", help="encoder preset (default veryfast)")
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("--crf", type=int, help="constant quality, 0..51 (default 23; x265 28)")
    rate.add_argument("--bitrate", type=_bitrate, help="constant bitrate, e.g. 2M or 800k")
    enc.add_argument("--gop", type=int, help="frames between keyframes (default: 1 s; at "
                                             "most 2 s)")
    enc.add_argument("--stamp-corner", choices=("top-left", "top-right", "bottom-left",
                                                "bottom-right"),
                     help="where the stamp goes (default bottom-left)")
    enc.add_argument("--stamp-style", choices=("box", "outline"),
                     help="text on a dark box (default) or outlined")
    enc.add_argument("--timezone", help="IANA zone of the stamp's local time (default: this "
                                        "machine's)")

    x = sub.add_parser("export", help="export a certified clip of a camera and time range")
    x.add_argument("--store", required=True, type=Path)
    x.add_argument("--camera", required=True)
    x.add_argument("--from", dest="start", required=True, help="ISO 8601, e.g. 2026-11-26T14:00:00Z")
    x.add_argument("--to", dest="end", required=True, help="ISO 8601")
    x.add_argument("--out", required=True, type=Path, help="the bundle, BUNDLE.zip")
    x.add_argument("--case", required=True)
    x.add_argument("--officer", required=True, help="who exports (written to the export log)")
    x.add_argument("--reason", default="")
    x.add_argument("--key", type=Path,
                   help="recorder key that signs the export log (default: the key the store "
                        "was recorded with, from STORE/recorder.json)")
    add_key_flags(x)
    x.add_argument("--crl", type=Path, action="append", default=[],
                   help="a CRL (PEM) of the device CA to carry in the bundle (repeatable)")
    x.add_argument("--timezone", help="local time zone shown beside UTC (default: this machine's)")

    sv = sub.add_parser("serve", help="run the recorder service: cameras, web UI and API")
    sv.add_argument("--config", required=True, type=Path, help="site configuration (TOML)")
    sv.add_argument("--data", type=Path, help="storage directory (overrides the config)")
    sv.add_argument("--users", type=Path, help="users file (overrides the config)")
    sv.add_argument("--host", help="address to listen on (default from the config)")
    sv.add_argument("--port", type=int, help="port to listen on (default from the config)")

    u = sub.add_parser("user", help="manage service users")
    usub = u.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    ua = usub.add_parser("add", help="add a user, or set an existing user's role and password")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, help="installer, operator, police or auditor")
    ua.add_argument("--password-file", required=True, type=Path)
    ua.add_argument("--users", type=Path, default=Path("users.json"))

    j = sub.add_parser("journal", help="the operations journal")
    jsub = j.add_subparsers(dest="journal_command", required=True, parser_class=_Parser)
    jv = jsub.add_parser("verify", help="check every journal entry's signature and chain")
    jv.add_argument("path", type=Path, help="a store directory or its journal.jsonl")
    jv.add_argument("--trust", required=True, type=Path, help="recorder public key PEM")

    mt = sub.add_parser("match", help="find which certified frames a transcoded copy shows "
                                      "(a perceptual match, not proof of integrity)")
    mt.add_argument("copy", type=Path, help="the working copy (any codec, bitrate or size)")
    mt.add_argument("--evidence", required=True, type=Path,
                    help="the store directory or export bundle it was made from")
    mt.add_argument("--camera", help="the camera, when the store holds several")
    mt.add_argument("--trust", type=Path,
                    help="also verify the evidence with this public key or CA certificate")
    mt.add_argument("--threshold", type=_positive, default=None,
                    help="largest fingerprint distance that matches (luma levels, default 6)")
    mt.add_argument("--json", action="store_true", help="print one JSON object")

    v = sub.add_parser("verify", help="verify a store or an export bundle, offline")
    v.add_argument("path", type=Path)
    v.add_argument("--trust", required=True, type=Path, help="public key or CA certificate PEM")
    v.add_argument("--crl", type=Path, action="append", default=[],
                   help="a CRL (PEM) signed by the --trust CA (repeatable)")
    v.add_argument("--camera")
    v.add_argument("--media", type=Path, help="a working copy of the clip to check")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--report", type=Path, help="also write an HTML report here")
    v.add_argument("--tsa-cert", type=Path, action="append",
                   help="trusted TSA certificate or its CA (PEM) for the timestamp tokens")
    return p


def _keygen(args: argparse.Namespace) -> int:
    from .keys import ALG_CHOICES, generate, passphrase_from

    key, pub = generate(args.out, ALG_CHOICES[args.alg], passphrase_from(args.key_passphrase_file))
    print(f"wrote {key} and {pub}")
    return EXIT_OK


def _trusted_time(args: argparse.Namespace) -> dict[str, Any]:
    """RecordSettings' ``tsa`` and ``clock_sync`` from the trusted-time flags."""
    from .timestamp.clock import ClockSettings

    out: dict[str, Any] = {}
    if args.tsa:
        from .timestamp.tsa import TsaSettings  # asn1crypto and HTTP: only when asked for

        out["tsa"] = TsaSettings.make(args.tsa, args.tsa_interval, args.tsa_cert)
    elif args.tsa_cert:
        raise UsageError("--tsa-cert applies with --tsa only")
    if args.ntp:
        out["clock_sync"] = ClockSettings.make(
            args.ntp, args.max_clock_offset_ms or 500.0, args.allow_unsynced_clock,
            args.ntp_interval)
    elif args.allow_unsynced_clock or args.max_clock_offset_ms:
        raise UsageError("--allow-unsynced-clock and --max-clock-offset-ms apply with --ntp "
                         "only")
    return out


def _record(args: argparse.Namespace) -> int:
    from .capture.worker import Recorder, RecordSettings
    from .model import Location, RecordError, check_camera_id
    from .store import remember_recorder_key

    given = [f for f in _ENCODING_FLAGS if getattr(args, f) is not None]
    if given and not args.stamp:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} applies to transcode mode only: add --stamp (without it "
                         "the camera's stream is recorded bit-exact)")
    if not args.stamp and args.source.startswith("device:"):
        raise UsageError(f"source {args.source!r}: local devices deliver raw frames; record "
                         "them with --stamp (transcode mode)")
    try:
        check_camera_id(args.camera_id)
        location = Location.parse(args.location)
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    from .trust.commands import rotation_from_args, signer_from_args

    signer = signer_from_args(args)
    rotation = rotation_from_args(args, signer)
    trusted_time = _trusted_time(args)
    from .retention import MAX_RETENTION_DAYS

    if args.retention_days is not None and args.retention_days > MAX_RETENTION_DAYS \
            and not args.retention_override:
        raise UsageError(f"--retention-days {args.retention_days:g} exceeds the legal maximum "
                         f"of {MAX_RETENTION_DAYS} days (decree of 3 August 2007); add "
                         "--retention-override only where a legal exception applies")
    if args.store.exists() and not args.store.is_dir():
        raise UsageError(f"--store {args.store} exists and is not a directory")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: rotation.request_reload())
    remember_recorder_key(args.store, args.key)
    source = args.source
    if source.startswith("env:"):
        # A supervisor passes camera URLs with credentials this way, not on the command line.
        source = os.environ.get(source[4:], "")
        if not source:
            raise UsageError(f"--source {args.source}: that environment variable is not set")
    transcode = None
    if args.stamp:
        from .encode import EncoderSettings, TranscodeSettings
        from .stamp import StampStyle

        encoder = EncoderSettings(args.codec or "libx264", args.preset or "veryfast",
                                  args.crf, args.bitrate, args.gop)
        style = StampStyle(corner=args.stamp_corner or "bottom-left",
                           kind=args.stamp_style or "box")
        transcode = TranscodeSettings(args.camera_id, location, encoder, style, args.timezone,
                                      args.wide_shot, args.allow_below_minimum)
        transcode.tzinfo()  # an unknown zone is refused before anything starts
    settings = RecordSettings(source, args.camera_id, location, args.store,
                              args.duration, args.fast, args.segment_seconds, args.status_file,
                              args.tls_ca, transcode, args.wide_shot, args.allow_below_minimum,
                              **trusted_time, retention_days=args.retention_days)
    recorder = Recorder(settings, signer, stop=lambda: stopping)
    recorder.rotation = rotation
    _resume_gc()  # the recorder runs for days
    result = recorder.run()
    print(f"recorded {result.frames} frames in {result.segments} segments, "
          f"{result.checkpoints} signed checkpoints, {result.events} camera events")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    import time

    from .export import ExportRequest, export, parse_time
    from .keys import load_signer
    from .store import recorder_key_path
    from .timefmt import iso_ns

    key = args.key or recorder_key_path(args.store)
    if key is None:
        raise UsageError(f"no --key given and {args.store}/recorder.json names no recorder key")
    req = ExportRequest(args.store, args.camera, parse_time(args.start, "--from"),
                        parse_time(args.end, "--to"), args.out, args.case, args.officer,
                        args.reason, args.timezone, crls=tuple(args.crl))
    from .keys import passphrase_from

    signer = load_signer(key, passphrase=passphrase_from(args.key_passphrase_file),
                         cert=args.cert)
    result = export(req, signer, time.time_ns())
    print(f"exported {result.frames} frames, {iso_ns(result.first_utc_ns)} to "
          f"{iso_ns(result.last_utc_ns)}, to {result.bundle} (verification at export: "
          f"{result.verdict})")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .keys import generate, load_signer
    from .service.app import create_app
    from .service.config import load_config
    from .service.context import Service
    from .service.supervisor import Supervisor

    config = load_config(args.config, args.data, args.users)
    if not config.key.exists():
        if config.key.name != "device.key":
            raise UsageError(f"recorder key {config.key} does not exist")
        generate(config.key.parent)
        print(f"generated the recorder key {config.key} (public key: "
              f"{config.key.with_suffix('.pub')})")
    signer = load_signer(config.key, cert=config.cert)
    config.store.mkdir(parents=True, exist_ok=True)
    service = Service(config, signer, Supervisor(config))
    host, port = args.host or config.host, args.port or config.port
    print(f"vidproof serving {len(config.cameras)} cameras on http://{host}:{port}/ "
          f"(data in {config.data_dir})", flush=True)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
    return EXIT_OK


def _user(args: argparse.Namespace) -> int:
    from .service.users import UserStore

    try:
        password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read password file {args.password_file}: "
                         f"{exc.strerror}") from None
    user = UserStore(args.users).add(args.name, args.role, password)
    print(f"user {user.name} ({user.role}) saved in {args.users}")
    return EXIT_OK


def _journal(args: argparse.Namespace) -> int:
    from .journal import verify_journal
    from .keys import load_trusted

    trust = load_trusted(args.trust)
    path = args.path / "journal.jsonl" if args.path.is_dir() else args.path
    if not path.is_file():
        raise CouldNotVerify(f"{path} does not exist; expected a store or its journal.jsonl")
    count, problems = verify_journal(path, trust)
    for p in problems:
        print(f"line {p.line}: {p.message}")
    print(f"journal {path}: {count} entries, "
          + ("all signed and in order" if not problems else f"{len(problems)} problems"))
    return EXIT_OK if not problems else EXIT_NOT_AUTHENTIC


def _verify(args: argparse.Namespace) -> int:
    from .trust.policy import load_policy
    from .verify.load import inspect_path
    from .verify.report import report_html, report_json, report_text

    trust = load_policy(args.trust, args.crl)
    from .verify.load import load_tsa_anchors

    report = inspect_path(args.path, trust, args.camera, args.media,
                          tsa_anchors=load_tsa_anchors(args.tsa_cert))
    if args.report:
        try:
            args.report.write_text(report_html(report), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write report {args.report}: {exc.strerror}") from None
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report_text(report))
    return EXIT_OK if report.authentic else EXIT_NOT_AUTHENTIC


def _match(args: argparse.Namespace) -> int:
    from .match import DEFAULT_THRESHOLD, match

    verdict = None
    if args.trust is not None:
        from .keys import load_trusted
        from .verify.load import inspect_path

        verdict = inspect_path(args.evidence, load_trusted(args.trust), args.camera).verdict
    report = match(args.copy, args.evidence, camera=args.camera,
                   threshold=args.threshold or DEFAULT_THRESHOLD, evidence_verdict=verdict)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.to_text())
    return EXIT_OK if report.success else EXIT_NOT_AUTHENTIC


def _hold(args: argparse.Namespace) -> int:
    from .retention_cli import hold_command

    return hold_command(args)


def _ca(args: argparse.Namespace) -> int:
    from .trust.commands import ca_command

    return ca_command(args)


def _device(args: argparse.Namespace) -> int:
    from .trust.commands import device_command

    return device_command(args)


COMMANDS = {"keygen": _keygen, "record": _record, "export": _export, "verify": _verify,
            "match": _match, "ca": _ca, "device": _device,
            "journal": _journal, "serve": _serve, "user": _user, "hold": _hold}


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {exc.strerror or exc}"


_gc_paused = False  # main() paused the cyclic garbage collector


def _resume_gc() -> None:
    """Turn the collector back on in a command that runs for long, once it has started;
    what start-up made is frozen (left out of its passes: it lives until exit anyway)."""
    global _gc_paused
    if _gc_paused:
        gc.freeze()
        gc.enable()
        _gc_paused = False


def main(argv: list[str] | None = None) -> int:
    global _gc_paused
    logging.basicConfig(level=logging.WARNING, format="vidproof: %(message)s")
    # Start-up (imports, parsing) and verification allocate many objects, none in reference
    # cycles that need collecting before exit: the cyclic garbage collector is paused (its
    # passes took about 4% of a verification run). ``record`` resumes it once started, the
    # other commands (some run for long, like ``serve``) right after parsing.
    _gc_paused = gc.isenabled()
    gc.disable()
    command = None
    try:
        argv = sys.argv[1:] if argv is None else argv
        args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
        command = args.command
        if command not in ("verify", "record"):
            _resume_gc()
        return COMMANDS[command](args)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `vidproof verify --json | head`).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (Error, OSError) as exc:
        # OSError: a file or directory the library did not expect to fail (a store path
        # that is a file, a full disk): one line and exit 2 as well, never a traceback.
        message = str(exc) if isinstance(exc, Error) else _os_error(exc)
        message = message.replace("\n", " ")
        print(f"vidproof: error: {message}", file=sys.stderr)
        if command in ("verify", "match") and args.json:
            print(json.dumps({"verdict": "error", "error": message, "camera_ids": [],
                              "frames": 0, "first_utc": None, "last_utc": None,
                              "findings": []}))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vidproof: interrupted", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if _gc_paused:
            if command == "verify":
                # What verification made (the evidence read, the report) lives until the
                # process exits: frozen, it is not walked again by the collection that
                # the interpreter makes at exit.
                gc.freeze()
            gc.enable()
            _gc_paused = False


if __name__ == "__main__":
    sys.exit(main())
