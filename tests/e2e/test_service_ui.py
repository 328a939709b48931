"""The recorder service end to end: the real `vidproof serve` and its web UI in real Chromium.

The service runs as a subprocess on a free 127.0.0.1 port with two synthetic test cameras
(small and slow, to keep the CPU low), users made with `vidproof user add`. Headless Debian
Chromium (driven over DevTools, as in test_player.py) logs in as each role and uses the UI
like a person would: police see both cameras recording with their timelines, export 10 s,
download the bundle (which then verifies with the CLI) and verify it again in the page; an
auditor finds that export in the journal; an operator gets no export form and the API
refuses the operator's export with 403. Every /api route but health and login answers 401
without a valid token. The service then stops cleanly on SIGTERM.
"""

from __future__ import annotations

import base64
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, vidproof
from tests.e2e.test_player import Chromium, _have_chromium, wait_file

pytestmark = pytest.mark.slow

CAMERAS = {"cam-a": ("testsrc:320x240@12", 12), "cam-b": ("testsrc:352x288@6", 6)}
LABEL_A = "Entrance <b>hall</b> & stairs"   # markup in a label must come out as text
USERS = {"alice": ("police", "police-pass-1"), "audrey": ("auditor", "auditor-pass-1"),
         "oscar": ("operator", "operator-pass-1")}
CASE = "CASE-2026-0042"
EXPORT_SECONDS = 10
GOP_SECONDS = 1.0         # testsrc: one keyframe a second
CHECKPOINT_SECONDS = 2.0  # checkpoints at most 2 s apart
THUMB_WIDTH = 320
OPEN_ROUTES = {("GET", "/api/health"), ("POST", "/api/login")}

CONFIG = """
[site]
name = "ui test recorder"

[storage]
path = "data"
segment_seconds = 4

[[cameras]]
id = "cam-a"
source = "{a}"
location = "{label}"
lat = "48.8566"
lon = "2.3522"

[[cameras]]
id = "cam-b"
source = "{b}"
location = "Car park"
lat = "48.8567"
lon = "2.3530"
close_shot = false
"""


# ---------------------------------------------------------------------------------------
# The service


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (127.0.0.1 only)
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


