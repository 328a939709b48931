"""The offline player page (player.html) in real headless Chromium, driven over DevTools.

A small H.264 clip made by stock ffmpeg and a frames table read back with PyAV form an
unpacked bundle; the page is opened from file:// and driven like a user would (keys,
buttons, form, file pickers). What it shows is checked against the table, and the PNG it
saves is checked pixel by pixel against the frame PyAV decodes.

Chromium is driven over ``--remote-debugging-pipe`` (file descriptors 3 and 4, messages
ended by NUL), so no WebSocket client or browser download is needed.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import queue
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest

from tests.conftest import ffmpeg
from vidproof.player import PlayerDataError, render_player

CHROMIUM = "/usr/bin/chromium"
CAMERA = "cam1"
# Markup in a label must come out as text, never as markup or a way out of the data.
LABEL = "12 rue de Rivoli, Paris </script><b>&amp;</b> é"
LAT, LON = "48.8566", "2.3522"
ZONE = "Europe/Paris"
FIRST_SEQ = 1234
FIRST_NS = 1_795_701_275_434_259_736
GAP_AT = 61          # a 1.5-s gap in capture time before this frame
W, H, FPS, SECONDS = 320, 240, 25, 3


# ---------------------------------------------------------------------------------------
# The bundle


def utc_text(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{ns % 1_000_000_000 // 1_000_000:03d}"


def local_text(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).astimezone(ZoneInfo(ZONE))
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{ns % 1_000_000_000 // 1_000_000:03d}"


def offset_text(ns: int) -> str:
    """The zone's offset at that instant, as the page writes it: UTC+01:00 Europe/Paris."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).astimezone(ZoneInfo(ZONE))
    off = dt.strftime("%z")
    return f"UTC{off[:3]}:{off[3:]} {ZONE}"


def make_frames(clip: Path) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The frames table of ``clip`` (presentation order) and each frame's RGB pixels."""
    table: list[dict[str, Any]] = []
    pixels: list[np.ndarray] = []
    with av.open(str(clip)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            assert frame.time is not None
            # Capture times 40 ms apart with a little jitter, and one gap.
            ns = FIRST_NS + i * 40_000_000 + (i * 7919 % 1000) * 1000
            if i >= GAP_AT:
                ns += 1_500_000_000
            table.append({"seq": FIRST_SEQ + i, "t": frame.time, "utc_ns": str(ns),
                          "key": bool(frame.key_frame)})
            pixels.append(frame.to_ndarray(format="rgb24").astype(np.int16))
    return table, pixels


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def player_data(frames: list[dict[str, Any]], sums: dict[str, str],
                offset_minutes: int = 60) -> dict[str, Any]:
    return {
        "format": "vidproof-player/1", "clip": "clip.mp4", "camera_id": CAMERA,
        "location": {"label": LABEL, "lat": LAT, "lon": LON},
        "timezone": {"name": ZONE, "offset_minutes": offset_minutes},
        "fps": float(FPS), "frames": frames, "sha256": sums,
        "case": "CASE-2026-001", "exported_utc": "2026-11-26T14:00:00.000Z",
        "officer": "J. Dupont",
    }


class Bundle:
    def __init__(self, root: Path) -> None:
        self.dir = root / "bundle"
        self.dir.mkdir()
        clip = self.dir / "clip.mp4"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}", "-t", str(SECONDS),
               "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", clip)
        self.frames, self.pixels = make_frames(clip)
        (self.dir / "evidence.json").write_text('{"format": "stand-in for the evidence"}\n')
        (self.dir / "report.html").write_text("<!DOCTYPE html><title>report</title>\n")
        sums = {n: sha256(self.dir / n) for n in ("clip.mp4", "evidence.json", "report.html")}
        self.page = self.dir / "player.html"
        self.page.write_text(render_player(player_data(self.frames, sums)), encoding="utf-8")
        names = sorted(p.name for p in self.dir.iterdir())
        (self.dir / "SHA256SUMS").write_text(
            "".join(f"{sha256(self.dir / n)}  {n}\n" for n in names), encoding="ascii")

    def ns(self, i: int) -> int:
        return int(self.frames[i]["utc_ns"])


# ---------------------------------------------------------------------------------------
# Chromium over the DevTools protocol


