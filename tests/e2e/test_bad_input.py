"""Bad input gives a one-line error and the documented exit code, never a traceback.

Issue 2, done means point 7. Everything runs through the real CLI in a subprocess.

``vidproof record`` exits 2 on any error (cli.py). ``vidproof verify`` follows
the contract of DESIGN.md section 3, and the line between its codes 1 and 2 is:

- **2, could not verify**: the input is not recognisably a vidproof store or
  bundle, or cannot be used at all: a missing path, an empty directory, a file
  that is not a store, a camera directory without ``evidence.jsonl``, an
  evidence log that is empty or has no line that is a JSON object (random
  bytes), an unusable ``--trust`` file, unknown or missing flags. stderr holds
  exactly one line, stdout nothing (with ``--json``: one object whose verdict is
  ``"error"``).
- **1, not authentic or not complete**: a readable store (at least one
  ``<camera>/evidence.jsonl`` with JSON entries) whose evidence or media are
  damaged: a truncated log, random bytes over some lines, random bytes in a
  segment, a segment replaced. The damage is what the report is for: it is
  listed as findings with frame numbers, stderr stays empty. A key that is a
  valid Ed25519 key but not the camera's is also a finding (``untrusted_key``).
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import LOCATION, Keys, Run, ffmpeg, vidproof

SEED = 20240611  # random bytes below come from this seed: every run damages the same way
CAMERA = "cam1"  # the camera of the pristine_store fixture


def one_line_error(r: Run, code: int = 2) -> str:
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err
    assert r.code == code, f"exit {r.code}, expected {code}: {r.err!r}"
    lines = r.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert lines[0].startswith("vidproof: error: "), lines[0]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pem_private(key: object, password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, enc)


def _pem_public(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def junk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files that are not what the commands expect, made with real tools."""
    d = tmp_path_factory.mktemp("junk")
    rng = random.Random(SEED)
    (d / "text.txt").write_text("this is not a video\n")
    (d / "empty.mp4").write_bytes(b"")
    (d / "random.bin").write_bytes(rng.randbytes(4096))
    (d / "random.zip").write_bytes(rng.randbytes(4096))
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", d / "image.png")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", d / "audio.m4a")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=1", "-c:v", "mpeg4",
           d / "mpeg4.mkv")
    with zipfile.ZipFile(d / "not-a-bundle.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    (d / "garbage.pem").write_bytes(rng.randbytes(300))
    (d / "empty.pem").write_bytes(b"")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "rsa.key").write_bytes(_pem_private(rsa_key))
    (d / "rsa.pub").write_bytes(_pem_public(rsa_key.public_key()))
    ec_key = ec.generate_private_key(ec.SECP384R1())  # P-256 is a supported device key
    (d / "ec.key").write_bytes(_pem_private(ec_key))
    ed = ed25519.Ed25519PrivateKey.generate()
    (d / "encrypted.key").write_bytes(_pem_private(ed, b"secret"))
    (d / "a-directory").mkdir()
    return d


# --- vidproof record -------------------------------------------------------------------

RecordCase = Callable[[Path, Keys, Path], list[str]]


def _rec(source: str, *, key: str | None = None, camera: str = "cam1",
         location: str = LOCATION, extra: tuple[str, ...] = ()) -> RecordCase:
    def args(junk: Path, keys: Keys, store: Path) -> list[str]:
        src = source.format(junk=junk, port=_closed_port())
        k = str(keys.key) if key is None else key.format(junk=junk, keys=keys.key.parent)
        return ["record", "--source", src, "--camera-id", camera, "--location", location,
                "--key", k, "--store", str(store), "--duration", "2", "--fast", *extra]
    return args


