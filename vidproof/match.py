"""Perceptual match: which certified frames a transcoded working copy shows.

A working copy (another codec, bitrate or size) no longer has the certified
frames' digests, so ``vidproof verify`` cannot vouch for it. ``vidproof match``
tells, for each frame of the copy, which certified frame it shows and how closely,
from the frames' fingerprints (:mod:`vidproof.stamp.fingerprint`: 16x16 luma block
means, robust to re-encoding and scaling). It is a weaker finding than
verification, and says so: a match shows that the pictures look alike, not that
the copy is unaltered.

Certified fingerprints come from the frame records (``fp``, written in transcode
mode); for frames recorded without one (passthrough), the certified media (the
store's segments, or the bundle's ``clip.mp4``) is decoded and each picture
fingerprinted, matched to its record by frame digest.

Alignment, robust to dropped, repeated or retimed frames:

1. anchors: up to 64 copy frames spread over the copy are searched among all
   certified frames (4x4 coarse signatures first, then the full distance); the
   anchors that match (distance <= threshold) in increasing order of both copy and
   certified position give the copy's place in the certified footage;
2. each copy frame is compared with the certified frames in a band around its
   expected place (interpolated between anchors);
3. the assignment is the monotonic one (certified positions strictly increase
   with the copy's) with the most matched frames, then the smallest total
   distance (a weighted longest increasing subsequence), with the copy's own
   timestamps as a tie-breaker between near-identical pictures;
4. a copy frame left out that shows the same certified frame as its neighbour
   (a repeated picture) is matched to it.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from .digest import SUPPORTED_CODECS, BitstreamError, FrameHasher
from .errors import CouldNotVerify, UsageError
from .model import RecordError, check_camera_id, entry_from_json
from .stamp import FINGERPRINT_SIZE, distances, fingerprint
from .timefmt import iso_ns

DEFAULT_THRESHOLD = 6.0  # mean absolute luma difference (levels) for a match
MATCHED_FOR_SUCCESS = 0.99
ANCHORS = 64
CANDIDATES = 4
STATEMENT = ("A perceptual match is not proof of integrity: it shows that the copy's "
             "pictures look like the certified frames named, not that the copy is complete or "
             "unaltered. Only the certified media, checked with `vidproof verify`, is proof.")
_EIGHT_BIT_YUV = ("yuv420p", "yuv422p", "yuv444p", "yuv410p", "yuv411p", "yuv440p", "nv12",
                  "nv21", "nv16", "gray", "yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p",
                  "yuvj411p")


# -- fingerprints of pictures ----------------------------------------------------------

def frame_fingerprint(frame: Any) -> bytes:
    """The fingerprint of a decoded picture's luma (limited range, 8 bits)."""
    name = frame.format.name
    if name not in _EIGHT_BIT_YUV:
        frame = frame.reformat(format="yuv420p")
        name = "yuv420p"
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
    fp = fingerprint(y)
    if name.startswith("yuvj"):  # full-range luma: map the block means to 16..235
        a = np.frombuffer(fp, np.uint8).astype(np.int32)
        fp = ((a * 219 + 127) // 255 + 16).astype(np.uint8).tobytes()
    return fp


@dataclass
class CopyFrames:
    fps: np.ndarray  # (m, 256) uint8
    times: np.ndarray  # (m,) float seconds (nan when unknown)
    width: int = 0
    height: int = 0
    codec: str = ""


def read_copy(path: Path) -> CopyFrames:
    """Decode every picture of a media file and fingerprint it."""
    if not path.is_file():
        raise UsageError(f"copy {path} does not exist or is not a file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise CouldNotVerify(f"{path} is not readable as media "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
    fps: list[bytes] = []
    times: list[float] = []
    with container:
        if not container.streams.video:
            raise CouldNotVerify(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        width = height = 0
        try:
            for frame in container.decode(stream):
                try:
                    fps.append(frame_fingerprint(frame))
                except ValueError as exc:  # too small a picture
                    raise CouldNotVerify(f"{path}: {exc}") from None
                width, height = frame.width, frame.height
                t = frame.time
                times.append(float("nan") if t is None else float(t))
        except av.FFmpegError as exc:
            if not fps:
                raise CouldNotVerify(f"{path}: cannot decode the video ({exc})") from None
    if not fps:
        raise CouldNotVerify(f"{path}: no picture could be decoded")
    return CopyFrames(np.frombuffer(b"".join(fps), np.uint8).reshape(-1, FINGERPRINT_SIZE),
                      np.array(times, np.float64), width, height, cc.name)


# -- the certified side ------------------------------------------------------------------

@dataclass
class Certified:
    """A camera's certified frames, in chain order, with their fingerprints."""

    camera: str
    seqs: list[int] = field(default_factory=list)
    utc_ns: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    fps: list[bytes | None] = field(default_factory=list)
    media: list[Path] = field(default_factory=list)
    kind: str = "store"
    recorded_fps: int = 0
    computed_fps: int = 0

    def add(self, entry: dict[str, Any]) -> None:
        import base64

        self.seqs.append(entry["seq"])
        self.utc_ns.append(entry["utc_ns"])
        self.digests.append(entry["digest"])
        fp = entry.get("fp")
        self.fps.append(base64.b64decode(fp) if isinstance(fp, str) else None)


def _frame_entries(lines: Iterator[Any], camera: str, where: str) -> Iterator[dict[str, Any]]:
    for n, value in enumerate(lines, start=1):
        if not isinstance(value, dict) or value.get("type") != "frame":
            continue
        try:
            rec = entry_from_json(value)
        except RecordError as exc:
            raise CouldNotVerify(f"{where} entry {n} is malformed ({exc}); run vidproof "
                                 "verify on it") from None
        if rec.camera == camera:
            yield value


def _json_lines(path: Path) -> Iterator[Any]:
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    return  # a line being written
                try:
                    yield json.loads(raw)
                except ValueError:
                    yield None
    except OSError as exc:
        raise CouldNotVerify(f"cannot read {path}: {exc.strerror}") from None


@contextmanager
def open_evidence(path: Path, camera: str | None) -> Iterator[Certified]:
    """A store's camera, or an export bundle (zip or unpacked), as :class:`Certified`."""
    from .verify.bundle import CLIP, _load_evidence, is_bundle, unpacked

    if not path.exists():
        raise UsageError(f"evidence {path} does not exist; expected a store or a bundle")
    if is_bundle(path):
        with unpacked(path) as root:
            evidence = _load_evidence(root)
            cert = Certified(str(evidence["camera"]), kind="bundle")
            if camera is not None and camera != cert.camera:
                raise UsageError(f"the bundle holds camera {cert.camera!r}, not {camera!r}")
            for e in _frame_entries(iter(evidence["entries"]), cert.camera, "evidence.json"):
                cert.add(e)
            if (root / CLIP).is_file():
                cert.media = [root / CLIP]
            yield cert
        return
    if not path.is_dir():
        raise CouldNotVerify(f"{path} is neither a store directory nor an export bundle")
    cams = sorted(p.name for p in path.iterdir() if (p / "evidence.jsonl").is_file())
    if camera is not None:
        try:
            check_camera_id(camera)
        except RecordError as exc:
            raise UsageError(str(exc)) from None
        if camera not in cams:
            raise UsageError(f"camera {camera!r} has no evidence in {path}")
    elif len(cams) != 1:
        raise UsageError(f"{path} holds {len(cams)} cameras: name one with --camera"
                         if cams else f"{path} is not a vidproof store or bundle")
    cam = camera or cams[0]
    cert = Certified(cam)
    for e in _frame_entries(_json_lines(path / cam / "evidence.jsonl"), cam, "evidence.jsonl"):
        cert.add(e)
    seg_dir = path / cam / "segments"
    cert.media = sorted(seg_dir.glob("*.ts")) if seg_dir.is_dir() else []
    yield cert


def fill_fingerprints(cert: Certified) -> None:
    """Fingerprints for frames recorded without one: decode the certified media and
    match each picture to its record by frame digest."""
    cert.recorded_fps = sum(fp is not None for fp in cert.fps)
    missing = {d for d, fp in zip(cert.digests, cert.fps, strict=True) if fp is None}
    if not missing:
        return
    found: dict[str, bytes] = {}
    for path in cert.media:
        try:
            container = av.open(str(path))
        except (av.FFmpegError, OSError):
            continue
        with container:
            if not container.streams.video:
                continue
            stream = container.streams.video[0]
            cc = stream.codec_context
            if cc.name not in SUPPORTED_CODECS:
                continue
            hasher = FrameHasher.of_stream(stream)
            by_pts: dict[int | None, str] = {}
            try:
                for packet in container.demux(stream):
                    if packet.size:
                        with suppress(BitstreamError):
                            by_pts[packet.pts] = hasher.digest(memoryview(packet)).digest
                    for frame in packet.decode():
                        d = by_pts.pop(frame.pts, None)
                        if d in missing:
                            found[d] = frame_fingerprint(frame)
            except av.FFmpegError:
                continue  # damaged media: its frames stay without fingerprints
    for k, d in enumerate(cert.digests):
        if cert.fps[k] is None and d in found:
            cert.fps[k] = found[d]
            cert.computed_fps += 1


# -- alignment --------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameMatch:
    index: int  # copy frame
    cert: int | None  # index into the certified frames, None: no match
    distance: float | None  # to that certified frame, or to the nearest one seen
    repeat: bool = False  # shows the same certified frame as the copy frame before/after


def _coarse(fps: np.ndarray) -> np.ndarray:
    blocks = fps.reshape(-1, 4, 4, 4, 4).astype(np.float32).mean(axis=(2, 4))
    return np.asarray(blocks, np.float32).reshape(-1, 16)


def _monotonic(points: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """The longest subsequence of (copy i, cert j, d), sorted by i, with j increasing."""
    tails: list[int] = []
    tail_idx: list[int] = []
    prev = [-1] * len(points)
    for k, (_, j, _) in enumerate(points):
        pos = bisect.bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tail_idx.append(k)
        else:
            tails[pos], tail_idx[pos] = j, k
        prev[k] = tail_idx[pos - 1] if pos else -1
    out: list[tuple[int, int, float]] = []
    k = tail_idx[-1] if tail_idx else -1
    while k >= 0:
        out.append(points[k])
        k = prev[k]
    return out[::-1]


class _MaxTree:
    """Prefix maximum over positions 0..n-1 (Fenwick tree) with the node that holds it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.score = [-math.inf] * (n + 1)
        self.node = [-1] * (n + 1)

    def update(self, pos: int, score: float, node: int) -> None:
        i = pos + 1
        while i <= self.n:
            if score > self.score[i]:
                self.score[i], self.node[i] = score, node
            i += i & -i

    def query(self, pos: int) -> tuple[float, int]:
        """Best over positions 0..pos (pos < 0: none)."""
        best, node = 0.0, -1
        i = pos + 1
        while i > 0:
            if self.score[i] > best:
                best, node = self.score[i], self.node[i]
            i -= i & -i
        return best, node


def align(cert: np.ndarray, cert_t: np.ndarray, copy: np.ndarray, copy_t: np.ndarray,
          threshold: float = DEFAULT_THRESHOLD) -> list[FrameMatch]:
    """Match each copy frame to a certified frame (see the module's docstring).

    ``cert``: (n, 256) uint8 fingerprints in chain order, ``cert_t`` their capture
    times (ns); ``copy``: (m, 256), ``copy_t`` presentation times (s, nan unknown)."""
    n, m = len(cert), len(copy)
    if n == 0 or m == 0:
        return [FrameMatch(i, None, None) for i in range(m)]
    cc, cq = _coarse(cert), _coarse(copy)
    # 1. Anchors.
    picks = sorted(set(np.linspace(0, m - 1, min(m, ANCHORS)).round().astype(int).tolist()))
    found: list[tuple[int, int, float]] = []
    k = min(n, 64)
    for a in picks:
        coarse = np.abs(cc - cq[a]).mean(axis=1)
        cands = np.argpartition(coarse, k - 1)[:k] if k < n else np.arange(n)
        d = distances(copy[a], cert[cands])
        b = int(np.argmin(d))
        if d[b] <= threshold:
            found.append((a, int(cands[b]), float(d[b])))
    anchors = _monotonic(found)
    if not anchors:
        return [FrameMatch(i, None, None) for i in range(m)]
    ai = np.array([a[0] for a in anchors], np.float64)
    aj = np.array([a[1] for a in anchors], np.float64)
    slope = (aj[-1] - aj[0]) / (ai[-1] - ai[0]) if len(anchors) > 1 else 1.0
    slope = min(max(slope, 0.1), 10.0)
    spacing = m / len(picks)
    band = int(max(16, math.ceil(2.5 * spacing * max(slope, 1.0)) + 8))
    # The copy's clock against the certified one, for tie-breaking only.
    offsets = [copy_t[a] - cert_t[j] / 1e9 for a, j, _ in anchors if not math.isnan(copy_t[a])]
    offset = float(np.median(offsets)) if offsets else None
    # 2. Candidates in a band around each copy frame's expected place.
    idx = np.arange(m, dtype=np.float64)
    expected = np.interp(idx, ai, aj)
    expected = np.where(idx < ai[0], aj[0] - (ai[0] - idx) * slope, expected)
    expected = np.where(idx > ai[-1], aj[-1] + (idx - ai[-1]) * slope, expected)
    cands_of: list[list[tuple[int, float]]] = []
    nearest: list[float] = []
    for i in range(m):
        lo = int(max(0, min(n, round(expected[i]) - band)))
        hi = int(max(0, min(n, round(expected[i]) + band + 1)))
        if hi <= lo:
            cands_of.append([])
            nearest.append(math.nan)
            continue
        d = distances(copy[i], cert[lo:hi])
        nearest.append(float(d.min()))
        ok = np.flatnonzero(d <= threshold)
        if len(ok) > CANDIDATES:
            ok = ok[np.argsort(d[ok], kind="stable")[:CANDIDATES]]
        row = []
        for o in ok.tolist():
            j = lo + o
            cost = float(d[o])
            if offset is not None and not math.isnan(copy_t[i]):
                drift = abs(copy_t[i] - cert_t[j] / 1e9 - offset)
                cost += 0.01 * min(drift, 10.0)
            row.append((j, cost))
        cands_of.append(row)
    # 3. Weighted longest increasing subsequence: most matches, then least distance.
    big = threshold * m + 1.0
    tree = _MaxTree(n)
    nodes: list[tuple[int, int, int]] = []  # (copy i, cert j, previous node)
    best_score, best_node = 0.0, -1
    for i, row in enumerate(cands_of):
        updates = []
        for j, cost in row:
            prev_score, prev_node = tree.query(j - 1)
            score = prev_score + big - cost
            nodes.append((i, j, prev_node))
            updates.append((j, score, len(nodes) - 1))
        for j, score, node in updates:
            tree.update(j, score, node)
            if score > best_score:
                best_score, best_node = score, node
    chosen: dict[int, int] = {}
    node = best_node
    while node >= 0:
        i, j, node = nodes[node]
        chosen[i] = j
    out = []
    for i in range(m):
        hit = chosen.get(i)
        if hit is not None:
            out.append(FrameMatch(i, hit, float(distances(copy[i], cert[hit:hit + 1])[0])))
            continue
        # 4. A repeated picture: the certified frame of a neighbour.
        for nb in (i - 1, i + 1):
            jn = chosen.get(nb)
            if jn is not None:
                dn = float(distances(copy[i], cert[jn:jn + 1])[0])
                if dn <= threshold:
                    out.append(FrameMatch(i, jn, dn, repeat=True))
                    break
        else:
            out.append(FrameMatch(i, None, None if math.isnan(nearest[i]) else nearest[i]))
    return out


# -- the report ----------------------------------------------------------------------------

_iso = iso_ns


@dataclass(frozen=True)
class MatchReport:
    copy: Path
    evidence: Path
    certified: Certified
    copy_frames: CopyFrames
    matches: list[FrameMatch]
    threshold: float
    evidence_verdict: str | None  # "authentic"/"not_authentic" when checked, else None

    @property
    def matched(self) -> int:
        return sum(1 for x in self.matches if x.cert is not None)

    @property
    def ratio(self) -> float:
        return self.matched / len(self.matches) if self.matches else 0.0

    @property
    def verdict(self) -> str:
        if self.ratio >= MATCHED_FOR_SUCCESS:
            return "match"
        return "partial_match" if self.matched else "no_match"

    @property
    def success(self) -> bool:
        return self.verdict == "match" and self.evidence_verdict in (None, "authentic")

    def findings(self) -> list[dict[str, Any]]:
        c = self.certified
        out: list[dict[str, Any]] = []
        runs: list[list[FrameMatch]] = []
        for x in self.matches:
            if runs and (x.cert is None) == (runs[-1][-1].cert is None):
                runs[-1].append(x)
            else:
                runs.append([x])
        for run in runs:
            a, b = run[0].index, run[-1].index
            span = f"copy frame {a}" if a == b else f"copy frames {a}..{b}"
            if run[0].cert is None:
                near = [x.distance for x in run if x.distance is not None]
                out.append({
                    "kind": "no_perceptual_match", "severity": "warning",
                    "first_frame": None, "last_frame": None, "first_utc": None,
                    "last_utc": None, "copy_first": a, "copy_last": b,
                    "message": f"{span} look like no certified frame"
                               + (f" (nearest distance {min(near):.2f})" if near else "")})
                continue
            js = [x.cert for x in run if x.cert is not None]
            lo, hi = min(js), max(js)
            ds = [x.distance for x in run if x.distance is not None]
            shown = len(set(js))
            skipped = (hi - lo + 1) - shown
            repeats = sum(x.repeat for x in run)
            extra = []
            if skipped:
                extra.append(f"{skipped} certified frames of that range are not in the copy")
            if repeats:
                extra.append(f"{repeats} copy frames repeat the picture before them")
            out.append({
                "kind": "perceptual_match", "severity": "info",
                "first_frame": c.seqs[lo], "last_frame": c.seqs[hi],
                "first_utc": _iso(c.utc_ns[lo]), "last_utc": _iso(c.utc_ns[hi]),
                "copy_first": a, "copy_last": b,
                "message": f"{span} show certified frames seq {c.seqs[lo]}..{c.seqs[hi]} "
                           f"({_iso(c.utc_ns[lo])} to {_iso(c.utc_ns[hi])}), mean distance "
                           f"{sum(ds) / len(ds):.2f}, at most {max(ds):.2f} (luma levels; "
                           f"matched up to {self.threshold:g})"
                           + ("; " + "; ".join(extra) if extra else "")
                           + ": a perceptual match, not proof of integrity"})
        return out

    def to_json(self) -> dict[str, Any]:
        c, q = self.certified, self.copy_frames
        matched = [x for x in self.matches if x.cert is not None]
        return {
            "verdict": self.verdict,
            "statement": STATEMENT,
            "copy": {"path": str(self.copy), "frames": len(self.matches), "codec": q.codec,
                     "width": q.width, "height": q.height},
            "evidence": {"path": str(self.evidence), "kind": c.kind, "camera": c.camera,
                         "frames": len(c.seqs), "fingerprints_recorded": c.recorded_fps,
                         "fingerprints_computed": c.computed_fps,
                         "verdict": self.evidence_verdict or "not checked (no --trust)"},
            "threshold": self.threshold,
            "matched": len(matched),
            "matched_ratio": round(self.ratio, 6),
            "first_frame": min((c.seqs[x.cert] for x in matched if x.cert is not None),
                               default=None),
            "last_frame": max((c.seqs[x.cert] for x in matched if x.cert is not None),
                              default=None),
            "findings": self.findings(),
            "frames": [{"copy_index": x.index,
                        "copy_time": None if math.isnan(q.times[x.index])
                        else round(float(q.times[x.index]), 6),
                        "seq": None if x.cert is None else c.seqs[x.cert],
                        "utc": None if x.cert is None else _iso(c.utc_ns[x.cert]),
                        "distance": None if x.distance is None else round(x.distance, 3),
                        "repeat": x.repeat}
                       for x in self.matches],
        }

    def to_text(self) -> str:
        j = self.to_json()
        lines = [f"perceptual match of {self.copy} against {self.evidence} "
                 f"(camera {self.certified.camera}): {j['verdict'].upper().replace('_', ' ')}",
                 f"  {j['matched']} of {len(self.matches)} copy frames "
                 f"({100 * self.ratio:.1f} %) show a certified frame",
                 f"  evidence: {j['evidence']['verdict']}"]
        for f in j["findings"]:
            lines.append(f"  [{f['severity']}] {f['kind']}: {f['message']}")
        lines.append(f"  {STATEMENT}")
        return "\n".join(lines) + "\n"


def match(copy: Path, evidence: Path, *, camera: str | None = None,
          threshold: float = DEFAULT_THRESHOLD, evidence_verdict: str | None = None,
          ) -> MatchReport:
    """Match a working copy against the certified frames of a store or bundle."""
    if not (0 < threshold <= 255):
        raise UsageError(f"threshold {threshold} is invalid: expected 0 < threshold <= 255")
    if not evidence.exists():
        raise UsageError(f"evidence {evidence} does not exist; expected a store or a bundle")
    copy_frames = read_copy(copy)
    with open_evidence(evidence, camera) as cert:
        if not cert.seqs:
            raise CouldNotVerify(f"{evidence} holds no frame record")
        fill_fingerprints(cert)
    keep = [k for k, fp in enumerate(cert.fps) if fp is not None]
    if not keep:
        raise CouldNotVerify(f"{evidence}: no certified frame has a fingerprint, and the "
                             "certified media could not be decoded to compute them")
    full = Certified(cert.camera, [cert.seqs[k] for k in keep], [cert.utc_ns[k] for k in keep],
                     [cert.digests[k] for k in keep], [cert.fps[k] for k in keep], cert.media,
                     cert.kind, cert.recorded_fps, cert.computed_fps)
    cert_fps = np.frombuffer(b"".join(fp for fp in full.fps if fp is not None),
                             np.uint8).reshape(-1, FINGERPRINT_SIZE)
    matches = align(cert_fps, np.array(full.utc_ns, np.int64), copy_frames.fps,
                    copy_frames.times, threshold)
    return MatchReport(copy, evidence, full, copy_frames, matches, threshold, evidence_verdict)

