"""The recorder service's HTTP API end to end, against the real `vidproof serve`.

One service for the module, on a free 127.0.0.1 port: two small synthetic cameras
that record, and two RTSP cameras whose credentials come from a file and from the
environment and whose address refuses connections (their workers fail and are
restarted). Users are made with `vidproof user add`, one per role.

Checked here: the role matrix over every route of the OpenAPI schema (401 without a
token except health and login), a police export that downloads and verifies with the
CLI, the journal entries it leaves and `vidproof journal verify` against edited,
deleted and reordered entries, /metrics in the Prometheus text format, recorded ranges,
hostile ids that must not reach a file outside the store, and camera credentials that
must not appear in any output, file or command line.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, vidproof
from tests.e2e.service_harness import (
    ROLES,
    USERS,
    CameraSpec,
    Service,
    running_service,
    wait_until,
)

pytestmark = pytest.mark.slow

FPS = 12
RECORDING = ["cam-a", "cam-b"]
CREDENTIAL_CAMERAS = ["cam-file", "cam-env"]
CRED_USER, CRED_PASSWORD = "viewer", "Zq7-s3cret:Pw/+x"  # ':' '/' '+' need quoting in a URL
ENV_PASSWORD = "Env-P4ss-word!9"
ENV_VAR = "VIDPROOF_TEST_CAM_CREDENTIALS"
OPEN = {("GET", "/api/health"), ("POST", "/api/login")}
# Which roles each route admits (the issue: police export, auditors read the journal,
# every logged-in user sees cameras and recordings and may verify a bundle).
ADMITS = {
    ("POST", "/api/logout"): set(ROLES),
    ("GET", "/api/cameras"): set(ROLES),
    ("GET", "/api/cameras/{camera_id}/thumbnail"): {"installer", "operator", "police"},
    ("GET", "/api/recordings"): set(ROLES),
    ("POST", "/api/exports"): {"police"},
    ("GET", "/api/exports/{export_id}"): {"police"},
    ("GET", "/api/exports/{export_id}/bundle"): {"police"},
    ("POST", "/api/verify"): set(ROLES),
    ("GET", "/api/journal"): {"auditor"},
    ("GET", "/api/retention"): {"auditor", "installer"},
}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service-api")
    cred = root / "secrets" / "cam-file.credentials"
    cred.parent.mkdir()
    cred.write_text(f"{CRED_USER}:{CRED_PASSWORD}\n")
    cred.chmod(0o600)
    closed = free_port()  # nothing listens there: every connection is refused
    cameras = [
        CameraSpec("cam-a", f"testsrc:320x240@{FPS}"),
        CameraSpec("cam-b", f"testsrc:320x240@{FPS}", {"close_shot": False}),
        CameraSpec("cam-file", f"rtsp://127.0.0.1:{closed}/cam",
                   {"credentials_file": str(cred)}),
        CameraSpec("cam-env", f"rtsp://127.0.0.1:{closed}/cam", {"credentials_env": ENV_VAR}),
    ]
    with running_service(root, cameras, env={ENV_VAR: f"operator:{ENV_PASSWORD}"}) as s:
        s.extra["closed_port"] = closed
        yield s


def concrete(path: str) -> str:
    return path.replace("{camera_id}", "cam-a").replace("{export_id}", "0" * 16)


def request_for(svc: Service, method: str, path: str, role: str | None) -> tuple[int, str]:
    """A well-formed request for the route (so that a refusal is about the role)."""
    target = concrete(path)
    kwargs: dict[str, Any] = {}
    if path == "/api/recordings":
        kwargs["params"] = {"camera": "cam-a"}
    elif path == "/api/exports":
        # A valid body whose range is empty: admitted roles get 422, nothing is exported.
        kwargs["json"] = {"camera": "cam-a", "from": "2026-01-01T00:00:10Z",
                          "to": "2026-01-01T00:00:00Z", "case": "MATRIX", "reason": "test"}
    elif path == "/api/verify":
        kwargs["files"] = {"file": ("x.zip", b"not a zip", "application/zip")}
    elif path == "/api/login":
        kwargs["json"] = {"username": "nobody", "password": "wrong password"}
    elif path == "/api/logout" and role is not None:
        # A session of its own: the role's shared one serves the other tests.
        name, password = USERS[role]
        own = svc.http.post("/api/login", json={"username": name, "password": password})
        r = svc.request(method, target, None,
                        headers={"Authorization": f"Bearer {own.json()['token']}"})
        return r.status_code, r.text
    r = svc.request(method, target, role, **kwargs)
    return r.status_code, r.text


def operations(svc: Service) -> list[tuple[str, str]]:
    schema = svc.get("/openapi.json").json()
    return [(m.upper(), p) for p, ms in schema["paths"].items() for m in ms]


# --- health, schema, authentication -------------------------------------------------------

def test_health_and_schema_are_open(svc: Service) -> None:
    r = svc.get("/api/health")
    assert r.status_code == 200
    assert r.json()["cameras"] == 4
    assert svc.get("/openapi.json").status_code == 200
    docs = svc.get("/docs")
    assert docs.status_code == 200
    # The API page loads nothing from outside the recorder: every script, style sheet
    # and icon it names is served here.
    urls = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', docs.text)
    urls += re.findall(r"url:\s*['\"]([^'\"]+)['\"]", docs.text)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls), urls
    for u in urls:
        assert u.startswith("/") and not u.startswith("//"), u
        assert svc.get(u).status_code == 200, u
    ops = set(operations(svc))
    # The schema lists what the issue asks for; the role table covers every route.
    assert OPEN | set(ADMITS) | {("GET", "/metrics")} == ops


def test_unauthenticated_gets_401_on_every_api_route(svc: Service) -> None:
    checked = 0
    for method, path in operations(svc):
        if not path.startswith("/api/") or (method, path) in OPEN:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Authorization": "Basic cG9saWNlLTE6eA=="}, {"Authorization": "Bearer"}):
            r = svc.request(method, concrete(path), None, headers=headers,
                            **({"params": {"camera": "cam-a"}} if "recordings" in path else {}))
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
            assert r.headers.get("www-authenticate") == "Bearer"
            checked += 1
    assert checked == 4 * len(ADMITS)
    # The two open routes answer without a token, and a wrong password is still a 401.
    assert svc.get("/api/health").status_code == 200
    wrong = svc.request("POST", "/api/login", None,
                        json={"username": USERS["police"][0], "password": "wrong password"})
    assert wrong.status_code == 401
    unknown = svc.request("POST", "/api/login", None,
                          json={"username": "nobody", "password": "whatever1"})
    assert unknown.status_code == 401 and unknown.json() == wrong.json()


def test_logout_ends_the_session_and_is_journaled(svc: Service) -> None:
    name, password = USERS["auditor"]
    token = svc.http.post("/api/login", json={"username": name, "password": password}
                          ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert svc.request("GET", "/api/cameras", None, headers=auth).status_code == 200
    r = svc.request("POST", "/api/logout", None, headers=auth)
    assert r.status_code == 204 and not r.content
    # The token is dead for every route, and as ?token= too; a second logout is a 401.
    assert svc.request("GET", "/api/cameras", None, headers=auth).status_code == 401
    assert svc.get(f"/api/cameras?token={token}").status_code == 401
    assert svc.request("POST", "/api/logout", None, headers=auth).status_code == 401
    last = [json.loads(x) for x in (svc.store / "journal.jsonl").read_bytes().split(b"\n")
            if x and b'"logout"' in x][-1]
    assert last["actor"] == name and last["action"] == "logout"
    # Other sessions of the same user are not affected.
    assert svc.get("/api/journal", "auditor").status_code == 200


def test_role_matrix(svc: Service) -> None:
    for method, path in operations(svc):
        if (method, path) in OPEN or not path.startswith("/api/"):
            continue
        for role in ROLES:
            status, body = request_for(svc, method, path, role)
            if role in ADMITS[(method, path)]:
                assert status not in (401, 403) and status < 500, (method, path, role, body)
            else:
                assert status == 403, (method, path, role, status, body)
                assert role in json.loads(body)["detail"]


def test_operator_cannot_export(svc: Service) -> None:
    end = datetime.now(UTC)
    body = {"camera": "cam-a", "from": (end - timedelta(seconds=3)).isoformat(),
            "to": end.isoformat(), "case": "OP-1", "reason": "curiosity"}
    r = svc.request("POST", "/api/exports", "operator", json=body)
    assert r.status_code == 403
    assert not (svc.data / "exports").exists() or not list((svc.data / "exports").iterdir())


def test_auditor_reads_the_journal_police_cannot(svc: Service) -> None:
    assert svc.get("/api/journal", "police").status_code == 403
    r = svc.get("/api/journal", "auditor")
    assert r.status_code == 200
    page = r.json()
    assert page["verified"] is True and page["problems"] == []
    actions = {(e["actor"], e["action"]) for e in page["entries"]}
    assert ("system", "service_start") in actions
    assert (USERS["auditor"][0], "login") in actions
    assert ("nobody", "login_failed") in actions


# --- recordings ------------------------------------------------------------------------

def frame_lines(svc: Service, camera: str) -> int:
    data = (svc.store / camera / "evidence.jsonl").read_bytes()
    return sum(1 for line in data.split(b"\n")[:-1] if b'"type":"frame"' in line)


def ranges(svc: Service, camera: str, **params: str) -> dict[str, Any]:
    r = svc.get("/api/recordings", "operator", params={"camera": camera, **params})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def recorded_seconds(svc: Service, camera: str) -> float:
    got = ranges(svc, camera)["ranges"]
    return (parse(got[-1]["end"]) - parse(got[0]["start"])).total_seconds() if got else 0.0


def test_recordings_give_ranges(svc: Service) -> None:
    wait_until("3 s of cam-a", lambda: recorded_seconds(svc, "cam-a") >= 3, 60)
    before = frame_lines(svc, "cam-a")
    rec = ranges(svc, "cam-a")
    after = frame_lines(svc, "cam-a")
    assert rec["camera_id"] == "cam-a"
    assert len(rec["ranges"]) == 1 and rec["gaps"] == []  # one continuous recording
    (run,) = rec["ranges"]
    assert parse(run["start"]) < parse(run["end"]) <= datetime.now(UTC)
    # The index counts the frame records of the evidence log.
    assert before <= run["frames"] <= after
    span = (parse(run["end"]) - parse(run["start"])).total_seconds()
    assert abs(run["frames"] - 1 - span * FPS) <= 2
    # Clipped to a window.
    lo = parse(run["start"]) + timedelta(seconds=1)
    hi = lo + timedelta(seconds=1)
    clipped = ranges(svc, "cam-a", **{"from": lo.isoformat(), "to": hi.isoformat()})
    (c,) = clipped["ranges"]
    assert parse(c["start"]) == lo.replace(microsecond=lo.microsecond // 1000 * 1000)
    assert parse(c["end"]) == hi.replace(microsecond=hi.microsecond // 1000 * 1000)
    # A camera that never connected has no range; bad queries are 4xx.
    assert ranges(svc, "cam-file")["ranges"] == []
    assert svc.get("/api/recordings", "operator", params={"camera": "cam-a",
                                                          "from": "yesterday"}).status_code == 422
    assert svc.get("/api/recordings", "operator",
                   params={"camera": "cam-a", "from": "2026-01-01T00:00:00"}).status_code == 422
    assert svc.get("/api/recordings", "operator", params={"camera": "nope"}).status_code == 404
    assert svc.get("/api/recordings", "operator").status_code == 422


def test_cameras_report_health(svc: Service) -> None:
    cams = svc.cameras()
    assert set(cams) == {"cam-a", "cam-b", "cam-file", "cam-env"}
    for cid in RECORDING:
        c = cams[cid]
        assert c["state"] == "recording" and c["worker_pid"] and c["restarts"] == 0
        assert c["frames_out"] > 0 and c["dropped_frames"] == 0
        assert c["stream"]["width"] == 320 and c["stream"]["height"] == 240
        assert c["disk_used_bytes"] > 0 and c["mode"] == "passthrough"
    assert cams["cam-a"]["close_shot"] is True and cams["cam-b"]["close_shot"] is False


# --- the police export ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(svc: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A police export of 5 s of cam-a, followed to the end and downloaded."""
    wait_until("8 s of cam-a", lambda: recorded_seconds(svc, "cam-a") >= 8, 60)
    (run,) = ranges(svc, "cam-a")["ranges"]
    start = parse(run["start"]) + timedelta(seconds=1.5)
    end = start + timedelta(seconds=5)
    body = {"camera": "cam-a", "from": start.isoformat(), "to": end.isoformat(),
            "case": "CASE-2026-0042", "reason": "theft at the entrance"}
    submitted_ns = time.time_ns()
    r = svc.request("POST", "/api/exports", "police", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running", "done") and job["camera"] == "cam-a"
    assert job["officer"] == USERS["police"][0]
    states = []

    def finished() -> dict[str, Any] | None:
        s = svc.get(f"/api/exports/{job['id']}", "police").json()
        states.append(s["state"])
        return s if s["state"] in ("done", "failed") else None

    status = wait_until("the export", finished, 60, 0.2)
    assert status["state"] == "done", status
    assert status["progress"] == 1.0 and status["verdict"] == "authentic"
    download = svc.get(f"/api/exports/{job['id']}/bundle", "police")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    out = tmp_path_factory.mktemp("export") / "bundle.zip"
    out.write_bytes(download.content)
    return {"id": job["id"], "bundle": out, "start": start, "end": end, "body": body,
            "status": status, "submitted_ns": submitted_ns, "done_ns": time.time_ns()}


def test_police_export_verifies_with_the_cli(svc: Service, exported: dict[str, Any]) -> None:
    r = vidproof("verify", exported["bundle"], "--trust", svc.pub, "--json")
    assert r.code == 0, r.out + r.err
    report = r.json
    assert report["verdict"] == "authentic" and report["camera_ids"] == ["cam-a"]
    # The clip is cut at keyframes around the request (1-s GOP): it covers the 5 s asked.
    first, last = parse(report["first_utc"]), parse(report["last_utc"])
    assert exported["start"] - timedelta(seconds=1.1) <= first <= exported["start"]
    assert last >= exported["end"] - timedelta(seconds=1.0 / FPS + 0.002)
    assert 5 * FPS - 1 <= report["frames"] == exported["status"]["frames"] <= 8 * FPS + 2
    # The bundle is what the issue describes, and stock sha256sum agrees with SHA256SUMS.
    unpacked = exported["bundle"].parent / "unpacked"
    with zipfile.ZipFile(exported["bundle"]) as z:
        names = set(z.namelist())
        z.extractall(unpacked)
    assert {"clip.mp4", "evidence.json", "report.html", "player.html", "SHA256SUMS"} <= names
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=unpacked,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # The same bundle uploaded to the service verifies there too.
    up = svc.request("POST", "/api/verify", "auditor",
                     files={"file": ("b.zip", exported["bundle"].read_bytes(), "application/zip")})
    assert up.status_code == 200 and up.json()["verdict"] == "authentic", up.text


def test_download_of_a_bundle_not_ready_or_failed(svc: Service) -> None:
    # cam-file never recorded: its export fails with a message, and there is nothing
    # to download (409), not a server error.
    now = datetime.now(UTC)
    r = svc.request("POST", "/api/exports", "police",
                    json={"camera": "cam-file", "from": (now - timedelta(seconds=5)).isoformat(),
                          "to": now.isoformat(), "case": "EMPTY"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    status = wait_until("the failed export", lambda: (
        s := svc.get(f"/api/exports/{job_id}", "police").json())["state"] == "failed" and s, 30)
    assert "no recording" in status["message"]
    assert svc.get(f"/api/exports/{job_id}/bundle", "police").status_code == 409


def journal_entries(svc: Service) -> list[dict[str, Any]]:
    lines = (svc.store / "journal.jsonl").read_bytes().split(b"\n")[:-1]
    return [json.loads(line) for line in lines]


def test_journal_holds_login_export_and_download(svc: Service,
                                                 exported: dict[str, Any]) -> None:
    entries = journal_entries(svc)
    police = USERS["police"][0]
    mine = [e for e in entries if e["actor"] == police]
    actions = [e["action"] for e in mine]
    assert "login" in actions and "export" in actions and "download" in actions
    assert actions.index("login") < actions.index("export") < actions.index("download")
    export = next(e for e in mine if e["action"] == "export"
                  and e["detail"]["case"] == "CASE-2026-0042")
    d = export["detail"]
    # The decree's fields: who (actor), when (the entry's time), which camera, the
    # footage's date and time, and its duration.
    assert d["camera"] == "cam-a" and d["reason"] == "theft at the entrance"
    assert exported["submitted_ns"] <= export["utc_ns"] <= exported["done_ns"]
    footage_from, footage_to = parse(d["footage_from"]), parse(d["footage_to"])
    assert footage_from <= exported["start"] and footage_to >= exported["end"] - timedelta(
        seconds=0.1)
    assert float(d["duration_s"]) == pytest.approx(
        (footage_to - footage_from).total_seconds(), abs=0.002)
    assert d["frames"] == exported["status"]["frames"]
    # It names the very bundle that was downloaded.
    assert d["bundle_sha256"] == hashlib.sha256(exported["bundle"].read_bytes()).hexdigest()
    download = next(e for e in mine if e["action"] == "download")
    assert download["detail"] == {"export": exported["id"], "case": "CASE-2026-0042",
                                  "camera": "cam-a"}
    assert download["utc_ns"] > export["utc_ns"]
    # Every entry is signed and chained.
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    # And the auditor sees them through the API.
    page = svc.get("/api/journal", "auditor", params={"limit": 5000}).json()
    seen = {(e["actor"], e["action"]) for e in page["entries"]}
    assert {(police, "login"), (police, "export"), (police, "download")} <= seen
    assert page["verified"] is True


# --- journal verify --------------------------------------------------------------------

@pytest.fixture
def journal_copy(svc: Service, exported: dict[str, Any], tmp_path: Path) -> Path:
    lines = (svc.store / "journal.jsonl").read_bytes().split(b"\n")[:-1]  # whole lines
    copy = tmp_path / "journal.jsonl"
    copy.write_bytes(b"".join(line + b"\n" for line in lines))
    return copy


def test_journal_verifies(svc: Service, journal_copy: Path) -> None:
    r = vidproof("journal", "verify", svc.store, "--trust", svc.pub)
    assert r.code == 0, r.out + r.err
    assert "all signed and in order" in r.out
    r = vidproof("journal", "verify", journal_copy, "--trust", svc.pub)
    assert r.code == 0, r.out + r.err


def edit(lines: list[bytes]) -> tuple[list[bytes], int]:
    i = next(i for i, line in enumerate(lines) if b'"action":"export"' in line)
    entry = json.loads(lines[i])
    entry["detail"]["case"] = "CASE-2026-0043"  # a plausible edit; the JSON stays valid
    lines[i] = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()
    return lines, i + 1


def delete(lines: list[bytes]) -> tuple[list[bytes], int]:
    i = next(i for i, line in enumerate(lines) if b'"action":"login"' in line and i > 0)
    del lines[i]
    return lines, i + 1


def reorder(lines: list[bytes]) -> tuple[list[bytes], int]:
    i = next(i for i, line in enumerate(lines) if b'"action":"download"' in line)
    lines[i - 1], lines[i] = lines[i], lines[i - 1]
    return lines, i


@pytest.mark.parametrize("tamper", [edit, delete, reorder], ids=lambda f: f.__name__)
def test_journal_verify_detects_tampering(svc: Service, journal_copy: Path, tamper: Any) -> None:
    lines = journal_copy.read_bytes().split(b"\n")[:-1]
    changed, line_no = tamper(list(lines))
    assert changed != lines
    journal_copy.write_bytes(b"".join(line + b"\n" for line in changed))
    r = vidproof("journal", "verify", journal_copy, "--trust", svc.pub)
    assert r.code == 1, r.out + r.err
    assert f"line {line_no}:" in r.out, r.out
    assert "Traceback" not in r.err


def test_journal_verify_with_the_wrong_key_or_no_journal(svc: Service, journal_copy: Path,
                                                         tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert vidproof("keygen", "--out", other).code == 0
    r = vidproof("journal", "verify", journal_copy, "--trust", other / "device.pub")
    assert r.code == 1 and "not signed by the trusted key" in r.out
    r = vidproof("journal", "verify", tmp_path / "nowhere", "--trust", svc.pub)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1


# --- metrics -------------------------------------------------------------------------------

def test_metrics_are_prometheus_text(svc: Service) -> None:
    r = svc.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["vidproof_up"].samples[0].value == 1
    frames = families["vidproof_camera_frames"]  # the parser strips _total from counters
    assert frames.type == "counter"
    by_cam = {s.labels["camera"]: s.value for s in frames.samples}
    assert set(by_cam) == {"cam-a", "cam-b", "cam-file", "cam-env"}
    assert by_cam["cam-a"] > 0 and by_cam["cam-file"] == 0
    recording = {s.labels["camera"]: s.value
                 for s in families["vidproof_camera_recording"].samples}
    assert recording["cam-a"] == 1 and recording["cam-file"] == 0
    assert families["vidproof_camera_disk_used_bytes"].type == "gauge"
    # The figures agree with /api/cameras.
    cams = svc.cameras()
    restarts = {s.labels["camera"]: s.value
                for s in families["vidproof_camera_restarts"].samples}
    assert restarts["cam-a"] == cams["cam-a"]["restarts"] == 0


# --- nothing outside the store ------------------------------------------------------------

HOSTILE = [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd", "..", "%2e%2e", ".", "/etc/passwd", "%2Fetc%2Fpasswd",
    "....//....//etc/passwd", "..%5C..%5Cetc%5Cpasswd", "cam-a/../../../../etc/passwd",
    "cam-a%00.zip", "%00", "~root", "x" * 5000, "%ff%fe", "cam-a%2F..%2F..%2Fdata",
]


@pytest.fixture(scope="module")
def canary(svc: Service) -> str:
    """A file beside the data directory that no request may ever return."""
    text = "CANARY-3b1e6f0c not to be served"
    (svc.root / "canary.txt").write_text(text)
    (svc.data / "canary.zip").write_text(text)
    return text


def test_hostile_ids_never_reach_a_file(svc: Service, canary: str) -> None:
    targets = []
    for bad in HOSTILE:
        targets += [f"/api/exports/{bad}", f"/api/exports/{bad}/bundle",
                    f"/api/cameras/{bad}/thumbnail", f"/api/recordings?camera={bad}",
                    f"/ui/{bad}", f"/ui/{bad}/canary.txt"]
    targets += [f"/api/exports/{quote(str(svc.data / 'canary'), safe='')}/bundle",
                f"/api/exports/{svc.data / 'canary'}/bundle",
                "/ui/../../canary.txt", "/ui/%2e%2e/%2e%2e/canary.txt",
                "/api/exports/../../../canary.txt"]
    statuses: dict[int, int] = {}
    for target in targets:
        for role in ("police",):  # police may use every route tried here
            status, body = svc.raw("GET", target, role)
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, (target, status, body[:300])
            # The API refuses (404/422); the static UI may also redirect "/ui/." to
            # its own index, or serve it.
            allowed = {404, 422} | ({400, 200, 307} if target.startswith("/ui/") else set())
            assert status in allowed, (target, status, body[:300])
            assert canary.encode() not in body and b"root:x:0:0" not in body, target
            assert not body.startswith(b"PK"), target
    assert statuses.get(404, 0) >= 0.9 * len(targets), statuses  # "no such export/camera"


def test_hostile_camera_in_an_export_request(svc: Service, canary: str) -> None:
    now = datetime.now(UTC)
    for bad in [*HOSTILE[:12], str(svc.root / "canary.txt")]:
        body = {"camera": bad, "from": (now - timedelta(seconds=3)).isoformat(),
                "to": now.isoformat(), "case": "X"}
        status, reply = svc.raw("POST", "/api/exports", "police",
                                json.dumps(body).encode(), "application/json")
        assert status in (404, 422), (bad, status, reply)
    for bad in ("../../x", 'q"uote\r\nX-Injected: 1'):
        body = {"camera": "cam-a", "from": (now - timedelta(seconds=3)).isoformat(),
                "to": now.isoformat(), "case": bad, "reason": bad}
        r = svc.request("POST", "/api/exports", "police", json=body)
        # The case name is text in the bundle, never a path: the bundle still lands in
        # DATA/exports/ under the export's own id.
        assert r.status_code == 202
        job_id = r.json()["id"]
        wait_until("the export", lambda j=job_id: svc.get(f"/api/exports/{j}", "police")
                   .json()["state"] in ("done", "failed"), 60)
        assert (svc.data / "exports" / f"{job_id}.zip").is_file()
        download = svc.get(f"/api/exports/{job_id}/bundle", "police")
        assert download.status_code == 200 and "x-injected" not in download.headers
        # The suggested file name is a plain name: no directory, quote or line break.
        cd = download.headers["content-disposition"]
        name = cd.split("filename=", 1)[1]
        assert name.startswith('"vidproof-cam-a-') and name.endswith('.zip"'), cd
        assert not set(name[1:-1]) & set('/\\"\r\n'), cd
    outside = {p.name for p in svc.root.iterdir()}
    assert outside <= {"data", "site.toml", "users.json", "serve.out", "serve.err",
                       "secrets", "canary.txt"}, outside


# --- credentials ---------------------------------------------------------------------------

def secrets_in(data: bytes) -> list[str]:
    found = []
    for secret in (CRED_PASSWORD, ENV_PASSWORD):
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            if form.encode() in data:
                found.append(form)
    return found


def test_credentials_never_leak(svc: Service) -> None:
    port = svc.extra["closed_port"]
    wait_until("restarts of the cameras with credentials", lambda: all(
        c["restarts"] >= 1 for cid, c in svc.cameras().items() if cid in CREDENTIAL_CAMERAS), 60)
    # Every command line on the machine since the service started (what `ps` shows),
    # including those of the short-lived workers that failed to connect.
    assert svc.watcher is not None
    cmdlines = svc.watcher.command_lines()
    assert not [args for args in cmdlines if secrets_in(" ".join(args).encode())]
    for cam in CREDENTIAL_CAMERAS:
        workers = [args for args in cmdlines
                   if "record" in args and "--camera-id" in args
                   and args[args.index("--camera-id") + 1] == cam]
        assert workers, f"no worker of {cam} was seen"
        # The URL reaches the worker through its environment, not its arguments.
        assert all(args[args.index("--source") + 1] == "env:VIDPROOF_SOURCE_URL"
                   for args in workers)
    ps = subprocess.run(["ps", "-eo", "pid,args", "--cols", "10000"], capture_output=True)
    assert not secrets_in(ps.stdout)

    # What the API says: the failure is explained, with the address but no password.
    outputs = []
    for role in ROLES:
        r = svc.get("/api/cameras", role)
        outputs.append(r.content)
    cams = {c["camera_id"]: c for c in json.loads(outputs[0])}
    for cam in CREDENTIAL_CAMERAS:
        err = cams[cam]["last_error"]
        assert f"rtsp://127.0.0.1:{port}/cam" in err and "refused" in err.lower(), err
        assert CRED_USER not in err
        assert cams[cam]["state"] in ("restarting", "running", "starting", "failed")
    for path in ("/api/health", "/metrics", "/openapi.json"):
        outputs.append(svc.get(path).content)
    outputs.append(svc.get("/api/journal", "auditor", params={"limit": 5000}).content)
    for cam in ("cam-file", "cam-env"):
        outputs.append(svc.get("/api/recordings", "police", params={"camera": cam}).content)
    for out in outputs:
        assert not secrets_in(out), out[:500]

    # Every file the service wrote: store, journal, worker status and stderr, exports.
    files = [p for p in svc.data.rglob("*") if p.is_file()]
    stderr_files = [p for p in files if p.name in ("cam-file.stderr", "cam-env.stderr")]
    assert len(stderr_files) == 2 and all(p.stat().st_size > 0 for p in stderr_files)
    for p in files:
        assert not secrets_in(p.read_bytes()), p
    # Bundles: the zip compresses its members, so look inside.
    for bundle in (svc.data / "exports").glob("*.zip"):
        with zipfile.ZipFile(bundle) as z:
            for name in z.namelist():
                assert not secrets_in(z.read(name)), (bundle, name)
    # The service's own output: it logged the restarts, without the password.
    logs = svc.logs()
    assert "cam-file: worker exited" in logs and "cam-env: worker exited" in logs, logs[-2000:]
    assert not secrets_in(logs.encode())


def test_service_stops_cleanly(svc: Service, tmp_path: Path) -> None:
    """Last in the module: SIGTERM stops the workers, which sign their end; the
    stores of the recording cameras then verify as authentic and complete."""
    workers = {c: svc.cameras()[c]["worker_pid"] for c in RECORDING}
    # uvicorn shuts down gracefully, then re-raises the signal: the exit status says
    # "terminated by SIGTERM" (-15); the journal's last entry shows the orderly stop.
    assert svc.stop() in (0, -15)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers.values())
    for cam in RECORDING:
        r = vidproof("verify", svc.store, "--trust", svc.pub, "--camera", cam, "--json")
        assert r.code == 0, r.out
        events = [e["event"] for e in r.json["cameras"][0]["events"]]
        assert events[0] == "recorder_start" and events[-1] == "recorder_stop", events
    entries = journal_entries(svc)
    assert entries[-1]["action"] == "service_stop"
    copy = tmp_path / "store"
    shutil.copytree(svc.store, copy)
    assert vidproof("journal", "verify", copy, "--trust", svc.pub).code == 0
    assert not secrets_in(svc.logs().encode())