class Chromium:
    """Headless Debian Chromium with one page, driven over --remote-debugging-pipe."""

    def __init__(self, profile: Path, downloads: Path) -> None:
        cmd_r, cmd_w = os.pipe()    # we write commands, Chromium reads them on fd 3
        evt_r, evt_w = os.pipe()    # Chromium writes replies and events on fd 4
        # bash moves the pipe ends to fds 3 and 4 (no preexec_fn: pytest may run threads);
        # first lift them to 10 and up, so that neither is 3 or 4 already.
        cmd_r, evt_w = (_lift(fd) for fd in (cmd_r, evt_w))
        redirect = f'exec "$@" 3<&{cmd_r} 4>&{evt_w} {cmd_r}<&- {evt_w}>&-'
        self.log = open(profile.parent / "chromium.log", "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", redirect, "bash",
             CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1200,1300",
             "about:blank"],
            pass_fds=(cmd_r, evt_w), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        os.close(cmd_r)
        os.close(evt_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(evt_r, "rb", buffering=0)
        self._next = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": pages[0]["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.page(f"{domain}.enable")
        self.send("Browser.setDownloadBehavior",
                  {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True})

    def _read(self) -> None:
        buf = b""
        while chunk := self._in.read(1 << 16):
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    self._replies.pop(msg["id"]).put(msg)
                else:
                    self.events.append(msg)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 15) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            ident = self._next
            reply: queue.Queue[dict[str, Any]] = queue.Queue()
            self._replies[ident] = reply
            msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self._out.write(json.dumps(msg).encode() + b"\0")
        answer = reply.get(timeout=timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.send(method, params, session=self.session)

    def js(self, expression: str) -> Any:
        r = self.page("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                           "returnByValue": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} ({expression})")
            time.sleep(0.03)

    def key(self, key: str, code: int) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            self.page("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                                 "windowsVirtualKeyCode": code})

    def set_files(self, selector: str, files: list[Path]) -> None:
        obj = self.page("Runtime.evaluate", {"expression": f"document.querySelector('{selector}')"})
        self.page("DOM.setFileInputFiles", {"files": [str(f) for f in files],
                                            "objectId": obj["result"]["objectId"]})

    def problems(self) -> list[str]:
        """Uncaught exceptions and console errors the page produced."""
        out = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(e["params"]["exceptionDetails"])[:300])
            elif e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(json.dumps(e["params"]["args"])[:300])
            elif e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
                out.append(e["params"]["entry"]["text"][:300])
        return out

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self.log.close()


def _lift(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def _have_chromium() -> bool:
    if os.access(CHROMIUM, os.X_OK):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):  # scripts/test installs it; try once
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       capture_output=True, timeout=600, env=env)
    return os.access(CHROMIUM, os.X_OK)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle(tmp_path_factory.mktemp("player"))


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    if not _have_chromium():
        pytest.skip(f"{CHROMIUM} is absent and could not be installed (apt-get install chromium)")
    b = Chromium(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield b
    finally:
        b.close()


# ---------------------------------------------------------------------------------------
# Reading the page


def overlay(b: Chromium) -> dict[str, str]:
    value: dict[str, str] = b.js("""(() => {
        const t = id => document.getElementById(id).textContent;
        return {camera: t('ov-camera'), location: t('ov-location'), coords: t('ov-coords'),
                utc: t('ov-utc'), local: t('ov-local'), offset: t('ov-offset'),
                seq: t('ov-seq'), state: t('ov-state'), gap: t('ov-gap')};
    })()""")
    return value


def settled_on(b: Chromium, bundle: Bundle, i: int, timeout: float = 10) -> dict[str, str]:
    """Wait until the page shows frame i, paused and not seeking; return the overlay."""
    b.wait(f"""(() => {{ const v = document.getElementById('video');
               return v.paused && !v.seeking && v.readyState >= 2 &&
                      document.getElementById('ov-seq').textContent === '{FIRST_SEQ + i}'; }})()""",
           f"frame {i} (seq {FIRST_SEQ + i}) on screen", timeout)
    # The browser's own position must lie inside that frame's interval of the clip.
    t = b.js("document.getElementById('video').currentTime")
    assert bundle.frames[i]["t"] <= t
    if i + 1 < len(bundle.frames):
        assert t < bundle.frames[i + 1]["t"]
    return overlay(b)


def assert_shows(ov: dict[str, str], bundle: Bundle, i: int, ns: int | None = None) -> None:
    ns = bundle.ns(i) if ns is None else ns
    assert ov["seq"] == str(FIRST_SEQ + i)
    assert ov["utc"] == utc_text(ns)
    assert ov["local"] == local_text(ns)
    assert ov["offset"] == offset_text(ns)
    assert ov["camera"] == CAMERA
    assert ov["location"] == LABEL


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in PNG chunk {kind!r}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def png_text(chunks: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out = {}
    for kind, body in chunks:
        if kind == b"iTXt":
            keyword, rest = body.split(b"\0", 1)
            assert rest[:2] == b"\0\0"  # uncompressed
            _lang, _translated, text = rest[2:].split(b"\0", 2)
            out[keyword.decode("latin-1")] = text.decode("utf-8")
    return out


def wait_file(folder: Path, suffix: str, timeout: float = 10) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(f"*{suffix}")] if folder.is_dir() else []
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.05)
    raise AssertionError(f"no {suffix} file was downloaded into {folder}")


