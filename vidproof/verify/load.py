"""Loaders: read a store (or bundle) from disk and feed the pure core.

The only module of the verifier that touches files. It never imports capture code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import av

from ..canonical import CanonicalError, canonical_bytes, parse_frame_line
from ..digest import NO_PROBE_DECODE, SUPPORTED_CODECS, BitstreamError, FrameHasher
from ..errors import CouldNotVerify, EvidenceError, UsageError
from ..model import check_camera_id
from ..trust.policy import TrustPolicy
from .core import (
    ERROR,
    CameraReport,
    Finding,
    MediaProblem,
    ObservedFrame,
    ParsedLine,
    Report,
    inspect_camera,
)

MAX_LINE = 1 << 20
MAX_EVIDENCE_BYTES = 8 << 30
EVIDENCE = "evidence.jsonl"


def _non_canonical(raw: bytes, value: object) -> tuple[str | None, str | None]:
    """A line must be exactly the canonical encoding of its value (docs/FORMAT.md): the
    hash covers the value, so another spelling (spaces, a key repeated so that parsers
    disagree on its value) must not pass as the signed entry. Returns (problem, digest):
    the digest of a canonical line, its SHA-256, is taken here from the line's own bytes,
    so that the core does not encode every line a second time to hash it."""
    try:
        if canonical_bytes(value) + b"\n" == raw:
            return None, hashlib.sha256(memoryview(raw)[:-1]).hexdigest()
    except CanonicalError:
        return None, None  # step 1 of the core reports why the value cannot be encoded
    return "not in canonical form (re-formatted, or a key given twice)", None


def read_evidence(path: Path) -> list[ParsedLine]:
    """Parse an evidence log; a line that is not JSON becomes a finding, not an exception."""
    try:
        size = path.stat().st_size
        if size > MAX_EVIDENCE_BYTES:
            raise CouldNotVerify(f"{path} is {size} bytes, over the {MAX_EVIDENCE_BYTES} limit")
        f = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CouldNotVerify(f"cannot read {path}: {exc.strerror}") from None
    lines: list[ParsedLine] = []
    with f:
        for n, raw in enumerate(f, start=1):
            if len(raw) > MAX_LINE:
                lines.append(ParsedLine(n, None, f"line longer than {MAX_LINE} bytes"))
                continue
            if not raw.endswith(b"\n"):
                lines.append(ParsedLine(n, None, "last line is cut short (no newline)", torn=True))
                continue
            value = parse_frame_line(raw)
            if value is not None:  # a frame entry, canonical by its very shape
                lines.append(ParsedLine(n, value, None,
                                        digest=hashlib.sha256(memoryview(raw)[:-1]).hexdigest()))
                continue
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                lines.append(ParsedLine(n, None, f"not valid JSON ({exc})"))
                continue
            problem, digest = _non_canonical(raw, value)
            lines.append(ParsedLine(n, value, problem, digest=digest))
    if not lines:
        raise CouldNotVerify(f"{path} is empty: there is no evidence to verify")
    if all(not isinstance(pl.value, dict) for pl in lines):
        raise CouldNotVerify(f"{path} is not a vidproof evidence log (no line is a JSON object)")
    return lines


def read_media(paths: Sequence[Path]) -> tuple[list[ObservedFrame], list[MediaProblem]]:
    """Demux each media file and digest every access unit, in order."""
    observed: list[ObservedFrame] = []
    problems: list[MediaProblem] = []
    for path in paths:
        name = path.name
        try:
            # An absolute path: FFmpeg would read "name:" at the start of a relative
            # one as a protocol. Only demuxed: the probe decodes nothing.
            container = av.open(os.path.abspath(path), options=NO_PROBE_DECODE)
        except (av.FFmpegError, OSError) as exc:
            problems.append(MediaProblem(name, f"not readable as media ({exc})", 0))
            continue
        count = 0
        with container:
            if not container.streams.video:
                problems.append(MediaProblem(name, "no video stream", 0))
                continue
            stream = container.streams.video[0]
            cc = stream.codec_context
            if cc.name not in SUPPORTED_CODECS:
                problems.append(MediaProblem(name, f"codec {cc.name} is not H.264/H.265", 0))
                continue
            try:
                hasher = FrameHasher.of_stream(stream)
                # Demuxed packets carry their stream's time base: one Fraction, not one each.
                time_base = stream.time_base or None  # (tested once, not per packet)
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    data = memoryview(packet)  # digested in place, not copied
                    try:
                        fd = hasher.digest(data)
                        digest, params = fd.digest, fd.params
                    except BitstreamError:
                        from ..canonical import sha256_hex

                        digest = "malformed:" + sha256_hex(bytes(data))
                        params = hasher.params_digest
                    observed.append(ObservedFrame(name, count, digest, params, packet.pts,
                                                  packet.time_base if time_base is None
                                                  else time_base,
                                                  packet.is_keyframe))
                    count += 1
            except (av.FFmpegError, BitstreamError) as exc:
                problems.append(MediaProblem(name, str(exc), count))
    return observed, problems


def _camera_dirs(store: Path, camera: str | None) -> list[Path]:
    if camera is not None:
        try:
            check_camera_id(camera)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        d = store / camera
        if not (d / EVIDENCE).is_file():
            raise UsageError(f"camera {camera!r} has no evidence in {store}")
        return [d]
    dirs = sorted(p for p in store.iterdir() if (p / EVIDENCE).is_file())
    if not dirs:
        raise CouldNotVerify(
            f"{store} is not a vidproof store or bundle: expected <camera>/evidence.jsonl"
        )
    return dirs


def inspect_store(store: Path, trust: TrustPolicy, camera: str | None = None,
                  media: Path | None = None, *,
                  tsa_anchors: Sequence[bytes] | None = None) -> Report:
    """Verify every camera of a store (or one). With ``media``, that file, a copy of
    the camera's whole recording in any container, is checked instead of the segments."""
    cameras: list[CameraReport] = []
    findings: list[Finding] = []
    cam_dirs = _camera_dirs(store, camera)
    if media is not None:
        if len(cam_dirs) != 1:
            raise UsageError("--media needs --camera when the store holds several cameras")
        if not media.is_file():
            raise UsageError(f"media file {media} does not exist")
    for cam_dir in cam_dirs:
        lines = read_evidence(cam_dir / EVIDENCE)
        seg_dir = cam_dir / "segments"
        segments = sorted(seg_dir.glob("*.ts")) if seg_dir.is_dir() else []
        observed, problems = read_media([media] if media is not None else segments)
        if media is not None and not observed:
            raise CouldNotVerify(f"{media}: no H.264/H.265 video could be read "
                                 f"({problems[0].message if problems else 'empty'})")
        rep, found = inspect_camera(cam_dir.name, lines, observed, problems, trust,
                                    tsa_anchors=tsa_anchors)
        cameras.append(rep)
        findings.extend(found)
    return Report(tuple(cameras), tuple(findings))


