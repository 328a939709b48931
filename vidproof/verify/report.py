"""Rendering of verification reports: JSON, plain text and a standalone HTML page."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from .core import ERROR, INFO, WARNING, CameraReport, Finding, Report

_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    ms = (ns % 1_000_000_000) // 1_000_000
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind, "severity": f.severity, "camera": f.camera,
        "first_frame": f.first_frame, "last_frame": f.last_frame,
        "first_utc": iso(f.first_utc_ns), "last_utc": iso(f.last_utc_ns),
        "message": f.message,
    }


def camera_json(c: CameraReport) -> dict[str, Any]:
    return {
        "camera_id": c.camera, "frames": c.frames, "signed_frames": c.signed_frames,
        "observed_frames": c.observed_frames if c.media_checked else None,
        "first_frame": c.first_seq, "last_frame": c.last_seq,
        "first_utc": iso(c.first_utc_ns), "last_utc": iso(c.last_utc_ns),
        "checkpoints": c.checkpoints, "locations": c.locations, "key_ids": c.key_ids,
        "streams": c.streams,
        "events": [{"seq": e["seq"], "utc": iso(e["utc_ns"]), "event": e["event"],
                    "detail": e["detail"]} for e in c.events],
    }


def report_json(report: Report) -> dict[str, Any]:
    cams = report.cameras
    firsts = [c.first_utc_ns for c in cams if c.first_utc_ns is not None]
    lasts = [c.last_utc_ns for c in cams if c.last_utc_ns is not None]
    return {
        "verdict": report.verdict,
        "camera_ids": [c.camera for c in cams],
        "frames": sum(c.frames for c in cams),
        "first_utc": iso(min(firsts)) if firsts else None,
        "last_utc": iso(max(lasts)) if lasts else None,
        "locations": [loc for c in cams for loc in c.locations],
        "cameras": [camera_json(c) for c in cams],
        "findings": [finding_json(f) for f in _sorted(report.findings)],
    }


def _sorted(findings: tuple[Finding, ...]) -> list[Finding]:
    return sorted(findings, key=lambda f: (_SEVERITY_ORDER.get(f.severity, 3),
                                           f.first_frame if f.first_frame is not None else -1))


def _frames(f: Finding) -> str:
    if f.first_frame is None:
        return ""
    if f.last_frame is None or f.last_frame == f.first_frame:
        return f"frame {f.first_frame}"
    return f"frames {f.first_frame}-{f.last_frame}"


def _when(f: Finding) -> str:
    a, b = iso(f.first_utc_ns), iso(f.last_utc_ns)
    if a is None:
        return ""
    return a if b in (None, a) else f"{a} to {b}"


def report_text(report: Report) -> str:
    out = []
    verdict = ("AUTHENTIC: every frame matches signed evidence and nothing is missing"
               if report.authentic else "NOT AUTHENTIC or NOT COMPLETE: see the findings below")
    out.append(f"Verdict: {verdict}")
    for c in report.cameras:
        loc = "; ".join(f"{x['label']} ({x['lat']}, {x['lon']})" for x in c.locations)
        out.append(f"Camera {c.camera} at {loc or 'unknown location'}: {c.frames} frames "
                   f"({c.signed_frames} signed), {iso(c.first_utc_ns)} to {iso(c.last_utc_ns)}, "
                   f"{c.checkpoints} valid checkpoints")
    findings = _sorted(report.findings)
    if findings:
        out.append("Findings:")
    for f in findings:
        parts = [p for p in (_frames(f), _when(f)) if p]
        where = f" [{', '.join(parts)}]" if parts else ""
        out.append(f"  {f.severity.upper():7} {f.kind} ({f.camera}){where}: {f.message}")
    return "\n".join(out) + "\n"


def report_html(report: Report) -> str:
    e = html.escape
    rows = []
    for f in _sorted(report.findings):
        rows.append(
            f"<tr class='{e(f.severity)}'><td>{e(f.severity)}</td><td>{e(f.kind)}</td>"
            f"<td>{e(f.camera or '')}</td><td>{e(_frames(f))}</td><td>{e(_when(f))}</td>"
            f"<td>{e(f.message)}</td></tr>"
        )
    cams = []
    for c in report.cameras:
        loc = "; ".join(f"{x['label']} ({x['lat']}, {x['lon']})" for x in c.locations)
        cams.append(
            f"<tr><td>{e(c.camera)}</td><td>{e(loc)}</td><td>{c.frames}</td>"
            f"<td>{c.signed_frames}</td><td>{e(iso(c.first_utc_ns) or '')}</td>"
            f"<td>{e(iso(c.last_utc_ns) or '')}</td><td>{c.checkpoints}</td></tr>"
        )
    verdict = ("Authentic and complete" if report.authentic
               else "Not authentic or not complete")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidproof verification report</title>
<style>
body{{font-family:sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #999;padding:.3em;text-align:left}}
.verdict{{font-size:1.5em;padding:.5em;border:2px solid}}
.ok{{color:#064;border-color:#064}}.bad{{color:#900;border-color:#900}}
tr.error td{{background:#fdd}}tr.warning td{{background:#ffd}}
</style></head><body>
<h1>Video evidence verification report</h1>
<p class="verdict {'ok' if report.authentic else 'bad'}">{verdict}</p>
<p>Times are UTC. Frame numbers are the sequence numbers of the signed evidence.</p>
<h2>Cameras</h2>
<table><tr><th>Camera</th><th>Location</th><th>Frames</th><th>Signed</th><th>First frame</th>
<th>Last frame</th><th>Valid checkpoints</th></tr>{''.join(cams)}</table>
<h2>Findings ({len(rows)})</h2>
<table><tr><th>Severity</th><th>Kind</th><th>Camera</th><th>Frames</th><th>When</th>
<th>What was found</th></tr>{''.join(rows)}</table>
</body></html>
"""