RECORD_CASES: dict[str, RecordCase] = {
    # sources
    "missing-file": _rec("{junk}/no-such-file.mp4"),
    "unreachable-rtsp": _rec("rtsp://127.0.0.1:{port}/cam"),
    "unreachable-rtsps": _rec("rtsps://127.0.0.1:{port}/cam"),
    "text-file": _rec("{junk}/text.txt"),
    "empty-file": _rec("{junk}/empty.mp4"),
    "random-bytes": _rec("{junk}/random.bin"),
    "png-image": _rec("{junk}/image.png"),
    "audio-only": _rec("{junk}/audio.m4a"),
    "mpeg4-video": _rec("{junk}/mpeg4.mkv"),
    "directory": _rec("{junk}/a-directory"),
    "bad-testsrc": _rec("testsrc:13x13@25"),
    "bad-testsrc-text": _rec("testsrc:big"),
    "http-url": _rec("http://127.0.0.1:{port}/cam"),
    "device": _rec("device:/dev/video99"),
    # keys
    "key-garbage": _rec("testsrc", key="{junk}/garbage.pem"),
    "key-empty": _rec("testsrc", key="{junk}/empty.pem"),
    "key-public": _rec("testsrc", key="{keys}/device.pub"),
    "key-rsa": _rec("testsrc", key="{junk}/rsa.key"),
    "key-ec-p384": _rec("testsrc", key="{junk}/ec.key"),
    "key-encrypted": _rec("testsrc", key="{junk}/encrypted.key"),
    "key-missing": _rec("testsrc", key="{junk}/no-such.key"),
    "key-directory": _rec("testsrc", key="{junk}/a-directory"),
    # flags and their values
    "unknown-flag": _rec("testsrc", extra=("--frobnicate",)),
    "duration-negative": _rec("testsrc", extra=("--duration", "-3")),
    "duration-infinite": _rec("testsrc", extra=("--duration", "inf")),
    "duration-text": _rec("testsrc", extra=("--duration", "ten")),
    "segment-zero": _rec("testsrc", extra=("--segment-seconds", "0")),
    "location-no-coordinates": _rec("testsrc", location="Paris"),
    "location-latitude-91": _rec("testsrc", location="Paris;91,2.35"),
    "location-longitude-181": _rec("testsrc", location="Paris;48.85,181"),
    "location-not-numbers": _rec("testsrc", location="Paris;north,east"),
    "location-no-label": _rec("testsrc", location=";48.85,2.35"),
    "location-empty": _rec("testsrc", location=""),
    "camera-space": _rec("testsrc", camera="front door"),
    "camera-empty": _rec("testsrc", camera=""),
    "camera-path": _rec("testsrc", camera="../etc"),
    "camera-dot": _rec("testsrc", camera=".hidden"),
    "camera-too-long": _rec("testsrc", camera="c" * 65),
}


