"""Fuzzing the running service: schemathesis against its OpenAPI schema, and garbage
uploaded to POST /api/verify.

schemathesis (the `st` command from PyPI) generates requests from /openapi.json, with
a police token and without one, bounded in time; its `not_a_server_error` check fails
the run on any 5xx. Camera ids and timestamps that exist are offered to it half of the
time, so that its requests also get past "no such camera". Then POST /api/verify gets
random bytes, an empty file, a truncated and an edited real bundle, zips with path
names and a zip that declares a huge size: each gets a clear 4xx or a not-authentic
report, never a 500, and nothing is written outside the upload's own directory.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.service_harness import CameraSpec, Service, running_service, wait_until

pytestmark = pytest.mark.slow

CAMERA = "cam-1"
ST = Path(sys.executable).with_name("st")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service-fuzz")
    with running_service(root, [CameraSpec(CAMERA, "testsrc:160x120@6")],
                         roles=("police", "auditor")) as s:
        yield s


def recorded(svc: Service) -> tuple[datetime, datetime] | None:
    r = svc.get("/api/recordings", "police", params={"camera": CAMERA}).json()["ranges"]
    if not r:
        return None
    return (datetime.fromisoformat(r[0]["start"].replace("Z", "+00:00")),
            datetime.fromisoformat(r[-1]["end"].replace("Z", "+00:00")))


@pytest.fixture(scope="module")
def bundle(svc: Service) -> bytes:
    """A real 2-s export of this service's camera."""
    span = wait_until("5 s of recording", lambda: (
        (r := recorded(svc)) and (r[1] - r[0]).total_seconds() >= 5 and r), 60)
    start = span[0] + timedelta(seconds=1)
    body = {"camera": CAMERA, "from": start.isoformat(),
            "to": (start + timedelta(seconds=2)).isoformat(), "case": "FUZZ-1"}
    r = svc.request("POST", "/api/exports", "police", json=body)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    wait_until("the export", lambda: svc.get(f"/api/exports/{job}", "police")
               .json()["state"] == "done", 60)
    data = svc.get(f"/api/exports/{job}/bundle", "police").content
    assert data[:2] == b"PK"
    return data


