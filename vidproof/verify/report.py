"""Rendering of verification reports: JSON, plain text and a standalone HTML page."""

from __future__ import annotations

from typing import Any

from ..timefmt import iso_ns
from .core import ERROR, INFO, WARNING, CameraReport, Finding, Report

_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def iso(ns: int | None) -> str | None:
    return None if ns is None else iso_ns(ns)


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
        # Step 6: trusted timestamps (docs/FORMAT.md section 13) and clock quality (14).
        "proven_existence": [
            {"first_frame": s["first_frame"], "last_frame": s["last_frame"],
             "first_utc": iso(s["first_utc_ns"]), "last_utc": iso(s["last_utc_ns"]),
             "by_utc": iso(s["by_utc_ns"]), "tsa": s["tsa"], "proof": s["proof"]}
            for s in c.proven_existence],
        "timestamps": c.timestamps,
        "clock": c.clock,
        "keys": c.keys,  # step 4: each signing key, its certificate and rotation
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
        out.extend("  " + line for line in time_lines(c))
        out.extend("  " + line for line in key_lines(c))
    findings = _sorted(report.findings)
    if findings:
        out.append("Findings:")
    for f in findings:
        parts = [p for p in (_frames(f), _when(f)) if p]
        where = f" [{', '.join(parts)}]" if parts else ""
        out.append(f"  {f.severity.upper():7} {f.kind} ({f.camera}){where}: {f.message}")
    return "\n".join(out) + "\n"


def _ms(ns: int | None) -> str:
    if ns is None:
        return "?"
    return f"{ns / 1e6:+.3f} ms" if abs(ns) < 1_000_000_000 else f"{ns / 1e9:+.3f} s"


def time_lines(c: CameraReport) -> list[str]:
    """What step 6 found, in words: when each stretch of footage provably existed, and
    how good the recorder's clock was."""
    lines = []
    for s in c.proven_existence:
        span = (f"frames {s['first_frame']}-{s['last_frame']} ({iso(s['first_utc_ns'])} to "
                f"{iso(s['last_utc_ns'])})")
        if s["by_utc_ns"] is None:
            lines.append(f"Existence: {span}: no trusted timestamp covers them; their times are "
                         "only the recorder's own claim")
        else:
            lines.append(f"Existence: {span} provably existed by {iso(s['by_utc_ns'])} "
                         f"(RFC 3161 timestamp by {s['tsa']})")
    ts = c.timestamps
    if ts.get("tokens"):
        anchor = {True: "checked against the trusted TSA certificate",
                  False: "NOT from the trusted TSA certificate",
                  None: "checked against the certificate they carry (no --tsa-cert given)"}
        lines.append(f"Timestamps: {ts['valid']} of {ts['tokens']} tokens valid, "
                     f"{anchor[ts.get('anchored')]}")
    clock = c.clock
    if clock and clock.get("measured"):
        first = clock["measurements"][0]
        offs = [m for m in clock["measurements"] if m["offset_ns"] is not None]
        lines.append(
            f"Clock: {first['status']} at the start"
            + (f" (offset {_ms(first['offset_ns'])} against {first['server']}, stratum "
               f"{first['stratum']})" if first["offset_ns"] is not None else "")
            + f"; {len(clock['measurements'])} measurements, largest offset "
            f"{_ms(clock['max_abs_offset_ns']) if offs else 'unknown'}"
            + ("; recorded with --allow-unsynced-clock" if clock.get("override") else ""))
    elif clock:
        lines.append("Clock: not measured against NTP servers (recorded without --ntp): frame "
                     "times are the recorder's own clock")
    for j in (clock or {}).get("jumps", []):
        lines.append(f"Clock: the wall clock jumped by {_ms(j['jump_ns'])} at "
                     f"{iso(j['utc_ns'])} (signed clock_jump event, seq {j['seq']})")
    return lines


def report_html(report: Report) -> str:
    import html  # here: ``--json`` and text reports need not import it

    e = html.escape
    time_items = "".join(f"<li>{e(c.camera)}: {e(line)}</li>" for c in report.cameras
                         for line in time_lines(c))
    key_items = "".join(f"<li>{e(c.camera)}: {e(line)}</li>" for c in report.cameras
                        for line in key_lines(c))
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
<h2>Time: proven existence and clock quality</h2>
<ul>{time_items}</ul>
<h2>Signing keys and certificates</h2>
<ul>{key_items}</ul>
<h2>Findings ({len(rows)})</h2>
<table><tr><th>Severity</th><th>Kind</th><th>Camera</th><th>Frames</th><th>When</th>
<th>What was found</th></tr>{''.join(rows)}</table>
</body></html>
"""


def key_lines(c: CameraReport) -> list[str]:
    """Step 4's keys, in words: who signed, certified by whom, valid when."""
    lines = []
    for k in c.keys:
        head = (f"Key {str(k.get('id'))[:16]}… ({k.get('alg')}): {k.get('checkpoints')} "
                f"checkpoints, seq {k.get('first_seq')}-{k.get('last_seq')}")
        if k.get("introduced_at_seq") is not None:
            head += f", introduced by the key rotation at seq {k['introduced_at_seq']}"
        cert = k.get("certificate")
        if isinstance(cert, dict):
            head += (f"; certificate {cert.get('subject')} (serial {cert.get('serial')}) from "
                     f"{cert.get('issuer')}, valid {cert.get('not_before')} to "
                     f"{cert.get('not_after')}")
            if cert.get("revoked_from"):
                head += f", revoked from {cert['revoked_from']}"
            known = cert.get("revocation_known_until")
            head += (f"; revocation status known until {known}" if known else
                     "; no CRL was given: revocation not checked")
        elif isinstance(cert, str):
            head += f"; certificate not valid: {cert}"
        elif k.get("trusted_as"):
            head += f"; trusted as {k['trusted_as']}"
        lines.append(head)
    return lines