def closest_frame(pixels: list[np.ndarray], image: np.ndarray) -> tuple[int, list[float]]:
    diffs = [float(np.abs(p - image).mean()) for p in pixels]
    return int(np.argmin(diffs)), diffs


# ---------------------------------------------------------------------------------------
# The test


def test_player_in_chromium(bundle: Bundle, browser: Chromium, tmp_path: Path) -> None:
    b = browser
    b.page("Page.navigate", {"url": bundle.page.as_uri()})
    b.wait(f"location.href === {json.dumps(bundle.page.as_uri())} && "
           "document.readyState === 'complete'", "the page to load")
    b.wait("document.getElementById('video').readyState >= 2", "the clip to load")

    # The overlay shows camera, place and the first frame's date and time.
    ov = settled_on(b, bundle, 0)
    assert_shows(ov, bundle, 0)
    assert ov["coords"] == f"(lat {LAT}, lon {LON})"
    assert b.js("document.getElementById('video').videoWidth") == W
    assert b.js("document.title") == (
        "Video evidence · camera cam1 · case CASE-2026-001")

    # Three steps forward with the → key, one back with the button.
    b.js("document.activeElement && document.activeElement.blur()")
    for _ in range(3):
        b.key("ArrowRight", 39)
    assert_shows(settled_on(b, bundle, 3), bundle, 3)
    b.js("document.getElementById('btn-prev').click()")
    assert_shows(settled_on(b, bundle, 2), bundle, 2)

    # Freeze and save frame 2 as PNG. Chromium will not let a file:// page read the
    # pixels of a file:// video, so the page asks for clip.mp4 once, checks its
    # fingerprint, then saves from that copy.
    downloads = tmp_path / "downloads"
    b.js("document.getElementById('btn-save').click()")
    b.wait("!document.getElementById('clip-picker').hidden || "
           "document.getElementById('save-status').textContent.startsWith('Saved')",
           "the frame to be saved, or the page to ask for clip.mp4")
    if not b.js("document.getElementById('clip-picker').hidden"):
        b.set_files("#open-clip", [bundle.dir / "clip.mp4"])
    png_path = wait_file(downloads, ".png")
    assert png_path.name.startswith(f"{CAMERA}_")
    assert f"_seq{FIRST_SEQ + 2}" in png_path.name
    stamp = datetime.fromtimestamp(bundle.ns(2) // 10**9, tz=UTC).strftime("%Y%m%dT%H%M%S")
    assert stamp in png_path.name
    data = png_path.read_bytes()
    chunks = png_chunks(data)
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (W, H)
    text = png_text(chunks)
    assert text["Camera"] == CAMERA
    assert text["Frame seq"] == str(FIRST_SEQ + 2)
    assert text["Time UTC"] == utc_text(bundle.ns(2))
    assert text["Location"] == f"{LABEL} ({LAT}, {LON})"
    with av.open(str(png_path)) as c:
        image = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.int16)
    best, diffs = closest_frame(bundle.pixels, image)
    assert best == 2, f"the saved picture is closest to frame {best}, not 2: {diffs[:6]}"
    assert diffs[2] < 4, diffs[2]
    assert "clip.mp4" in b.js("document.getElementById('source-note').textContent")
    assert_shows(settled_on(b, bundle, 2), bundle, 2)   # still frozen on the same frame

    # Jump to a date and time, in UTC (13 ms after frame 50) and in local time (frame 20).
    def jump(text: str, zone: str) -> str:
        b.js(f"""(() => {{ document.getElementById('jump-time').value = {json.dumps(text)};
                  document.getElementById('jump-zone').value = '{zone}';
                  document.getElementById('jump-form').requestSubmit(); }})()""")
        return str(b.js("document.getElementById('jump-status').textContent"))

    status = jump(utc_text(bundle.ns(50) + 13_000_000), "utc")
    assert f"seq {FIRST_SEQ + 50}" in status
    assert_shows(settled_on(b, bundle, 50), bundle, 50)
    jump(local_text(bundle.ns(20)), "local")
    assert_shows(settled_on(b, bundle, 20), bundle, 20)
    jump(utc_text(bundle.ns(GAP_AT)) + "Z", "local")   # an explicit Z wins over the selector
    ov = settled_on(b, bundle, GAP_AT)
    assert ov["gap"].startswith("⚠ 1.5"), ov["gap"]
    assert "not understood" in jump("yesterday at noon", "utc").lower()

    # Slow and fast play set the browser's playback rate and move forward.
    def play_at(speed: str) -> None:
        b.js(f"document.querySelector('input[name=speed][value=\"{speed}\"]').click()")
        b.key("Home", 36)
        settled_on(b, bundle, 0)
        b.key(" ", 32)
        b.wait("!document.getElementById('video').paused", "playback to start")
        assert b.js("document.getElementById('video').playbackRate") == float(speed)
        b.wait(f"+document.getElementById('ov-seq').textContent > {FIRST_SEQ + 2}",
               f"playback at {speed}x to move forward")
        assert f"playing {speed}×" in overlay(b)["state"]
        b.js("document.getElementById('btn-play').click()")   # pause: settles on a whole frame
        b.wait("document.getElementById('ov-state').textContent.includes('paused')", "pause")

    play_at("0.25")
    play_at("4")

    # Reverse play at 2× from frame 40: the frame shown only ever goes back.
    b.js("document.querySelector('input[name=speed][value=\"2\"]').click()")
    jump(utc_text(bundle.ns(40)), "utc")
    settled_on(b, bundle, 40)
    b.key("r", 82)
    seen = [FIRST_SEQ + 40]
    deadline = time.monotonic() + 10
    while seen[-1] > FIRST_SEQ + 30 and time.monotonic() < deadline:
        seen.append(int(overlay(b)["seq"]))
        time.sleep(0.02)
    assert "backwards 2×" in overlay(b)["state"]
    b.js("document.getElementById('btn-reverse').click()")
    assert seen[-1] <= FIRST_SEQ + 30, f"reverse play did not go back: {seen[-5:]}"
    assert all(a >= c for a, c in zip(seen, seen[1:], strict=False)), seen
    b.wait("document.getElementById('ov-state').textContent.includes('paused')", "pause")
    i = int(overlay(b)["seq"]) - FIRST_SEQ
    assert_shows(settled_on(b, bundle, i), bundle, i)

    # Check the files: every fingerprint matches, SHA256SUMS included...
    everything = [bundle.dir / n for n in
                  ("clip.mp4", "evidence.json", "report.html", "player.html", "SHA256SUMS")]
    b.set_files("#check-files", everything)
    rows_js = """Object.fromEntries(Array.from(document.querySelectorAll('#check-rows tr'),
                  tr => [tr.dataset.file, [tr.className, tr.cells[3].textContent]]))"""
    b.wait("document.querySelectorAll('#check-rows tr.match').length === 4", "4 matching files")
    rows = b.js(rows_js)
    for name in ("clip.mp4", "evidence.json", "report.html", "player.html"):
        assert rows[name] == ["match", sha256(bundle.dir / name)], name
    summary = b.js("document.getElementById('check-summary').textContent")
    assert summary.startswith("✔ 4 files match") and "SHA256SUMS agrees" in summary

    # ...and a changed evidence.json is reported as not matching.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    bad = tampered / "evidence.json"
    bad.write_text((bundle.dir / "evidence.json").read_text().replace("stand-in", "stand-by"))
    b.set_files("#check-files", [bad])
    b.wait("document.querySelector('#check-rows tr[data-file=\"evidence.json\"]')"
           ".className === 'mismatch'", "the tampered file to be reported")
    assert b.js(rows_js)["evidence.json"] == ["mismatch", sha256(bad)]
    assert "Does not match: evidence.json" in b.js(
        "document.getElementById('check-summary').textContent")

    # A picture of the page, to look at; nothing went wrong, nothing left the machine.
    b.js("window.scrollTo(0, 0)")
    shot = b.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (tmp_path / "player-screenshot.png").write_bytes(base64.b64decode(shot["data"]))
    if os.environ.get("VIDPROOF_KEEP_SCREENSHOT"):
        shutil.copy(tmp_path / "player-screenshot.png", os.environ["VIDPROOF_KEEP_SCREENSHOT"])
    assert b.problems() == []
    urls = b.requested_urls()
    assert any(u.endswith("/clip.mp4") for u in urls)
    assert all(u.split(":", 1)[0] in ("file", "blob", "data") for u in urls), urls


