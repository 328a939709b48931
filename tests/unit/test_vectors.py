"""The test vectors of tests/assets: each verifies with the real CLI as expected.json says,
and the checked-in generator reproduces them byte for byte."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.conftest import vidproof
from vidproof.digest import split_annexb
from vidproof.verify.load import read_media

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EXPECTED: dict[str, Any] = json.loads((ASSETS / "expected.json").read_text(encoding="utf-8"))


def finding_key(f: dict[str, Any]) -> tuple[str, str, int, int]:
    first, last = f["first_frame"], f["last_frame"]
    return (f["kind"], f["severity"], -1 if first is None else first,
            -1 if last is None else last)


def test_every_store_has_an_expectation() -> None:
    stores = sorted(p.name.removeprefix("store_") for p in ASSETS.glob("store_*"))
    assert stores == sorted(EXPECTED)
    assert {"good", "byte_flipped", "frame_dropped", "frames_swapped", "record_edited",
            "bad_signature", "unsigned_tail"} <= set(EXPECTED)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_vector(scenario: str) -> None:
    want = EXPECTED[scenario]
    r = vidproof("verify", ASSETS / f"store_{scenario}", "--trust", ASSETS / want["trust"],
                 "--json")
    assert r.code == want["exit_code"], r.err or r.out
    got = r.json
    assert got["verdict"] == want["verdict"]
    assert got["camera_ids"] == want["camera_ids"]
    assert (got["frames"], got["first_utc"], got["last_utc"]) == (
        want["frames"], want["first_utc"], want["last_utc"])
    assert sorted(map(finding_key, got["findings"])) == sorted(map(finding_key, want["findings"]))


def test_generator_is_reproducible(tmp_path: Path) -> None:
    """Regenerating from the checked-in clip gives the same evidence, byte for byte, and
    segments holding the same coded frames."""
    out = tmp_path / "assets"
    subprocess.run([sys.executable, ASSETS / "make_vectors.py", "--out", out], check=True,
                   capture_output=True, timeout=120)
    for name in ("expected.json", "vector-key.pub"):
        assert (out / name).read_bytes() == (ASSETS / name).read_bytes(), name
    for store in sorted(ASSETS.glob("store_*")):
        mine = sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file())
        theirs = sorted(p.relative_to(out / store.name)
                        for p in (out / store.name).rglob("*") if p.is_file())
        assert mine == theirs, store.name
        for rel in mine:
            a, b = store / rel, out / store.name / rel
            if rel.suffix == ".ts":
                # The muxer's framing may differ across FFmpeg builds; the frames may not.
                (oa, _), (ob, _) = read_media([a]), read_media([b])
                assert [(o.digest, o.pts) for o in oa] == [(o.digest, o.pts) for o in ob], rel
            else:
                assert a.read_bytes() == b.read_bytes(), f"{store.name}/{rel}"


def test_assets_stay_small() -> None:
    size = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file()
               and "__pycache__" not in p.parts)
    assert size < 1_000_000, size


def test_format_doc_worked_example_matches_the_vectors() -> None:
    """docs/FORMAT.md section 9 quotes store_good: its lines and hashes must be the real ones."""
    doc = (ASSETS.parents[1] / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    lines = (ASSETS / "store_good" / "cam1" / "evidence.jsonl").read_bytes().splitlines()
    for line in lines[:4]:
        assert line.decode("utf-8") in doc
        assert hashlib.sha256(line).hexdigest() in doc
    key = load_pem_public_key((ASSETS / "vector-key.pub").read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    raw = key.public_bytes_raw()
    assert raw.hex() in doc and hashlib.sha256(raw).hexdigest() in doc
    with av.open(str(ASSETS / "clip.h264"), format="h264") as c:
        first = bytes(next(p for p in c.demux(c.streams.video[0]) if p.size))
    nals = split_annexb(first)
    vcl = [n for n in nals if 1 <= n[0] & 0x1F <= 5]
    ps = sorted(n for n in nals if n[0] & 0x1F in (7, 8))

    def digest(units: list[bytes]) -> str:
        return hashlib.sha256(b"".join(len(n).to_bytes(4, "big") + n for n in units)).hexdigest()

    assert digest(vcl) in doc and digest(ps) in doc
    assert all(n.hex() in doc for n in ps)
    assert f"{len(vcl[0])} = 0x{len(vcl[0]):x}" in doc


def test_readme_describes_every_scenario() -> None:
    readme = (ASSETS / "README.md").read_text(encoding="utf-8")
    for scenario in EXPECTED:
        assert f"`{scenario}`" in readme, scenario