def inspect_path(path: Path, trust: TrustPolicy, camera: str | None = None,
                 media: Path | None = None, *,
                 tsa_anchors: Sequence[bytes] | None = None) -> Report:
    """Verify a store directory; returns the report (never raises on bad evidence)."""
    if not path.exists():
        raise UsageError(f"{path} does not exist; expected a store directory or a bundle")
    if path.is_dir() and not (path / "evidence.json").is_file():
        # A store (an unpacked bundle has bundle.EVIDENCE_JSON): the bundle module, and the
        # zip and temporary-file modules it imports, are not needed.
        return inspect_store(path, trust, camera, media, tsa_anchors=tsa_anchors)
    from .bundle import inspect_bundle, is_bundle

    if is_bundle(path):
        return inspect_bundle(path, trust, media, tsa_anchors=tsa_anchors)
    if path.is_dir():
        return inspect_store(path, trust, camera, media, tsa_anchors=tsa_anchors)
    raise CouldNotVerify(f"{path} is neither a store directory nor an export bundle (.zip)")


def load_tsa_anchors(paths: Sequence[Path] | None) -> list[bytes] | None:
    """The TSA trust anchors of ``--tsa-cert`` (PEM files), as DER; None when none given."""
    if not paths:
        return None
    from .timestamps import TokenError, parse_anchors_pem

    anchors: list[bytes] = []
    for path in paths:
        try:
            anchors.extend(parse_anchors_pem(path.read_bytes()))
        except OSError as exc:
            raise UsageError(f"cannot read --tsa-cert {path}: {exc.strerror}") from None
        except TokenError as exc:
            raise UsageError(f"--tsa-cert {path}: {exc}") from None
    return anchors


def verify_path(path: Path, trust: TrustPolicy, camera: str | None = None,
                media: Path | None = None) -> Report:
    """Like :func:`inspect_path`, but raises :class:`EvidenceError` unless authentic."""
    report = inspect_path(path, trust, camera, media)
    if not report.authentic:
        errors = [f for f in report.findings if f.severity == ERROR]
        first = errors[0].message if errors else "evidence is incomplete or unsigned"
        raise EvidenceError(f"not authentic: {first}", report)
    return report