def test_player_shifted_timeline_across_summer_time_end(bundle: Bundle, browser: Chromium,
                                                        tmp_path: Path) -> None:
    """Two awkward clips in one: (1) a frames table whose times are all 0.2 s later than
    the browser's timeline (as when a table ignores an MP4 edit list) still labels every
    frame right, since the first frame the browser shows is the table's first frame and the
    page measures the difference; (2) the clip spans the end of summer time in Paris
    (2026-10-25 01:00 UTC), and local times follow it: 02:59:59.9 +02:00, then 02:00 +01:00."""
    b = browser
    change_ns = 1_792_890_000 * 10**9
    utc = [change_ns - 100_000_000 + i * 40_000_000 for i in range(len(bundle.frames))]
    shifted = [{**f, "t": f["t"] + 0.2, "utc_ns": str(ns)} for f, ns in zip(bundle.frames, utc,
                                                                             strict=True)]
    folder = tmp_path / "shifted"
    folder.mkdir()
    shutil.copy(bundle.dir / "clip.mp4", folder / "clip.mp4")
    page = folder / "player.html"
    page.write_text(render_player(player_data(shifted, {"clip.mp4": sha256(folder / "clip.mp4")},
                                              offset_minutes=120)), encoding="utf-8")
    b.page("Page.navigate", {"url": page.as_uri()})
    b.wait(f"location.href === {json.dumps(page.as_uri())} && "
           "document.readyState === 'complete'", "the page to load")
    b.wait("document.getElementById('about').textContent.includes('corrects for the difference')",
           "the page to notice the shifted timeline")
    ov = settled_on(b, bundle, 0)   # bundle.frames hold the browser's times
    assert_shows(ov, bundle, 0, utc[0])
    assert ov["local"].endswith("02:59:59.900") and ov["offset"].startswith("UTC+02:00")
    b.js("document.activeElement && document.activeElement.blur()")
    for _ in range(3):
        b.key("ArrowRight", 39)
    ov = settled_on(b, bundle, 3)
    assert_shows(ov, bundle, 3, utc[3])
    assert ov["local"].endswith("02:00:00.020") and ov["offset"].startswith("UTC+01:00")
    assert b.problems() == []