@dataclass
class Service:
    root: Path
    config: Path
    data: Path
    users: Path
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    def get(self, path: str, token: str | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http("GET", self.url + path, headers)

    def worker_pids(self) -> list[int]:
        pids = []
        for status in (self.data / "run").glob("*.status.json"):
            try:
                pids.append(int(json.loads(status.read_text())["pid"]))
            except (OSError, ValueError, KeyError):
                continue
        return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    root = tmp_path / "site"
    root.mkdir()
    config = root / "site.toml"
    config.write_text(CONFIG.format(a=CAMERAS["cam-a"][0], b=CAMERAS["cam-b"][0],
                                    label=LABEL_A), encoding="utf-8")
    data, users = root / "data", root / "users.json"
    for name, (role, password) in USERS.items():
        pw = root / f"{name}.pw"
        pw.write_text(password + "\n")
        r = vidproof("user", "add", name, "--role", role, "--password-file", pw,
                     "--users", users)
        assert r.code == 0, r.err
        pw.unlink()
    stored = users.read_text()
    assert not [pw for _, pw in USERS.values() if pw in stored]  # only scrypt hashes
    port = free_port()
    log = root / "serve.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vidproof", "serve", "--config", str(config), "--data",
             str(data), "--users", str(users), "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    svc = Service(root, config, data, users, f"http://127.0.0.1:{port}", proc, log, started)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"vidproof serve exited: {log.read_text()}"
            try:
                if svc.get("/api/health").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no /api/health: {log.read_text()}"
            time.sleep(0.2)
        yield svc
    finally:
        workers = svc.worker_pids()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in workers:   # never leave a recorder behind, even when the test failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------
# Driving the page


class Page:
    def __init__(self, b: Chromium, url: str) -> None:
        self.b, self.url = b, url

    def js(self, expression: str) -> Any:
        return self.b.js(expression)

    def wait(self, expression: str, what: str, timeout: float = 15) -> Any:
        return self.b.wait(expression, what, timeout)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (it must be visible)."""
        box = self.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect();
            return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()""")
        assert box, f"{selector} is missing or not visible"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.b.page("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                      "button": "left", "clickCount": 1})

    def type(self, selector: str, text: str) -> None:
        self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                "e.focus(); e.select && e.select(); })()")
        self.b.page("Input.insertText", {"text": text})

    def set_value(self, selector: str, value: str) -> None:
        """For <select> and date-time inputs: set the value and fire the events a user would."""
        self.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.value = {json.dumps(value)};
            // Chromium drops ":00" seconds from a date-time input's value.
            const v = {json.dumps(value)};
            if (e.value !== v && !(v.endsWith(':00') && e.value === v.slice(0, -3)))
                throw new Error('value refused: ' + e.value);
            e.dispatchEvent(new Event('input', {{bubbles: true}}));
            e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()""")

    def visible(self, selector: str) -> bool:
        return bool(self.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            return !!e && e.getClientRects().length > 0; }})()"""))

    def text(self, selector: str) -> str:
        value: str = self.js(f"document.querySelector({json.dumps(selector)}).textContent")
        return value

    def token(self) -> str:
        value: str = self.js("JSON.parse(sessionStorage.getItem('vidproof.session')).token")
        return value

    def login(self, user: str) -> None:
        self.wait("document.getElementById('view-login') && "
                  "!document.getElementById('view-login').hidden", "the login form")
        self.type("#login-user", user)
        self.type("#login-password", USERS[user][1])
        self.click("#login-submit")
        self.wait("document.getElementById('view-login').hidden", f"{user} to be logged in")
        assert self.text("#who-name") == user
        assert self.text("#who-role") == USERS[user][0]

    def logout(self) -> None:
        token = self.token()
        self.click("#logout")
        self.wait("!document.getElementById('view-login').hidden", "the login form again")
        assert self.js("sessionStorage.getItem('vidproof.session')") is None
        # The recorder ended the session too: the token is refused from now on.
        assert http("GET", self.url + "/api/cameras",
                    {"Authorization": f"Bearer {token}"}).status == 401

    def screenshot(self, path: Path) -> bytes:
        data = self.b.page("Page.captureScreenshot", {"format": "png"})["data"]
        png = base64.b64decode(data)
        path.write_bytes(png)
        return png


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    if not _have_chromium():
        pytest.skip("/usr/bin/chromium is absent and could not be installed")
    b = Chromium(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield b
    finally:
        b.close()


# ---------------------------------------------------------------------------------------
# Checks


def check_unauthenticated(svc: Service, camera: str, export_id: str) -> set[tuple[str, str]]:
    """Every /api route but health and login answers 401 without a valid token."""
    from vidproof.keys import load_signer
    from vidproof.service.app import create_app
    from vidproof.service.config import load_config
    from vidproof.service.context import Service as AppService

    config = load_config(svc.config, svc.data, svc.users)
    app_service = AppService(config, load_signer(config.key), None)
    try:
        app = create_app(app_service)
        schema_paths = app.openapi()["paths"]
    finally:
        app_service.exports.shutdown()
    documented = {(m.upper(), p) for p, ops in schema_paths.items() for m in ops
                  if p.startswith("/api")}
    assert documented >= OPEN_ROUTES
    checked = set()
    for method, path in sorted(documented - OPEN_ROUTES):
        url = svc.url + path.format(camera_id=camera, export_id=export_id)
        if method == "GET":
            url += "?camera=" + camera
        attempts: list[dict[str, str]] = [{}, {"Authorization": "Bearer not-a-token"},
                                          {"Authorization": "Basic YWxpY2U6eA=="}]
        for headers in attempts:
            r = http(method, url, headers, b"" if method in ("POST", "PUT") else None)
            assert r.status == 401, f"{method} {path} {headers}: {r.status} {r.body[:200]!r}"
            assert r.headers.get("www-authenticate") == "Bearer"
            assert r.json["detail"] == "login required"
        if method == "GET":
            sep = "&" if "?" in url else "?"
            r = http(method, url + sep + "token=not-a-token")
            assert r.status == 401, f"{method} {path}?token=…: {r.status}"
        checked.add((method, path))
    assert svc.get("/api/health").status == 200
    r = http("POST", svc.url + "/api/login", {"Content-Type": "application/json"},
             json.dumps({"username": "alice", "password": "wrong-password"}).encode())
    assert r.status == 401 and "wrong user name or password" in r.json["detail"]
    return checked


def iso_s(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def ns_of(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(round(dt.timestamp() * 1e3)) * 1_000_000


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    return w, h


# ---------------------------------------------------------------------------------------
# The test


def test_service_ui_end_to_end(service: Service, browser: Chromium, tmp_path: Path) -> None:
    svc, p = service, Page(browser, service.url)
    downloads = tmp_path / "downloads"

    # / sends the browser to the UI, which asks for a login and loads nothing from outside.
    browser.page("Page.navigate", {"url": svc.url + "/"})
    p.wait(f"location.href === {json.dumps(svc.url + '/ui/')} && "
           "document.readyState === 'complete'", "the UI to load")
    assert p.visible("#login-form") and not p.visible("#nav")

    # A wrong password is refused in plain words.
    p.type("#login-user", "alice")
    p.type("#login-password", "not-her-password")
    p.click("#login-submit")
    p.wait("!document.getElementById('login-error').hidden", "the login error")
    assert p.text("#login-error") == "Wrong user name or password."

    # ---- police: both cameras recording, with live pictures and timelines
    p.login("alice")
    p.wait("document.querySelectorAll('#camera-list article.camera').length === 2",
           "both cameras listed")
    cards = {cam: f"#camera-list article[data-camera='{cam}']" for cam in CAMERAS}
    for cam, card in cards.items():
        p.wait(f"document.querySelector(\"{card}\").dataset.state === 'recording'",
               f"{cam} recording", timeout=30)
        p.wait(f"document.querySelector(\"{card} .timeline svg rect.tl-range\") !== null",
               f"the timeline of {cam}", timeout=20)
        p.wait(f"document.querySelector(\"{card} img.thumb\").naturalWidth === {THUMB_WIDTH}",
               f"a picture from {cam}", timeout=20)
    # What the page shows is what the API says.
    token = p.token()
    api_cams = {c["camera_id"]: c for c in svc.get("/api/cameras", token).json}
    assert set(api_cams) == set(CAMERAS)
    for cam, card in cards.items():
        shown = p.js(f"""(() => {{ const c = document.querySelector("{card}");
            const f = k => c.querySelector(`dd[data-field="${{k}}"]`).textContent;
            return {{badge: c.querySelector('.state').textContent, frames: f('frames'),
                     last: f('last'), stream: f('stream'), left: f('left'), disk: f('disk'),
                     restarts: f('restarts'), where: c.querySelector('.where').textContent,
                     markup: c.querySelectorAll('.where *').length,
                     img: c.querySelector('img.thumb').getAttribute('src'),
                     ranges: Number(c.querySelector('.timeline').dataset.ranges),
                     bar: c.querySelector('.timeline svg').getAttribute('aria-label')}}; }})()""")
        assert shown["badge"] == "recording"
        out, inn = (int(x) for x in shown["frames"].replace("(", "").replace(")", "").split())
        assert 0 < out <= api_cams[cam]["frames_out"] and inn >= out
        assert shown["last"].endswith("ago)") and " UTC " in shown["last"]
        w, h = (int(x) for x in CAMERAS[cam][0].split(":")[1].split("@")[0].split("x"))
        assert shown["stream"] == f"h264 {w}×{h} at {CAMERAS[cam][1]} fps"
        assert shown["restarts"] == "0"
        assert "at the current rate" in shown["left"] or shown["left"] == "unknown yet"
        assert shown["img"].startswith(f"/api/cameras/{cam}/thumbnail?") and \
            f"token={token}" in shown["img"]
        assert shown["ranges"] >= 1 and "recorded range" in shown["bar"]
        # The bar spans the chosen window, 1000 units wide, ending now: the recording
        # runs up to the last seconds and began no earlier than the service did.
        window_s = int(p.js("document.getElementById('timeline-window').value"))
        bars = f"{card} .timeline svg rect.tl-range"
        x, width = p.js(f"""Array.from(document.querySelectorAll("{bars}")).map(r =>
            [Number(r.getAttribute('x')), Number(r.getAttribute('width'))]).pop()""")
        assert 1000 - (x + width) <= 1000 * 15 / window_s, (x, width)
        assert x >= 1000 - 1000 * (time.monotonic() - svc.started + 15) / window_s, x
    where_a = p.js(f"document.querySelector(\"{cards['cam-a']} .where\").textContent")
    assert where_a.startswith(LABEL_A)
    assert p.js(f"document.querySelector(\"{cards['cam-a']} .where\").children.length") == 0
    assert p.visible(f"{cards['cam-a']} button.export-this")

    # The pictures are live: a later fetch of the same camera is a new picture load.
    loads = int(p.js(f"document.querySelector(\"{cards['cam-a']} img.thumb\").dataset.loads"))
    p.wait(f"Number(document.querySelector(\"{cards['cam-a']} img.thumb\").dataset.loads) > "
           f"{loads}", "the picture to refresh", timeout=15)

    shot = p.screenshot(tmp_path / "cameras.png")
    assert png_size(shot)[0] > 600
    print(f"screenshot of the cameras page: {tmp_path / 'cameras.png'}")

    # ---- police: export 10 s of cam-a, once enough is recorded and signed
    first_ns = ns_of(svc.get("/api/recordings?camera=cam-a", token).json["ranges"][0]["start"])
    start_ns = math.ceil(first_ns / 1e9) * 10**9
    end_ns = start_ns + EXPORT_SECONDS * 10**9
    deadline = time.monotonic() + 40
    while True:   # the end must be covered and a checkpoint must follow it
        ranges = svc.get("/api/recordings?camera=cam-a", token).json["ranges"]
        if ns_of(ranges[-1]["end"]) >= end_ns + (CHECKPOINT_SECONDS + 0.5) * 1e9:
            break
        assert time.monotonic() < deadline, f"cam-a did not record long enough: {ranges}"
        time.sleep(0.5)
    assert len(ranges) == 1, f"cam-a has gaps: {ranges}"

    p.click(f"{cards['cam-a']} button.export-this")
    p.wait("!document.getElementById('view-export').hidden", "the export form")
    assert p.js("document.getElementById('export-camera').value") == "cam-a"
    assert "UTC" in p.text("#export-note")
    p.set_value("#export-from", iso_s(start_ns))
    p.set_value("#export-to", iso_s(end_ns))
    p.type("#export-case", CASE)
    p.type("#export-reason", "burglary on the night of the 25th")
    p.click("#export-submit")
    p.wait("document.querySelector('#exports-body tr[data-state=\"done\"], "
           "#exports-body tr[data-state=\"failed\"]') !== null", "the export to finish",
           timeout=60)
    row = "#exports-body tr"
    assert p.js(f"document.querySelector('{row}').dataset.state") == "done", \
        p.text(row)
    export_id = p.js(f"document.querySelector('{row}').dataset.export")
    assert p.js(f"document.querySelector('{row} progress').value") == 100
    assert CASE in p.text(row) and "cam-a" in p.text(row)
    p.click(f"{row} a.download")
    bundle = wait_file(downloads, ".zip", timeout=30)
    p.screenshot(tmp_path / "export.png")
    assert bundle.name == f"vidproof-cam-a-{CASE}.zip"

    # The downloaded bundle verifies with the CLI, and holds the 10 s asked for.
    pub = svc.data / "keys" / "device.pub"
    r = vidproof("verify", bundle, "--trust", pub)
    assert r.code == 0, r.out + r.err
    report = vidproof("verify", bundle, "--trust", pub, "--json").json
    assert report["verdict"] == "authentic" and report["camera_ids"] == ["cam-a"]
    got_first, got_last = ns_of(report["first_utc"]), ns_of(report["last_utc"])
    frame_ns = 10**9 / CAMERAS["cam-a"][1]
    # From the keyframe at or before the first frame at or after `from`...
    assert start_ns - GOP_SECONDS * 1e9 - 2e6 <= got_first <= start_ns + frame_ns + 2e6
    # ...to the checkpoint at or after the last frame at or before `to`.
    assert end_ns - frame_ns - 2e6 <= got_last <= end_ns + CHECKPOINT_SECONDS * 1e9 + 2e6
    assert report["frames"] >= EXPORT_SECONDS * CAMERAS["cam-a"][1]

    # The same bundle verifies in the page; garbage gets an error in plain words.
    p.click("#nav a[data-view='verify']")
    p.wait("!document.getElementById('view-verify').hidden", "the verify form")
    browser.set_files("#verify-file", [bundle])
    p.click("#verify-submit")
    p.wait("!document.getElementById('verify-result').hidden", "the verification report",
           timeout=30)
    assert p.js("document.getElementById('verify-verdict').dataset.verdict") == "authentic"
    assert p.text("#verify-verdict").startswith(f"{bundle.name}: Authentic and complete")
    assert f"{report['frames']}" in p.text("#verify-summary")
    p.screenshot(tmp_path / "verify.png")
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"PK\x03\x04 this is not a bundle" * 10)
    browser.set_files("#verify-file", [garbage])
    p.click("#verify-submit")
    p.wait("!document.getElementById('verify-error').hidden || "
           "document.getElementById('verify-verdict').dataset.verdict === 'not_authentic'",
           "the garbage to be refused", timeout=30)
    p.screenshot(tmp_path / "verify-garbage.png")
    if p.visible("#verify-error"):
        message = p.text("#verify-error")
        assert message.startswith("Some input is not valid: could not verify"), message
        assert "garbage.zip" in message, message          # the upload, by its name...
        assert "vidproof-upload" not in message, message  # ...not the server's temp copy
        assert "Traceback" not in message and "Internal" not in message

    # ---- unauthenticated: 401 on every /api route but health and login
    assert check_unauthenticated(svc, "cam-a", export_id) >= {
        ("GET", "/api/cameras"), ("GET", "/api/cameras/{camera_id}/thumbnail"),
        ("GET", "/api/recordings"), ("POST", "/api/exports"), ("GET", "/api/exports/{export_id}"),
        ("GET", "/api/exports/{export_id}/bundle"), ("POST", "/api/verify"),
        ("GET", "/api/journal")}
    p.logout()

    # ---- auditor: the export and its download are in the journal; no pictures, no exports
    p.login("audrey")
    assert not p.visible("#nav a[data-view='export']")
    assert p.visible("#nav a[data-view='journal']")
    p.wait("document.querySelectorAll('#camera-list article.camera').length === 2",
           "the cameras for the auditor")
    assert "not shown to your role" in p.text(f"{cards['cam-a']} .picture")
    assert not p.visible(f"{cards['cam-a']} button.export-this")
    p.click("#nav a[data-view='journal']")
    p.wait("!document.getElementById('journal-table').hidden && "
           "document.querySelectorAll('#journal-body tr').length > 0", "the journal")
    assert p.js("document.getElementById('journal-status').dataset.verified") == "true"
    p.screenshot(tmp_path / "journal.png")
    rows = p.js("""Array.from(document.querySelectorAll('#journal-body tr')).map(r =>
        Array.from(r.cells).map(c => c.textContent))""")
    exports = [r for r in rows if r[3] == "export"]
    assert len(exports) == 1, rows
    assert exports[0][2] == "alice" and f"case: {CASE}" in exports[0][4]
    assert f"bundle: {export_id}.zip" in exports[0][4] and "camera: cam-a" in exports[0][4]
    downloads_rows = [r for r in rows if r[3] == "download"]
    assert downloads_rows and downloads_rows[0][2] == "alice"
    assert any(r[3] == "login" and r[2] == "audrey" for r in rows)
    assert any(r[3] == "login failed" and r[2] == "alice" for r in rows)
    p.type("#journal-filter", CASE)
    p.wait("document.querySelectorAll('#journal-body tr').length === "
           f"{len([r for r in rows if CASE in r[4]])}", "the filter")
    p.logout()

    # ---- operator: no export form, and the API refuses the operator's export
    p.login("oscar")
    assert not p.visible("#nav a[data-view='export']")
    assert not p.visible("#nav a[data-view='journal']")
    p.wait("document.querySelectorAll('#camera-list article.camera').length === 2",
           "the cameras for the operator")
    p.wait(f"document.querySelector(\"{cards['cam-b']} img.thumb\").naturalWidth === "
           f"{THUMB_WIDTH}", "a picture for the operator")
    assert p.js("document.querySelectorAll('button.export-this').length") == 0
    p.js("location.hash = '#export'")
    p.wait("!document.getElementById('notice').hidden", "the refusal notice")
    assert not p.visible("#export-form")
    assert "for police users" in p.text("#notice")
    p.screenshot(tmp_path / "operator.png")
    body = {"camera": "cam-a", "from": iso_s(start_ns) + "Z", "to": iso_s(end_ns) + "Z",
            "case": "CASE-OPERATOR", "reason": "trying"}
    refused = p.js(f"""fetch('/api/exports', {{method: 'POST', headers: {{
            'Authorization': 'Bearer ' + JSON.parse(sessionStorage.getItem('vidproof.session')).token,
            'Content-Type': 'application/json'}}, body: {json.dumps(json.dumps(body))}}})
        .then(async r => [r.status, (await r.json()).detail])""")
    assert refused[0] == 403 and "operator" in refused[1] and "police" in refused[1], refused
    oscar = p.token()
    reply = http("POST", svc.url + "/api/exports", {"Authorization": f"Bearer {oscar}",
                                                     "Content-Type": "application/json"},
                 json.dumps(body).encode())
    assert reply.status == 403
    assert svc.get(f"/api/exports/{export_id}", oscar).status == 403
    assert svc.get(f"/api/exports/{export_id}/bundle", oscar).status == 403
    assert svc.get("/api/journal", oscar).status == 403

    # The page threw nothing, logged no errors of its own, and asked only this recorder.
    own_errors = [e for e in browser.problems() if "Failed to load resource" not in e]
    assert not own_errors, own_errors
    refusals = {(e["params"]["response"]["url"].removeprefix(svc.url),
                 e["params"]["response"]["status"]) for e in browser.events
                if e["method"] == "Network.responseReceived"
                and e["params"]["response"]["status"] >= 400}
    expected = {("/api/login", 401), ("/api/verify", 422), ("/api/exports", 403)}
    assert {("/api/login", 401), ("/api/exports", 403)} <= refusals <= expected, refusals
    outside = [u for u in browser.requested_urls()
               if not u.startswith((svc.url + "/", "data:"))]  # data: Chromium's own icons
    assert not outside, outside

    # A reload keeps the session; a token the recorder no longer knows (it restarted, or
    # the session expired) brings the login form back with a word of explanation.
    p.js("window.beforeReload = true")
    browser.page("Page.reload")
    p.wait("!window.beforeReload && document.readyState === 'complete' && "
           "document.querySelectorAll('#camera-list article.camera').length === 2",
           "the cameras after a reload")
    assert p.text("#who-name") == "oscar"
    p.js("sessionStorage.setItem('vidproof.session', JSON.stringify("
         "{token: 'forgotten-token', user: 'oscar', role: 'operator'}))")
    p.js("window.beforeReload = true")
    browser.page("Page.reload")
    p.wait("!window.beforeReload && document.readyState === 'complete' && "
           "!document.getElementById('view-login').hidden", "the login form after a 401")
    assert "session has ended" in p.text("#notice")
    assert not p.visible("#nav")

    # ---- stop: SIGTERM ends the service and its workers; the journal closes in order
    workers = svc.worker_pids()
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    svc.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean stop.
    assert svc.proc.wait(timeout=30) in (0, -signal.SIGTERM), svc.log.read_text()
    assert not [pid for pid in workers if alive(pid)]
    r = vidproof("journal", "verify", svc.data / "store", "--trust", pub)
    assert r.code == 0, r.out + r.err
    last = json.loads((svc.data / "store" / "journal.jsonl").read_bytes().splitlines()[-1])
    assert last["action"] == "service_stop"
    for cam in CAMERAS:
        r = vidproof("verify", svc.data / "store", "--trust", pub, "--camera", cam)
        assert r.code == 0, f"{cam}: {r.out}{r.err}"
