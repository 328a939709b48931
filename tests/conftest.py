"""Shared fixtures: a device key, a recorded store, and helpers to run the CLI and ffmpeg."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCATION = "12 rue de Rivoli, Paris;48.8566,2.3522"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


def vidproof(*args: str | Path, timeout: float = 300) -> Run:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "vidproof", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def ffmpeg(*args: str | Path) -> None:
    """Stock ffmpeg, the independent peer."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True,
                   capture_output=True, timeout=300)


@dataclass(frozen=True)
class Keys:
    key: Path
    pub: Path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    r = vidproof("keygen", "--out", d)
    assert r.code == 0, r.err
    return Keys(d / "device.key", d / "device.pub")


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("other-keys")
    assert vidproof("keygen", "--out", d).code == 0
    return Keys(d / "device.key", d / "device.pub")


def record(store: Path, keys: Keys, *, source: str = "testsrc:640x360@25", camera: str = "cam1",
           duration: float = 8, segment_seconds: float = 3, location: str = LOCATION,
           extra: tuple[str, ...] = ()) -> Run:
    return vidproof("record", "--source", source, "--camera-id", camera, "--location", location,
                    "--key", keys.key, "--store", store, "--duration", str(duration), "--fast",
                    "--segment-seconds", str(segment_seconds), *extra)


@pytest.fixture(scope="session")
def pristine_store(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """An 8-s, 200-frame recording of the test camera in 3 segments. Copy before changing it."""
    store = tmp_path_factory.mktemp("pristine") / "store"
    r = record(store, keys)
    assert r.code == 0, r.err
    return store


@pytest.fixture
def store(pristine_store: Path, tmp_path: Path) -> Path:
    """A private copy of the pristine store, free to tamper with."""
    copy = tmp_path / "store"
    shutil.copytree(pristine_store, copy)
    return copy