def st_config(path: Path, svc: Service) -> Path:
    """Real values, offered half of the time, beside schemathesis's own generation."""
    span = recorded(svc)
    assert span is not None
    times = [(span[0] + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
             for s in (0, 1, 2)] + [span[1].isoformat()]
    half = "{ dictionary = %s, probability = 0.5 }"
    path.write_text("\n".join([
        "[dictionaries.cameras]", f"values = {json.dumps([CAMERA])}",
        "[dictionaries.times]", f"values = {json.dumps(times)}",
        "[parameters]",
        f'"path.camera_id" = {half % json.dumps("cameras")}',
        f'"query.camera" = {half % json.dumps("cameras")}',
        f'"body.camera" = {half % json.dumps("cameras")}',
        f'"query.from" = {half % json.dumps("times")}',
        f'"query.to" = {half % json.dumps("times")}',
        f'"body.from" = {half % json.dumps("times")}',
        f'"body.to" = {half % json.dumps("times")}',
    ]) + "\n")
    return path


def schemathesis(svc: Service, work: Path, seconds: int, token: str | None,
                 exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    cmd = [str(ST), "--config-file", str(st_config(work / "schemathesis.toml", svc)), "run",
           f"{svc.url}/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", "25", "--max-time", str(seconds), "--workers", "1",
           "--request-timeout", "30", "--generation-database", "none", "--no-color",
           "--report", "junit", "--report-junit-path", str(junit)]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    for path in exclude:
        cmd += ["--exclude-path", path]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=seconds + 60)
    out = proc.stdout + proc.stderr
    suite = ET.parse(junit).getroot()
    cases = [c.get("name") for c in suite.iter("testcase")]
    failed = [(c.get("name"), ET.tostring(c, encoding="unicode")[:2000])
              for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    m = re.search(r"(\d+) generated", out)
    return {"code": proc.returncode, "out": out, "operations": cases, "failed": failed,
            "generated": int(m.group(1)) if m else 0}


def test_schemathesis_finds_no_server_error_as_police(svc: Service, tmp_path: Path,
                                                      bundle: bytes) -> None:
    # Logout is left out: it would end the session the rest of the run (and of the
    # module) uses; the unauthenticated run below covers it.
    result = schemathesis(svc, tmp_path, 15, svc.login("police"), exclude=("/api/logout",))
    assert result["code"] == 0 and not result["failed"], (result["failed"],
                                                          result["out"][-4000:])
    # It really exercised every operation of the schema, with many requests.
    schema_ops = {f"{m.upper()} {p}" for p, ms in svc.get("/openapi.json").json()["paths"].items()
                  for m in ms} - {"POST /api/logout"}
    assert schema_ops <= set(result["operations"]), result["operations"]
    assert result["generated"] >= 50, result["out"][-2000:]
    assert svc.get("/api/health").status_code == 200  # and the service is still up
    assert "Traceback" not in svc.logs()


def test_schemathesis_finds_no_server_error_unauthenticated(svc: Service, tmp_path: Path,
                                                             bundle: bytes) -> None:
    result = schemathesis(svc, tmp_path, 8, None)
    assert result["code"] == 0 and not result["failed"], (result["failed"],
                                                          result["out"][-4000:])
    assert result["generated"] >= 11, result["out"][-3000:]  # every operation, at least
    assert "Traceback" not in svc.logs()


# --- garbage to POST /api/verify ---------------------------------------------------------

def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def with_declared_size(data: bytes, size: int) -> bytes:
    """Patch every entry's uncompressed size, in the local and central headers."""
    out = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = out.find(sig)
        while at >= 0:
            out[at + offset:at + offset + 4] = struct.pack("<I", size)
            at = out.find(sig, at + 4)
    return bytes(out)


def rezip(bundle: bytes, change: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members.update(change)
    return zip_of(members)


def flip_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0x40]) + data[mid + 1:]


SLIP = f"vidproof-zipslip-{uuid.uuid4().hex[:8]}.txt"


def garbage(bundle: bytes) -> dict[str, tuple[bytes, str]]:
    """name: (upload, what must come back: "4xx", "not_authentic" or "either")."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        clip = z.read("clip.mp4")
        evidence = json.loads(z.read("evidence.json"))
    evidence["export"]["case"] = "EDITED"
    return {
        "random_bytes": (os.urandom(65536), "4xx"),
        "empty": (b"", "4xx"),
        "text": (b"evidence.json\n{}\n", "4xx"),
        "truncated_half": (bundle[:len(bundle) // 2], "4xx"),
        "truncated_tail": (bundle[:-22], "4xx"),  # the end of central directory cut off
        "byte_flipped": (flip_middle(bundle), "either"),  # CRC fails, or evidence does
        "clip_edited": (rezip(bundle, {"clip.mp4": flip_middle(clip)}), "not_authentic"),
        "evidence_edited": (rezip(bundle, {"evidence.json": json.dumps(evidence).encode()}),
                            "not_authentic"),
        "no_evidence": (zip_of({"clip.mp4": clip}), "either"),
        "dot_dot_names": (zip_of({f"../../{SLIP}": b"x", "clip.mp4": clip}), "4xx"),
        "absolute_name": (zip_of({f"/tmp/{SLIP}": b"x"}), "4xx"),
        "nested_name": (zip_of({f"a/{SLIP}": b"x"}), "4xx"),
        "too_many_files": (zip_of({f"f{i}.txt": b"x" for i in range(40)}), "4xx"),
        # 17 entries that each claim ~4 GiB: 68 GiB declared, over the 64-GiB limit.
        "declared_huge": (with_declared_size(zip_of({f"f{i}": b"0" * 100 for i in range(17)}),
                                             0xFFFFFFF0), "4xx"),
        # An entry that declares fewer bytes than it holds: extraction must fail closed.
        "declared_small": (with_declared_size(zip_of({"evidence.json": b"{" * 5000}), 10),
                           "4xx"),
        # A real (small) bomb: 64 MiB of zeros in a 64-KiB upload, as evidence.json.
        "bomb_evidence": (zip_of({"evidence.json": bytes(64 << 20), "clip.mp4": clip}),
                          "either"),
    }


def test_verify_accepts_the_real_bundle(svc: Service, bundle: bytes) -> None:
    r = svc.request("POST", "/api/verify", "police",
                    files={"file": ("bundle.zip", bundle, "application/zip")})
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "authentic"


def test_verify_garbage_gets_a_clear_answer(svc: Service, bundle: bytes) -> None:
    tmp = Path(tempfile.gettempdir())
    before_tmp = set(os.listdir(tmp))
    outcomes = {}
    for name, (data, expect) in garbage(bundle).items():
        # The upload's own file name is only a label: a path there must not matter.
        filename = f"../../{SLIP}" if name == "random_bytes" else f"{name}.zip"
        r = svc.request("POST", "/api/verify", "auditor",
                        files={"file": (filename, data, "application/zip")})
        assert r.status_code < 500, (name, r.status_code, r.text)
        body = r.json()
        if r.status_code == 200:
            outcome = body["verdict"]
            assert outcome == "not_authentic", (name, body)
            assert [f for f in body["findings"] if f["severity"] == "error"], (name, body)
        else:
            outcome = "4xx"
            assert r.status_code in (400, 413, 422), (name, r.status_code, body)
            # One clear line: what could not be done and why.
            assert isinstance(body["detail"], str) and body["detail"], (name, body)
            assert "\n" not in body["detail"] and "Traceback" not in body["detail"]
        outcomes[name] = outcome
        assert expect in ("either", outcome), (name, outcome, body)
    assert outcomes["clip_edited"] == outcomes["evidence_edited"] == "not_authentic"
    # Nothing was unpacked outside the upload's own temporary directory (where "../"
    # names would have led from there, or from the service's working directory), and
    # the temporary directories were all removed again.
    for where in (tmp, Path("/"), Path.cwd(), svc.root.parent):
        assert not (where / SLIP).exists(), where
    assert not list(svc.root.rglob(SLIP))
    leftovers = [n for n in set(os.listdir(tmp)) - before_tmp
                 if n.startswith(("vidproof-upload-", "vidproof-bundle-"))]
    assert not leftovers
    # Every verification that produced a report is in the journal with its verdict.
    # JSON lines end with b"\n" only: a user name may hold U+2028 or U+0085, which
    # str.splitlines() would take for line ends.
    entries = [json.loads(line) for line in
               (svc.store / "journal.jsonl").read_bytes().split(b"\n") if line]
    verdicts = [e["detail"]["verdict"] for e in entries if e["action"] == "verify"]
    assert verdicts.count("not_authentic") >= sum(o == "not_authentic"
                                                  for o in outcomes.values())


def test_verify_without_a_file(svc: Service) -> None:
    for kwargs in ({}, {"data": {"file": "not a file"}},
                   {"files": {"other": ("x.zip", b"PK", "application/zip")}},
                   {"content": b"--x\r\n", "headers": {"content-type":
                                                       "multipart/form-data; boundary=x"}}):
        r = svc.request("POST", "/api/verify", "police", **kwargs)
        assert r.status_code in (400, 422), (kwargs, r.status_code, r.text)


def test_service_survived(svc: Service) -> None:
    assert svc.get("/api/health").json()["recording"] == 1
    cams = svc.cameras("police")
    assert cams[CAMERA]["restarts"] == 0 and cams[CAMERA]["state"] == "recording"
    assert "Traceback" not in svc.logs()