@pytest.mark.parametrize("case", RECORD_CASES, ids=list(RECORD_CASES))
def test_record_bad_input(case: str, junk: Path, keys: Keys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    r = vidproof(*RECORD_CASES[case](junk, keys, store), timeout=60)
    one_line_error(r)
    assert r.out == ""
    # Nothing was recorded, and no camera's evidence was created or recovered.
    assert not list(store.glob("*/evidence.jsonl"))


def test_record_store_is_a_file(keys: Keys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.write_text("not a directory")
    r = vidproof("record", "--source", "testsrc", "--camera-id", "cam1", "--location",
                 LOCATION, "--key", keys.key, "--store", store, "--duration", "1", "--fast")
    assert "not a directory" in one_line_error(r)
    r = vidproof("record", "--source", "testsrc", "--camera-id", "cam1", "--location",
                 LOCATION, "--key", keys.key, "--store", store / "sub", "--duration", "1",
                 "--fast")
    one_line_error(r)
    assert store.read_text() == "not a directory"


def test_record_missing_source_does_not_touch_an_existing_store(
        store: Path, keys: Keys) -> None:
    """A failing start must not rewrite a store's evidence (not even recover it)."""
    log = store / CAMERA / "evidence.jsonl"
    before = log.read_bytes()
    r = vidproof("record", "--source", store / "nope.mp4", "--camera-id", CAMERA, "--location",
                 LOCATION, "--key", keys.key, "--store", store, "--duration", "1", "--fast")
    one_line_error(r)
    assert log.read_bytes() == before
    assert not (store / CAMERA / "crash").exists()


# --- vidproof verify: exit 2 ----------------------------------------------------------

def _damage(rng: random.Random, path: Path, count: int, *, at: float = 0.5) -> None:
    """Overwrite ``count`` bytes of ``path`` with random bytes, around ``at`` of its size."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = rng.randbytes(count)
    path.write_bytes(bytes(data))


def _verify_args(case: str, store: Path, junk: Path, keys: Keys, tmp: Path) -> list[str | Path]:
    rng = random.Random(f"{SEED}-{case}")
    trust: str | Path = keys.pub
    path: str | Path = store
    extra: list[str | Path] = []
    cam = store / CAMERA
    if case == "missing-path":
        path = tmp / "no-such-store"
    elif case == "empty-dir":
        path = tmp / "empty"
        path.mkdir()
    elif case in ("text-file", "random-bytes-file", "png-file"):
        path = junk / {"text-file": "text.txt", "random-bytes-file": "random.bin",
                       "png-file": "image.png"}[case]
    elif case == "random-bytes-zip":
        path = junk / "random.zip"
    elif case == "zip-not-a-bundle":
        path = junk / "not-a-bundle.zip"
    elif case == "camera-dir-not-store":
        path = cam
    elif case == "evidence-file-itself":
        path = cam / "evidence.jsonl"
    elif case == "evidence-random-bytes":
        (cam / "evidence.jsonl").write_bytes(rng.randbytes(20000).replace(b"{", b"("))
    elif case == "evidence-empty":
        (cam / "evidence.jsonl").write_bytes(b"")
    elif case == "evidence-is-a-directory":
        (cam / "evidence.jsonl").unlink()
        (cam / "evidence.jsonl").mkdir()
    elif case.startswith("trust-"):
        trust = {"trust-garbage": junk / "garbage.pem", "trust-empty": junk / "empty.pem",
                 "trust-private-key": keys.key, "trust-rsa": junk / "rsa.pub",
                 "trust-missing": junk / "no-such.pub", "trust-directory": junk / "a-directory",
                 "trust-media-file": junk / "image.png"}[case]
    elif case == "unknown-flag":
        extra = ["--frobnicate"]
    elif case == "camera-invalid":
        extra = ["--camera", "../cam1"]
    elif case == "camera-unknown":
        extra = ["--camera", "cam9"]
    elif case == "media-missing":
        extra = ["--media", tmp / "no-such.mp4"]
    elif case == "media-text":
        extra = ["--media", junk / "text.txt"]
    elif case == "media-audio-only":
        extra = ["--media", junk / "audio.m4a"]
    elif case == "report-unwritable":
        extra = ["--report", tmp / "no-such-dir" / "report.html"]
    else:
        raise AssertionError(case)
    args: list[str | Path] = ["verify", path, *extra]
    if case != "trust-flag-missing":
        args += ["--trust", trust]
    return args


VERIFY_EXIT_2 = [
    "missing-path", "empty-dir", "text-file", "random-bytes-file", "png-file",
    "random-bytes-zip", "zip-not-a-bundle", "camera-dir-not-store", "evidence-file-itself",
    "evidence-random-bytes", "evidence-empty", "evidence-is-a-directory",
    "trust-garbage", "trust-empty", "trust-private-key", "trust-rsa", "trust-missing",
    "trust-directory", "trust-media-file", "unknown-flag", "camera-invalid", "camera-unknown",
    "media-missing", "media-text", "media-audio-only", "report-unwritable",
]


JSON_TOO = {"missing-path", "zip-not-a-bundle", "evidence-random-bytes", "trust-garbage",
            "camera-unknown", "media-text", "report-unwritable"}


@pytest.mark.parametrize("case", VERIFY_EXIT_2)
def test_verify_could_not_verify(case: str, store: Path, junk: Path, keys: Keys,
                                 tmp_path: Path) -> None:
    args = _verify_args(case, store, junk, keys, tmp_path)
    r = vidproof(*args)
    one_line_error(r, 2)
    assert r.out == ""
    # With --json, the same error is one JSON object on stdout as well.
    if case in JSON_TOO:
        r = vidproof(*args, "--json")
        message = one_line_error(r, 2)
        report = json.loads(r.out)
        assert report["verdict"] == "error" and report["findings"] == []
        assert message == f"vidproof: error: {report['error']}"


def test_verify_without_trust_flag(store: Path) -> None:
    one_line_error(vidproof("verify", store), 2)


def test_verify_without_arguments() -> None:
    one_line_error(vidproof("verify"), 2)
    one_line_error(vidproof(), 2)
    one_line_error(vidproof("frobnicate"), 2)


# --- vidproof verify: exit 1, the damage is reported ----------------------------------

def _signed_frames_before(log: bytes) -> int:
    """Frames covered by the last complete checkpoint line of ``log``."""
    entries = [json.loads(x) for x in log.splitlines(keepends=True) if x.endswith(b"\n")]
    last = max((i for i, e in enumerate(entries) if e["type"] == "checkpoint"), default=-1)
    return sum(1 for e in entries[:last] if e["type"] == "frame")


def _findings(r: Run) -> tuple[dict, set[tuple[str, str]]]:
    """The report of an exit-1 run, and its (kind, severity) pairs other than info."""
    assert "Traceback" not in r.err
    assert r.code == 1, f"exit {r.code}: {r.err}"
    assert r.err == ""
    report = r.json
    assert report["verdict"] == "not_authentic"
    return report, {(f["kind"], f["severity"]) for f in report["findings"]
                    if f["severity"] != "info"}


@pytest.mark.parametrize("fraction", [0.3, 0.77])
def test_verify_truncated_evidence(store: Path, keys: Keys, fraction: float) -> None:
    """Cut mid-line, like a crash: what is still signed verifies, the rest is unsigned.
    Not tampering of what remains, but not complete either: exit 1 with warnings."""
    log = store / CAMERA / "evidence.jsonl"
    data = log.read_bytes()
    cut = data[: int(len(data) * fraction)]
    assert not cut.endswith(b"\n")
    log.write_bytes(cut)
    report, kinds = _findings(vidproof("verify", store, "--trust", keys.pub, "--json"))
    assert kinds <= {("unsigned_tail", "warning"), ("unsigned_frames", "warning")}, kinds
    assert ("unsigned_tail", "warning") in kinds
    assert report["cameras"][0]["signed_frames"] == _signed_frames_before(cut) > 0


def test_verify_truncated_evidence_at_a_line(store: Path, keys: Keys) -> None:
    """Cut after a checkpoint: every remaining entry is signed, the frames after are not."""
    log = store / CAMERA / "evidence.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    last = max(i for i, x in enumerate(lines[: len(lines) // 2]) if b'"checkpoint"' in x)
    log.write_bytes(b"".join(lines[: last + 1]))
    report, kinds = _findings(vidproof("verify", store, "--trust", keys.pub, "--json"))
    assert kinds == {("unsigned_frames", "warning")}, kinds
    cam = report["cameras"][0]
    assert cam["signed_frames"] == cam["frames"] < cam["observed_frames"]


@pytest.mark.parametrize("at", [0.1, 0.5, 0.9])
def test_verify_random_bytes_over_evidence_lines(store: Path, keys: Keys, at: float) -> None:
    rng = random.Random(f"{SEED}-evidence-{at}")
    _damage(rng, store / CAMERA / "evidence.jsonl", 700, at=at)
    report, kinds = _findings(vidproof("verify", store, "--trust", keys.pub, "--json"))
    assert ("malformed_entry", "error") in kinds, kinds


def test_verify_random_line_inserted(store: Path, keys: Keys) -> None:
    log = store / CAMERA / "evidence.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines.insert(len(lines) // 2, random.Random(SEED).randbytes(80).replace(b"\n", b"") + b"\n")
    log.write_bytes(b"".join(lines))
    _, kinds = _findings(vidproof("verify", store, "--trust", keys.pub, "--json"))
    assert ("malformed_entry", "error") in kinds, kinds


@pytest.mark.parametrize("segment", ["000001.ts", "000002.ts", "000003.ts"])
def test_verify_random_bytes_in_a_segment(store: Path, keys: Keys, segment: str) -> None:
    rng = random.Random(f"{SEED}-{segment}")
    _damage(rng, store / CAMERA / "segments" / segment, 3000, at=0.4)
    report, kinds = _findings(vidproof("verify", store, "--trust", keys.pub, "--json"))
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors, kinds
    # The findings name frames of the damaged segment (about 1/3 of the 200 frames each).
    first = min(f["first_frame"] for f in errors if f["first_frame"] is not None)
    index = int(segment[:6]) - 1
    assert 75 * index <= first - report["cameras"][0]["first_frame"] < 75 * (index + 1)


@pytest.mark.parametrize("content", ["random", "empty", "text"])
def test_verify_segment_replaced(store: Path, keys: Keys, junk: Path, content: str) -> None:
    seg = store / CAMERA / "segments" / "000002.ts"
    seg.write_bytes({"random": random.Random(SEED).randbytes(seg.stat().st_size),
                     "empty": b"", "text": (junk / "text.txt").read_bytes()}[content])
    _, kinds = _findings(vidproof("verify", store, "--trust", keys.pub, "--json"))
    assert ("frame_missing", "error") in kinds, kinds


def test_verify_other_valid_key(store: Path, other_keys: Keys) -> None:
    _, kinds = _findings(vidproof("verify", store, "--trust", other_keys.pub, "--json"))
    assert ("untrusted_key", "error") in kinds, kinds


def test_verify_text_output_has_no_stderr_on_findings(store: Path, keys: Keys) -> None:
    _damage(random.Random(SEED), store / CAMERA / "segments" / "000001.ts", 2000)
    r = vidproof("verify", store, "--trust", keys.pub)
    assert r.code == 1 and r.err == "" and "Traceback" not in r.out
    assert "NOT AUTHENTIC" in r.out


def test_pristine_store_is_authentic(pristine_store: Path, keys: Keys) -> None:
    """The baseline the cases above damage: without damage, exit 0."""
    r = vidproof("verify", pristine_store, "--trust", keys.pub, "--json")
    assert r.code == 0, r.out
    assert r.json["verdict"] == "authentic" and r.json["frames"] == 200


def test_cli_is_run_as_a_user_would(tmp_path: Path) -> None:
    """The console script installed by pip behaves like ``python -m vidproof``."""
    script = Path(sys.executable).parent / "vidproof"
    proc = subprocess.run([script, "verify", tmp_path / "nope", "--trust", tmp_path / "k"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
