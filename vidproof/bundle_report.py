"""The human-facing pages of an export bundle: the certificate (report.html and,
when Chromium is installed, report.pdf) and the offline player (player.html)."""

from __future__ import annotations

import base64
import html
import json
import shutil
import subprocess
import tempfile
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from .keys import Signer
from .verify.report import iso

if TYPE_CHECKING:
    from .export import ClipInfo, ExportRequest

THUMB_WIDTH = 320


def _thumbnails(clip: Path, count: int) -> list[tuple[int, str]]:
    """PNG data URIs of the first, middle and last frames (index, uri).

    Decoded frames come out in presentation order; only the three wanted are kept."""
    wanted = sorted({0, count // 2, count - 1})
    out: list[tuple[int, str]] = []
    with av.open(str(clip)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i not in wanted:
                continue
            h = max(2, round(frame.height * THUMB_WIDTH / frame.width / 2) * 2)
            small = frame.reformat(width=THUMB_WIDTH, height=h, format="rgb24")
            png = av.CodecContext.create("png", "w")
            png.width, png.height, png.pix_fmt = THUMB_WIDTH, h, "rgb24"
            data = b"".join(bytes(p) for p in [*png.encode(small), *png.encode(None)])
            out.append((i, "data:image/png;base64," + base64.b64encode(data).decode()))
            if i == wanted[-1]:
                break
    return out


def _timeline_svg(start_ns: int, end_ns: int, frames: list[dict[str, Any]],
                  events: list[dict[str, Any]], fps: float) -> str:
    """Coverage (green) and gaps (red) over the requested range, as inline SVG."""
    width, height = 800, 60
    span = max(end_ns - start_ns, 1)

    def x(ns: int) -> float:
        return max(0.0, min(width, (ns - start_ns) / span * width))

    gap_ns = int(3e9 / fps) if fps > 0 else 1_000_000_000
    runs: list[list[int]] = []
    for f in frames:
        t = f["utc_ns"]
        if runs and t - runs[-1][1] <= gap_ns:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    parts = [f'<rect x="0" y="10" width="{width}" height="30" fill="#f4d0d0"/>']
    for a, b in runs:
        parts.append(f'<rect x="{x(a):.1f}" y="10" width="{max(x(b) - x(a), 1):.1f}" '
                     f'height="30" fill="#3a9d5d"/>')
    for e in events:
        parts.append(f'<line x1="{x(e["utc_ns"]):.1f}" x2="{x(e["utc_ns"]):.1f}" y1="5" '
                     f'y2="45" stroke="#333"><title>{html.escape(e["event"])}</title></line>')
    parts.append(f'<text x="0" y="58" font-size="11">{html.escape(iso(start_ns) or "")}</text>')
    parts.append(f'<text x="{width}" y="58" font-size="11" text-anchor="end">'
                 f'{html.escape(iso(end_ns) or "")}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="timeline of coverage">{"".join(parts)}</svg>')


def _self_check(work: Path, signer: Signer) -> dict[str, Any]:
    """Verify the clip and evidence as the court will, with the recorder's own public key."""
    from .verify.bundle import inspect_bundle
    from .verify.report import report_json

    with tempfile.TemporaryDirectory(prefix=".check-", dir=work.parent) as tmp:
        root = Path(tmp)
        for name in ("clip.mp4", "evidence.json"):
            (root / name).symlink_to(work / name)
        from .export import file_sha256

        (root / "SHA256SUMS").write_text("".join(
            f"{file_sha256(work / n)}  {n}\n" for n in ("clip.mp4", "evidence.json")))
        from .trust.carry import self_check_policy  # the signer's CA, or first key

        evidence = json.loads((work / "evidence.json").read_text(encoding="utf-8"))
        return report_json(inspect_bundle(root, self_check_policy(signer, evidence),
                                          pages=False))


def _print_pdf(html_path: Path, pdf_path: Path) -> bool:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    with tempfile.TemporaryDirectory(prefix="vidproof-chromium-") as profile:
        try:
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", "--no-pdf-header-footer",
                 f"--print-to-pdf={pdf_path}", html_path.as_uri()],
                capture_output=True, timeout=120, check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return pdf_path.is_file() and pdf_path.stat().st_size > 0


def render_bundle_pages(work: Path, req: ExportRequest, evidence: dict[str, Any],
                        clip: ClipInfo, context: dict[str, Any], tz: tzinfo,
                        signer: Signer, trimmed: bool) -> None:
    from .export import file_sha256, parse_time, to_ns, utc_offset_minutes
    from .timefmt import iso_ns

    check = _self_check(work, signer)
    (work / ".verdict.json").write_text(json.dumps({"verdict": check["verdict"]}))
    exp = evidence["export"]
    frames = [e for e in evidence["entries"] if e["type"] == "frame"]
    events = [e for e in evidence["entries"] if e["type"] == "event"]
    shown = sorted(frames, key=lambda f: f["utc_ns"])  # presentation order
    first_ns, last_ns = shown[0]["utc_ns"], shown[-1]["utc_ns"]
    times = sorted(clip.frame_times)
    duration = times[-1] - times[0] + (times[1] - times[0] if len(times) > 1 else 0)
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] \
        else 0.0
    loc = context["location"]
    e = html.escape
    offset = datetime.fromtimestamp(first_ns / 1e9, tz=tz).strftime("%z")
    tzname = getattr(tz, "key", None) or str(tz)
    # evidence.json is not listed: it signs these pages, after they are made.
    digests = {n: file_sha256(work / n) for n in ("clip.mp4",)}
    thumbs = _thumbnails(work / "clip.mp4", clip.frames)
    findings = check["findings"]
    problems = [f for f in findings if f["severity"] in ("error", "warning")]
    notes = [f for f in findings if f["severity"] == "info"]
    verdict_ok = check["verdict"] == "authentic"
    gaps = "".join(
        f"<li>{e(f['first_utc'] or '')}: {e(f['kind'].replace('_', ' '))} — {e(f['message'])}</li>"
        for f in notes) or "<li>None: the footage is continuous.</li>"
    problem_rows = "".join(
        f"<li><b>{e(f['kind'])}</b> ({e(f['severity'])}): {e(f['message'])}</li>"
        for f in problems)
    thumbs_html = "".join(
        f'<figure><img src="{uri}" alt="frame {i + 1}" width="{THUMB_WIDTH}">'
        f"<figcaption>Frame {i + 1} of {clip.frames}, "
        f"{e(iso_ns(shown[min(i, len(shown) - 1)]['utc_ns']))}</figcaption></figure>"
        for i, uri in thumbs)
    trimmed_note = ("<p><b>Note:</b> the end of the requested range was still being "
                    "recorded and signed when exported; the clip stops at the last signed "
                    "frame.</p>" if trimmed else "")
    file_rows = "".join(f"<tr><th>SHA-256 of {e(n)}</th><td><code>{d}</code></td></tr>"
                        for n, d in digests.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Video evidence certificate — {e(req.camera)} — case {e(req.case)}</title>
<style>
body{{font-family:Georgia,serif;max-width:60em;margin:2em auto;padding:0 1em;color:#111}}
h1{{font-size:1.6em}} h2{{border-bottom:1px solid #999;font-size:1.2em;margin-top:1.5em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #aaa;padding:.25em .5em;text-align:left;vertical-align:top}}
.verdict{{padding:.6em 1em;border:3px solid;font-size:1.2em;font-weight:bold}}
.ok{{color:#064;border-color:#064}} .bad{{color:#900;border-color:#900}}
figure{{display:inline-block;margin:.5em}} figcaption{{font-size:.8em}}
code{{font-size:.85em;word-break:break-all}}
</style></head><body>
<h1>Certificate of exported video evidence</h1>
<p>This document describes a video clip exported from a video-surveillance recorder running
vidproof. Every frame of the clip was fingerprinted (SHA-256) and signed by the recorder as it
was recorded; this certificate lets anyone check that the clip is exactly what was recorded,
when and where.</p>
<p class="verdict {'ok' if verdict_ok else 'bad'}">{
    'Verified at export: every frame matches the signed recording, nothing is missing.'
    if verdict_ok else 'Verification at export found problems: see below.'}</p>
{('<ul>' + problem_rows + '</ul>') if problem_rows else ''}
{trimmed_note}
<h2>What the clip shows</h2>
<table>
<tr><th>Camera</th><td>{e(req.camera)}</td></tr>
<tr><th>Location</th><td>{e(loc['label'])}<br>latitude {e(loc['lat'])}, longitude {e(loc['lon'])}</td></tr>
<tr><th>From</th><td>{e(iso_ns(first_ns))} UTC<br>{e(iso_ns(first_ns, tz))} local time ({e(tzname)}, UTC{offset[:3]}:{offset[3:]})</td></tr>
<tr><th>To</th><td>{e(iso_ns(last_ns))} UTC<br>{e(iso_ns(last_ns, tz))} local time</td></tr>
<tr><th>Duration</th><td>{duration:.3f} s</td></tr>
<tr><th>Frames</th><td>{clip.frames}</td></tr>
<tr><th>Picture</th><td>{clip.width} × {clip.height}, {e(clip.codec.upper())}, measured {fps:.2f} frames per second</td></tr>
<tr><th>Gaps and events</th><td><ul>{gaps}</ul></td></tr>
</table>
<h2>Coverage</h2>
{_timeline_svg(min(first_ns, to_ns(parse_time(exp['requested']['from'], 'from'))),
               max(last_ns, to_ns(parse_time(exp['requested']['to'], 'to'))), frames, events,
               fps)}
<p>Green: recorded footage in this clip. Red: requested time with no footage in the clip.
Marks: recorder events.</p>
<h2>First, middle and last frames</h2>
{thumbs_html}
<h2>The export</h2>
<table>
<tr><th>Case</th><td>{e(req.case)}</td></tr>
<tr><th>Exported by</th><td>{e(req.officer)}</td></tr>
<tr><th>Reason</th><td>{e(req.reason or '—')}</td></tr>
<tr><th>Exported at</th><td>{e(iso_ns(exp['utc_ns']))} UTC</td></tr>
<tr><th>Time range asked for</th><td>{e(exp['requested']['from'])} to {e(exp['requested']['to'])}</td></tr>
<tr><th>Recorder</th><td>{e(exp['recorder']['host'])}, {e(exp['recorder']['software'])}</td></tr>
</table>
<h2>How to check this clip yourself</h2>
<ol>
<li><code>sha256sum -c SHA256SUMS</code> in the unpacked bundle checks that no file was changed
since the export.</li>
<li><code>vidproof verify BUNDLE.zip --trust device.pub</code> (offline) checks every frame against
the recorder's signatures; exit code 0 means authentic and complete.</li>
<li><code>player.html</code> plays the clip frame by frame with the date, time and place of each
frame. The clip also plays in any player (VLC, a browser) with subtitles showing them.</li>
</ol>
<h2>Technical details</h2>
<table>
<tr><th>Recorder key (Ed25519, SHA-256 of the public key)</th><td><code>{e(exp['key'])}</code></td></tr>
<tr><th>Frames (evidence sequence numbers)</th><td>{exp['first_seq']} to {exp['last_seq']}</td></tr>
<tr><th>Signed checkpoints in the clip</th><td>{len(evidence['checkpoints'])} (plus the one
before the first frame)</td></tr>
{file_rows}
</table>
<p>SHA256SUMS lists the SHA-256 of every file of the bundle. The export record in
evidence.json, signed by the recorder, gives the SHA-256 of the clip, of this report and of
the player, so that none of them can be altered unnoticed by <code>vidproof verify</code>.
The evidence format is documented in vidproof's docs/FORMAT.md.</p>
</body></html>
"""
    (work / "report.html").write_text(page, encoding="utf-8")
    _print_pdf(work / "report.html", work / "report.pdf")
    player_data = {
        "format": "vidproof-player/1", "clip": "clip.mp4", "camera_id": req.camera,
        "location": dict(loc),
        "timezone": {"name": tzname, "offset_minutes": utc_offset_minutes(first_ns, tz)},
        "fps": round(fps, 3),
        "frames": [{"seq": f["seq"], "t": t, "utc_ns": str(f["utc_ns"]), "key": f["key"]}
                   for f, t in sorted(zip(frames, clip.frame_times, strict=True),
                                      key=lambda ft: ft[1])],
        "sha256": {**digests, **{n: file_sha256(work / n) for n in ("report.html", "report.pdf")
                                 if (work / n).is_file()}},
        "case": req.case, "exported_utc": iso_ns(exp["utc_ns"]), "officer": req.officer,
    }
    from .player.render import render_player

    (work / "player.html").write_text(render_player(player_data), encoding="utf-8")
