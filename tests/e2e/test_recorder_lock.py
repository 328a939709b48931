"""One camera, one recorder: a second recorder on the same camera and store is refused."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import LOCATION, Keys, vidproof


def test_second_recorder_on_a_camera_is_refused(keys: Keys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = ["record", "--source", "testsrc:352x288@6", "--camera-id", "cam1", "--location",
            LOCATION, "--key", str(keys.key), "--store", str(store), "--wide-shot"]
    first = subprocess.Popen([sys.executable, "-m", "vidproof", *args, "--duration", "8"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (store / "cam1" / "evidence.jsonl").exists():
            assert time.monotonic() < deadline and first.poll() is None, first.stderr
            time.sleep(0.1)
        second = vidproof(*args, "--duration", "2")
        assert second.code == 2
        assert second.err.count("\n") == 1 and "already being recorded" in second.err
        other = vidproof(*[a if a != "cam1" else "cam2" for a in args], "--duration", "1")
        assert other.code == 0, other.err  # another camera of the same store is fine
    finally:
        assert first.wait(timeout=60) == 0
    v = vidproof("verify", store, "--trust", keys.pub, "--json")
    assert v.code == 0, v.out
    assert [f for f in v.json["findings"] if f["severity"] != "info"] == []
