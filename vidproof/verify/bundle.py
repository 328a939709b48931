"""Verification of an export bundle (zipped or unpacked), offline.

Steps B1-B5 (docs/FORMAT.md, "Verifying a bundle"): file digests against
SHA256SUMS, evidence.json shape, the camera chain from the anchor checkpoint
(the pure core, steps 1-5), the signed export entry, and the subtitle track.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ..canonical import CanonicalError, canonical_bytes, sha256_hex
from ..errors import CouldNotVerify, UsageError
from ..trust.policy import CAPolicy, TrustPolicy
from .core import (
    ERROR,
    WARNING,
    Anchor,
    CameraReport,
    Finding,
    ObservedFrame,
    ParsedLine,
    Report,
    inspect_camera,
)
from .load import read_media

BUNDLE_FORMAT = "vidproof-bundle/1"
EVIDENCE_JSON, CLIP, SUMS = "evidence.json", "clip.mp4", "SHA256SUMS"
REQUIRED_PAGES = ("report.html", "player.html")
EVIDENCE_KEYS = frozenset({"format", "camera", "clip", "anchor", "contexts", "entries",
                           "checkpoints", "export", "public_key",
                           # RFC 3161 tokens covering the clip (docs/FORMAT.md section 13.5)
                           "timestamps", "timestamp_checkpoints",
                           # keys, key rotations and CRLs (docs/FORMAT.md section 12.5)
                           "keys", "rotations", "crls"})
MAX_FILES = 32
MAX_TOTAL_BYTES = 64 << 30
MAX_EVIDENCE_BYTES = 1 << 30
MAX_SUBTITLE_BYTES = 4096
MAX_SUBTITLE_FINDINGS = 50
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


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON parsers differ on repeated keys (first or last wins): refuse them, so that
    every reader sees the values that were signed."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"key {dup!r} appears twice in one object")
    return obj


def _load_evidence(root: Path) -> dict[str, Any]:
    """B2: evidence.json has the bundle shape (otherwise the bundle cannot be checked)."""
    path = root / EVIDENCE_JSON
    if not path.is_file():
        raise CouldNotVerify("the bundle has no evidence.json")
    if path.stat().st_size > MAX_EVIDENCE_BYTES:
        raise CouldNotVerify(f"evidence.json is over the {MAX_EVIDENCE_BYTES}-byte limit")
    try:
        evidence = json.loads(path.read_bytes(), object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        raise CouldNotVerify(f"evidence.json is not valid JSON ({exc})") from None
    if not isinstance(evidence, dict) or evidence.get("format") != BUNDLE_FORMAT:
        raise CouldNotVerify(f"evidence.json is not a {BUNDLE_FORMAT} evidence file")
    for key, kind in (("camera", str), ("anchor", dict), ("contexts", list), ("entries", list),
                      ("checkpoints", list), ("export", dict)):
        if not isinstance(evidence.get(key), kind):
            raise CouldNotVerify(f"evidence.json: {key!r} is missing or has the wrong type")
    return evidence


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _key_id_of_pem(pem: object) -> str | None:
    if not isinstance(pem, str) or len(pem) > 4096:
        return None
    from ..errors import KeyFormatError
    from ..trust.keytypes import key_id, load_public_pem

    try:
        return key_id(load_public_pem(pem.encode("ascii")))
    except (KeyFormatError, UnicodeEncodeError):
        return None


def _check_pages(exp: dict[str, Any], files: dict[str, str], fx: _Fx) -> None:
    """B4: the report and the player are the pages signed at export; no other file is
    in the bundle."""
    pages = exp.get("pages")
    if not isinstance(pages, dict):
        fx.add("export_invalid", ERROR, "the export record does not sign the report and "
               "player pages")
        pages = {}
    for name in REQUIRED_PAGES:
        if name not in pages:
            fx.add("export_invalid", ERROR, f"the export record does not sign {name}")
    for name, digest in sorted(pages.items()):
        if name not in files:
            fx.add("file_missing", ERROR, f"{name}, signed at export, is missing from the bundle")
        elif files[name] != digest:
            fx.add("page_modified", ERROR,
                   f"{name} is not the page signed at export (SHA-256 {files[name]}, signed "
                   f"{digest!r}): it was altered")
    for name in sorted(set(files) - set(pages) - {CLIP, EVIDENCE_JSON, SUMS}):
        fx.add("file_unexpected", ERROR,
               f"{name} is in the bundle but was not part of the export")


def _check_export(evidence: dict[str, Any], cam: CameraReport, trust: TrustPolicy,
                  clip_digest: str | None, fx: _Fx) -> None:
    """B4: the export entry is signed by a key trusted at the export time and describes
    this clip."""
    exp = evidence["export"]
    body = {k: v for k, v in exp.items() if k != "sig"}
    try:
        signed = canonical_bytes(body)
        sig = bytes.fromhex(str(exp.get("sig", "")))
    except (CanonicalError, ValueError):
        fx.add("export_invalid", ERROR, "the export entry is malformed")
        return
    ring = cam.key_ring  # step 4's keys: the trusted ones, and those introduced
    ok, kind, why = ((False, "untrusted_key", "the evidence was not checked") if ring is None
                     else ring.judge_export(exp.get("key"), exp.get("alg"), exp.get("utc_ns"),
                                            sig, signed))
    if kind == "bad_signature":
        fx.add("bad_signature", ERROR, "the export entry's signature is invalid: it was altered")
    elif not ok:
        fx.add(kind, ERROR, f"the export entry is not signed by the trusted key: {why}")
    extra = sorted(set(evidence) - EVIDENCE_KEYS)
    if extra:
        fx.add("evidence_invalid", ERROR,
               f"evidence.json has fields a bundle does not have: {', '.join(extra)[:200]}")
    if evidence.get("clip") != CLIP:
        fx.add("evidence_invalid", ERROR,
               f"evidence.json names the clip {evidence.get('clip')!r}; a bundle's clip is "
               f"{CLIP}")
    pem_key = _key_id_of_pem(evidence.get("public_key"))
    if pem_key != exp.get("key"):
        fx.add("public_key_mismatch", ERROR,
               "the public key in evidence.json is not the key that signed the export "
               f"({str(exp.get('key'))[:16]}…): it was replaced or damaged")
    # Frames exported (signed) but missing at either end of the bundle, or added there.
    s_first, s_last = exp.get("first_seq"), exp.get("last_seq")
    if isinstance(s_first, int) and isinstance(s_last, int) and s_first <= s_last:
        b_first = cam.first_seq if cam.first_seq is not None else s_last + 1
        b_last = cam.last_seq if cam.last_seq is not None else s_last
        if s_first < b_first:
            fx.add("frame_missing", ERROR,
                   f"frames seq {s_first}..{min(b_first - 1, s_last)} were exported (signed "
                   "export record) but are missing from the start of the bundle",
                   s_first, min(b_first - 1, s_last))
        elif b_first < s_first:
            fx.add("frame_inserted", ERROR,
                   f"frames seq {b_first}..{s_first - 1} at the start of the bundle were not "
                   "exported (signed export record)", b_first, s_first - 1)
        if cam.last_seq is not None and b_last < s_last:
            fx.add("frame_missing", ERROR,
                   f"frames seq {max(b_last + 1, s_first)}..{s_last} were exported (signed "
                   "export record) but are missing from the end of the bundle",
                   max(b_last + 1, s_first), s_last)
        elif s_last < b_last:
            fx.add("frame_inserted", ERROR,
                   f"frames seq {s_last + 1}..{b_last} at the end of the bundle were not "
                   "exported (signed export record)", s_last + 1, b_last)
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
    for what, signed_value, found in checks:
        if signed_value != found:
            fx.add("export_mismatch", ERROR,
                   f"the signed export record gives {what} {signed_value!r}, the bundle has "
                   f"{found!r}: frames or evidence were added or removed",
                   cam.first_seq, cam.last_seq)
    if clip_digest is not None and exp.get("clip_sha256") != clip_digest:
        fx.add("export_mismatch", ERROR,
               f"{CLIP} is not the file signed at export: its SHA-256 is {clip_digest}, the "
               f"signed export record gives {exp.get('clip_sha256')!r} (re-muxed or altered)")


_SUB_OFFSET = re.compile(r" UTC \| local \d\d:\d\d:\d\d\.\d{3} ([+-])(\d\d):(\d\d)\n")


def _subtitle_offset(text: str) -> int | None:
    """The UTC offset (minutes) a subtitle gives for its local time."""
    m = _SUB_OFFSET.search(text)
    if m is None:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return -minutes if m.group(1) == "-" else minutes


def _subtitle_expected(utc_ns: int, context: dict[str, Any], text: str) -> str | None:
    """The subtitle the exporter writes for a frame (docs/FORMAT.md): UTC date and time,
    local time with the offset the subtitle states, camera id and location. The offset
    itself is taken from the text; the local time must agree with it."""
    m = _SUB_OFFSET.search(text)
    if m is None:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 14 or minutes % 15:
        return None
    offset = timedelta(hours=hours, minutes=minutes) * (-1 if m.group(1) == "-" else 1)
    loc = context.get("location")
    if not isinstance(loc, dict):
        return None
    sec, ms = utc_ns // 10**9, (utc_ns % 10**9) // 10**6
    try:
        utc = datetime.fromtimestamp(sec, tz=UTC)
        local = datetime.fromtimestamp(sec, tz=timezone(offset))
    except (OverflowError, OSError, ValueError):
        return None
    sign = "-" if offset < timedelta(0) else "+"
    return (f"{utc:%Y-%m-%d %H:%M:%S}.{ms:03d} UTC | local {local:%H:%M:%S}.{ms:03d} "
            f"{sign}{hours:02d}:{minutes:02d}\n"
            f"{context.get('camera_id')} | {loc.get('label')} ({loc.get('lat')}, "
            f"{loc.get('lon')})")


def _seq(record: dict[str, Any]) -> int:
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else -1


def _check_subtitles(clip: Path, evidence: dict[str, Any], observed: list[ObservedFrame],
                     fx: _Fx) -> None:
    """B5: each picture of the clip is shown with exactly one subtitle, and that subtitle
    gives the date, time, camera and location of the picture's signed record (the
    picture is identified by its digest, so a moved frame keeps its own subtitle)."""
    contexts: dict[str, dict[str, Any]] = {}
    by_digest: dict[str, list[dict[str, Any]]] = {}
    tz = evidence["export"].get("timezone")
    offsets = tz.get("offsets_minutes") if isinstance(tz, dict) else None
    allowed_offsets = ({o for o in offsets if isinstance(o, int)}
                       if isinstance(offsets, list) else None)
    for e in [*evidence["contexts"], *evidence["entries"]]:
        if not isinstance(e, dict):
            continue
        if e.get("type") == "context" and isinstance(e.get("context"), dict):
            try:
                contexts[sha256_hex(canonical_bytes(e))] = e["context"]
            except CanonicalError:
                continue
        elif e.get("type") == "frame" and isinstance(e.get("digest"), str):
            by_digest.setdefault(e["digest"], []).append(e)
    try:
        container = av.open(str(clip))
    except (av.FFmpegError, OSError):
        return  # reported by the media step
    with container:
        if not container.streams.subtitles or not container.streams.video:
            fx.add("subtitles_missing", WARNING,
                   "clip.mp4 has no subtitle track with the date, time and place")
            return
        ss = container.streams.subtitles[0]
        subs: list[tuple[Fraction, bytes]] = []
        try:
            for p in container.demux(ss):
                if p.size and p.pts is not None and p.time_base is not None \
                        and p.size <= MAX_SUBTITLE_BYTES:  # a longer one counts as missing
                    subs.append((p.pts * Fraction(p.time_base), bytes(p)))
        except av.FFmpegError:
            pass  # what was read is checked; missing subtitles are reported below
    video = sorted((o.pts * o.time_base, n) for n, o in enumerate(observed)
                   if o.pts is not None)
    times = [t for t, _ in video]
    shown: dict[int, int] = {}
    bad: list[int] = []
    unplaced = 0
    for t, data in subs:
        n = int.from_bytes(data[:2], "big")
        if n == 0:
            continue  # an empty sample: MP4 muxers fill gaps between subtitles with them
        text = data[2:2 + n].decode("utf-8", errors="replace")
        i = bisect.bisect_left(times, t - _SUB_TOLERANCE)
        if i >= len(times) or abs(times[i] - t) > _SUB_TOLERANCE:
            unplaced += 1
            continue
        k = video[i][1]
        shown[k] = shown.get(k, 0) + 1
        records = by_digest.get(observed[k].digest, [])
        if allowed_offsets is not None and _subtitle_offset(text) not in allowed_offsets:
            bad.append(_seq(records[0]) if records else -1)
            continue
        if records and not any(
                isinstance(r.get("utc_ns"), int) and isinstance(r.get("ctx"), str)
                and r["ctx"] in contexts
                and text == _subtitle_expected(r["utc_ns"], contexts[r["ctx"]], text)
                for r in records):
            bad.append(_seq(records[0]))
    missing: list[int] = []
    doubled: list[int] = []
    for k, o in enumerate(observed):
        records = by_digest.get(o.digest, [])
        if records and shown.get(k, 0) != 1:
            (missing if not shown.get(k) else doubled).append(_seq(records[0]))
    for a, b in _runs([s for s in bad + doubled if s >= 0])[:MAX_SUBTITLE_FINDINGS]:
        fx.add("subtitle_mismatch", ERROR,
               f"the subtitles shown with frames seq {a}..{b} do not give the date, time, "
               "camera or location of the frame's signed record", a, b)
    if any(s < 0 for s in bad + doubled):
        fx.add("subtitle_mismatch", ERROR, "subtitles do not match frames whose record has "
               "no valid seq")
    for a, b in _runs([s for s in missing if s >= 0])[:MAX_SUBTITLE_FINDINGS]:
        fx.add("subtitle_missing", ERROR,
               f"frames seq {a}..{b} are shown without their subtitle (date, time and place)",
               a, b)
    if unplaced:
        fx.add("subtitle_mismatch", ERROR,
               f"{unplaced} subtitles are not shown with any frame of the clip (moved, added, "
               "or their frame was moved or removed)")


def _list(evidence: dict[str, Any], key: str) -> list[Any]:
    """An optional list member of evidence.json (absent from bundles made without a TSA)."""
    value = evidence.get(key, [])
    if not isinstance(value, list):
        raise CouldNotVerify(f"evidence.json: {key!r} has the wrong type")
    return value


def _carried_crls(evidence: dict[str, Any], trust: TrustPolicy, fx: _Fx) -> TrustPolicy:
    """B2: the CRLs carried in the bundle, added to a CA policy when its CA signed them."""
    from ..errors import KeyFormatError
    from ..trust.crl import load_pem_crls

    carried = _list(evidence, "crls")
    if not carried or not isinstance(trust, CAPolicy):
        return trust
    for n, pem in enumerate(carried, 1):
        try:
            if not isinstance(pem, str):
                raise KeyFormatError("not a PEM string")
            crls = load_pem_crls(pem.encode("ascii", "replace"), f"CRL {n} of evidence.json")
        except KeyFormatError as exc:
            fx.add("crl_invalid", ERROR, f"evidence.json: CRL {n} is not a CRL ({exc})")
            continue
        for crl in crls:
            if trust.crl_signed_by_anchor(crl):
                trust = trust.with_crls([crl])
            else:
                fx.add("crl_invalid", ERROR,
                       f"evidence.json: CRL {n} (issuer '{crl.issuer.rfc4514_string()}') is "
                       f"not signed by the trusted CA: it was altered or is another CA's")
    return trust


def inspect_bundle(path: Path, trust: TrustPolicy, media: Path | None = None, *,
                   pages: bool = True, tsa_anchors: Sequence[bytes] | None = None) -> Report:
    """Verify a bundle. ``pages=False`` leaves out the report and player pages: the
    exporter's own check, made before the pages exist, uses it."""
    with unpacked(path) as root:
        fx = _Fx(None, [])
        digests = _check_sums(root, fx)
        evidence = _load_evidence(root)
        camera = str(evidence["camera"])
        fx.camera = camera
        for f in fx.items:
            object.__setattr__(f, "camera", camera)
        lines = [ParsedLine(i + 1, e) for i, e in
                 enumerate([*evidence["entries"], *evidence["checkpoints"],
                            *_list(evidence, "timestamps")])]
        clip = root / CLIP
        target = media if media is not None else clip
        if media is not None and not media.is_file():
            raise UsageError(f"media file {media} does not exist")
        if target.is_file():
            observed, problems = read_media([target])
        else:  # every signed frame is then reported missing (step 5)
            fx.add("clip_missing", ERROR, f"the bundle has no {CLIP}: its frames are missing")
            observed, problems = [], []
        if media is not None and not observed:
            raise CouldNotVerify(f"{media}: no H.264/H.265 video could be read")
        trust = _carried_crls(evidence, trust, fx)
        anchor = Anchor(evidence["anchor"], tuple(c for c in evidence["contexts"]
                                                  if isinstance(c, dict)),
                        tuple(_list(evidence, "keys")), tuple(_list(evidence, "rotations")))
        rep, found = inspect_camera(camera, lines, observed, problems, trust, None, anchor,
                                    tsa_anchors=tsa_anchors,
                                    timestamp_checkpoints=_list(evidence,
                                                                "timestamp_checkpoints"))
        _check_export(evidence, rep, trust, digests.get(CLIP) if clip.is_file() else None, fx)
        if pages:
            _check_pages(evidence["export"], digests, fx)
        if media is None and clip.is_file():
            _check_subtitles(clip, evidence, observed, fx)
        return Report((rep,), tuple(fx.items) + tuple(found))