# ---------------------------------------------------------------------------------------
# render_player on its own


def _sample() -> dict[str, Any]:
    frames = [{"seq": 7 + i, "t": i / 25, "utc_ns": str(FIRST_NS + i * 40_000_000),
               "key": i == 0} for i in range(3)]
    return player_data(frames, {"clip.mp4": "ab" * 32})


def _embedded(page: str) -> Any:
    start = page.index('<script type="application/json" id="vidproof-data">')
    body = page[page.index(">", start) + 1:page.index("</script>", start)]
    return json.loads(body)


def test_render_embeds_data_inertly() -> None:
    data = _sample()
    data["case"] = "</SCRIPT><script>alert(1)</script> {{DATA}} &amp;"
    data["location"]["label"] = "<!-- \u2028 </script"
    page = render_player(data)
    embedded = _embedded(page)   # the first </script> after the tag closes the data: intact
    assert embedded["case"] == data["case"]
    assert embedded["location"]["label"] == data["location"]["label"]
    assert embedded["frames"] == data["frames"]
    assert "<script>alert" not in page and "<!--" not in page.split("vidproof-data")[1]
    assert "<title>Video evidence · camera cam1 · case &lt;/SCRIPT&gt;" in page
    assert "{{DATA}} &amp;amp;</title>" in page   # placeholders in values stay as text


def test_render_writes_big_utc_ns_as_strings() -> None:
    data = _sample()
    data["frames"][1]["utc_ns"] = FIRST_NS + 40_000_000   # an int is accepted, written exactly
    assert _embedded(render_player(data))["frames"][1]["utc_ns"] == str(FIRST_NS + 40_000_000)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="vidproof-player/2"), "format"),
    (lambda d: d.update(clip="../clip.mp4"), "plain file name"),
    (lambda d: d.update(frames=[]), "non-empty"),
    (lambda d: d["frames"][2].update(t=0.0), "presentation order"),
    (lambda d: d["frames"][0].update(utc_ns="1.5e18"), "utc_ns"),
    (lambda d: d["frames"][0].pop("key"), "key"),
    (lambda d: d.update(fps=float("nan")), "fps"),
    (lambda d: d["sha256"].update({"evidence.json": "ABC"}), "sha256"),
    (lambda d: d["timezone"].update(offset_minutes="60"), "offset_minutes"),
    (lambda d: d.pop("location"), "location"),
])
def test_render_rejects_malformed_data(change: Callable[[dict[str, Any]], Any],
                                       message: str) -> None:
    data = _sample()
    change(data)
    with pytest.raises(PlayerDataError, match=message):
        render_player(data)
