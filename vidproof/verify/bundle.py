"""Verification of an export bundle (zipped or unpacked), offline.

Steps B1-B5 (docs/FORMAT.md, "Verifying a bundle"): file digests against
SHA256SUMS, evidence.json shape, the camera chain from the anchor checkpoint
(the pure core, steps 1-5), the signed export entry, and the subtitle track.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ..canonical import CanonicalError, canonical_bytes, sha256_hex
from ..errors import CouldNotVerify, UsageError
from ..keys import TrustedKey
from .core import (
    ERROR,
    WARNING,
    Anchor,
    CameraReport,
    Finding,
    ParsedLine,
    Report,
    inspect_camera,
)
from .load import read_media

BUNDLE_FORMAT = "vidproof-bundle/1"
EVIDENCE_JSON, CLIP, SUMS = "evidence.json", "clip.mp4", "SHA256SUMS"
MAX_FILES = 32
MAX_TOTAL_BYTES = 64 << 30
MAX_EVIDENCE_BYTES = 1 << 30
MAX_SUBTITLE_BYTES = 4096
_SUB_TOLERANCE = Fraction(1, 1000)


def is_bundle(path: Path) -> bool:
    return (path.is_file() and zipfile.is_zipfile(path)) or (
        path.is_dir() and (path / EVIDENCE_JSON).is_file())


@contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """Yield a directory holding the bundle's files; a zip is checked, then extracted."""
    if path.is_dir():
        yield path
        return
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CouldNotVerify(f"{path} is not a readable zip bundle ({exc})") from None
    with zf, tempfile.TemporaryDirectory(prefix="vidproof-bundle-") as tmp:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            raise CouldNotVerify(f"{path} holds {len(infos)} files; a bundle has at most "
                                 f"{MAX_FILES}")
        if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
            raise CouldNotVerify(f"{path} unpacks to more than {MAX_TOTAL_BYTES} bytes")
        for info in infos:
            name = info.filename
            if "/" in name or "\\" in name or name in ("", ".", "..") or info.is_dir():
                raise CouldNotVerify(f"{path}: entry {name!r} is not a flat file name; "
                                     "a bundle is a flat zip")
            try:
                with zf.open(info) as src, open(Path(tmp) / name, "xb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise CouldNotVerify(f"{path}: cannot extract {name!r} ({exc}); the bundle "
                                     "is truncated or damaged") from None
        yield Path(tmp)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass
class _Fx:
    camera: str | None
    items: list[Finding]

    def add(self, kind: str, severity: str, message: str, first: int | None = None,
            last: int | None = None) -> None:
        self.items.append(Finding(kind, severity, message, first,
                                  first if last is None else last, camera=self.camera))


def _check_sums(root: Path, fx: _Fx) -> dict[str, str]:
    """B1: every file against SHA256SUMS. Returns the digests computed."""
    digests = {p.name: _sha256(p) for p in sorted(root.iterdir()) if p.is_file()}
    sums = root / SUMS
    if not sums.is_file():
        fx.add("sums_missing", ERROR, "SHA256SUMS is missing from the bundle")
        return digests
    listed: dict[str, str] = {}
    for n, line in enumerate(sums.read_text("utf-8", errors="replace").splitlines(), 1):
        digest, _, name = line.partition("  ")
        name = name.lstrip("*")
        if len(digest) != 64 or not name:
            fx.add("sums_malformed", ERROR, f"SHA256SUMS line {n} is not '<sha256>  <file>'")
            continue
        listed[name] = digest.lower()
    for name, digest in listed.items():
        if name not in digests:
            fx.add("file_missing", ERROR, f"{name} is listed in SHA256SUMS but missing")
        elif digests[name] != digest:
            fx.add("file_modified", ERROR, f"{name} does not match its SHA256SUMS digest")
    for name in digests:
        if name != SUMS and name not in listed:
            fx.add("file_unlisted", WARNING, f"{name} is in the bundle but not in SHA256SUMS")
    return digests


def _load_evidence(root: Path) -> dict[str, Any]:
    """B2: evidence.json has the bundle shape (otherwise the bundle cannot be checked)."""
    path = root / EVIDENCE_JSON
    if not path.is_file():
        raise CouldNotVerify("the bundle has no evidence.json")
    if path.stat().st_size > MAX_EVIDENCE_BYTES:
        raise CouldNotVerify(f"evidence.json is over the {MAX_EVIDENCE_BYTES}-byte limit")
    try:
        evidence = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise CouldNotVerify(f"evidence.json is not valid JSON ({exc})") from None
    if not isinstance(evidence, dict) or evidence.get("format") != BUNDLE_FORMAT:
        raise CouldNotVerify(f"evidence.json is not a {BUNDLE_FORMAT} evidence file")
    for key, kind in (("camera", str), ("anchor", dict), ("contexts", list), ("entries", list),
                      ("checkpoints", list), ("export", dict)):
        if not isinstance(evidence.get(key), kind):
            raise CouldNotVerify(f"evidence.json: {key!r} is missing or has the wrong type")
    return evidence


def _check_export(evidence: dict[str, Any], cam: CameraReport, trust: TrustedKey,
                  clip_digest: str | None, fx: _Fx) -> None:
    """B4: the export entry is signed by the trusted key and describes this clip."""
    exp = evidence["export"]
    body = {k: v for k, v in exp.items() if k != "sig"}
    try:
        signed = canonical_bytes(body)
        sig = bytes.fromhex(str(exp.get("sig", "")))
    except (CanonicalError, ValueError):
        fx.add("export_invalid", ERROR, "the export entry is malformed")
        return
    if exp.get("key") != trust.key_id:
        fx.add("untrusted_key", ERROR, "the export entry is not signed by the trusted key")
    elif not trust.verify(sig, signed):
        fx.add("bad_signature", ERROR, "the export entry's signature is invalid: it was altered")
    checks: list[tuple[str, Any, Any]] = [
        ("camera", exp.get("camera"), evidence["camera"]),
        ("first frame", exp.get("first_seq"), cam.first_seq),
        ("last frame", exp.get("last_seq"), cam.last_seq),
        ("frame count", exp.get("frames"), cam.frames),
    ]
    try:
        checks.append(("starting checkpoint", exp.get("anchor"),
                       sha256_hex(canonical_bytes(evidence["anchor"]))))
        if evidence["checkpoints"]:
            checks.append(("final checkpoint", exp.get("end"),
                           sha256_hex(canonical_bytes(evidence["checkpoints"][-1]))))
        else:
            checks.append(("final checkpoint", exp.get("end"), None))
    except CanonicalError:
        pass
    if clip_digest is not None:
        checks.append(("clip.mp4 digest", exp.get("clip_sha256"), clip_digest))
    for what, signed_value, found in checks:
        if signed_value != found:
            fx.add("export_mismatch", ERROR,
                   f"the signed export record gives {what} {signed_value!r}, the bundle has "
                   f"{found!r}: frames or evidence were added or removed",
                   cam.first_seq, cam.last_seq)


def _utc_text(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 10**9, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{(ns % 10**9) // 10**6:03d} UTC"


def _check_subtitles(clip: Path, evidence: dict[str, Any], fx: _Fx) -> None:
    """B5: each subtitle shows the UTC time and camera of the frame it is shown with."""
    frames = [e for e in evidence["entries"] if isinstance(e, dict) and e.get("type") == "frame"]
    try:
        container = av.open(str(clip))
    except (av.FFmpegError, OSError):
        return  # reported by the media step
    with container:
        if not container.streams.subtitles or not container.streams.video:
            fx.add("subtitles_missing", WARNING,
                   "clip.mp4 has no subtitle track with the date, time and place")
            return
        vs, ss = container.streams.video[0], container.streams.subtitles[0]
        video_pts: list[Fraction] = []
        subs: list[tuple[Fraction, bytes]] = []
        for p in container.demux(vs, ss):
            if not p.size or p.pts is None or p.time_base is None:
                continue
            t = p.pts * Fraction(p.time_base)
            if p.stream.index == vs.index:
                video_pts.append(t)
            elif p.size <= MAX_SUBTITLE_BYTES:
                subs.append((t, bytes(p)))
    video_pts.sort()
    frames_by_pts = sorted(frames, key=lambda f: (f.get("pts") is None, f.get("pts") or 0))
    camera = str(evidence["camera"])
    bad: list[int] = []
    for t, data in subs:
        if int.from_bytes(data[:2], "big") == 0:
            continue  # an empty sample: MP4 muxers fill gaps between subtitles with them
        i = bisect.bisect_left(video_pts, t - _SUB_TOLERANCE)
        if i >= len(video_pts) or abs(video_pts[i] - t) > _SUB_TOLERANCE \
                or i >= len(frames_by_pts):
            bad.append(-1)
            continue
        frame = frames_by_pts[i]
        n = int.from_bytes(data[:2], "big")
        text = data[2:2 + n].decode("utf-8", errors="replace")
        if not (isinstance(frame.get("utc_ns"), int)
                and text.startswith(_utc_text(frame["utc_ns"])) and camera in text):
            bad.append(frame.get("seq", -1))
    if bad:
        seqs = [b for b in bad if b >= 0]
        fx.add("subtitle_mismatch", ERROR,
               f"{len(bad)} subtitles show a date, time or camera that is not the frame's "
               "signed one, or are not shown with any frame",
               min(seqs) if seqs else None, max(seqs) if seqs else None)


def inspect_bundle(path: Path, trust: TrustedKey, media: Path | None = None) -> Report:
    with unpacked(path) as root:
        fx = _Fx(None, [])
        digests = _check_sums(root, fx)
        evidence = _load_evidence(root)
        camera = str(evidence["camera"])
        fx.camera = camera
        for f in fx.items:
            object.__setattr__(f, "camera", camera)
        lines = [ParsedLine(i + 1, e) for i, e in
                 enumerate([*evidence["entries"], *evidence["checkpoints"]])]
        clip = root / CLIP
        target = media if media is not None else clip
        if media is not None and not media.is_file():
            raise UsageError(f"media file {media} does not exist")
        if not target.is_file():
            raise CouldNotVerify("the bundle has no clip.mp4")
        observed, problems = read_media([target])
        if media is not None and not observed:
            raise CouldNotVerify(f"{media}: no H.264/H.265 video could be read")
        anchor = Anchor(evidence["anchor"], tuple(c for c in evidence["contexts"]
                                                  if isinstance(c, dict)))
        rep, found = inspect_camera(camera, lines, observed, problems, trust.key_id,
                                    lambda sig, data: trust.verify(sig, data), anchor)
        _check_export(evidence, rep, trust, digests.get(CLIP) if clip.is_file() else None, fx)
        if media is None:
            _check_subtitles(clip, evidence, fx)
        return Report((rep,), tuple(fx.items) + tuple(found))
