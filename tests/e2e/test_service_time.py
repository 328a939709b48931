"""The service's [ntp] and [tsa] settings reach every camera worker (issue 6 with issue 5):
against a real chronyd and a real RFC 3161 TSA (openssl ts) on 127.0.0.1, each camera's
signed evidence records its measured clock and carries time-stamp tokens, and the
footage verifies with the TSA's CA as anchor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, vidproof
from tests.e2e.service_harness import CameraSpec, Service, running_service, wait_until
from tests.e2e.test_clock import Chrony
from tests.e2e.test_tsa import Tsa, make_pki

pytestmark = pytest.mark.slow
CAMERAS = ("cam-a", "cam-b")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Chrony, Tsa, Path]]:
    pki = make_pki(tmp_path_factory.mktemp("tsa-pki"))
    chrony = Chrony(tmp_path_factory.mktemp("chrony")).start()
    tsa = Tsa(pki, tmp_path_factory.mktemp("tsa-work"), free_port()).start()
    try:
        yield chrony, tsa, pki
    finally:
        tsa.stop()
        chrony.stop()


def entries(svc: Service, camera: str) -> list[dict[str, Any]]:
    path = svc.store / camera / "evidence.jsonl"
    return [json.loads(x) for x in path.read_bytes().split(b"\n") if x]


def test_workers_measure_the_clock_and_get_tokens(servers: tuple[Chrony, Tsa, Path],
                                                  tmp_path: Path) -> None:
    chrony, tsa, pki = servers
    tables = (f'[ntp]\nservers = ["{chrony.address}"]\nmax_offset_ms = 1000\n'
              "interval_seconds = 5\n\n"
              f'[tsa]\nurl = "{tsa.url}"\ninterval_seconds = 1\ncert = "{pki / "ca.pem"}"\n')
    cams = [CameraSpec(c, "testsrc:320x240@12") for c in CAMERAS]
    with running_service(tmp_path / "svc", cams, roles=("operator",), tables=tables) as svc:
        def stamped() -> bool:
            return all(any(e.get("type") == "timestamp" for e in entries(svc, c))
                       for c in CAMERAS if (svc.store / c / "evidence.jsonl").exists())

        wait_until("both cameras recording", lambda: all(
            c["state"] == "recording" and c["frames_out"] > 24
            for c in svc.cameras().values()), 60)
        wait_until("time-stamp tokens in both cameras' evidence", stamped, 60, 0.5)
        # The workers got the settings as record's own flags.
        # (this service's workers: other processes on the machine may record too)
        workers = [c for c in (svc.watcher.command_lines() if svc.watcher else [])
                   if "record" in c and "--store" in c
                   and c[c.index("--store") + 1] == str(svc.store)]
        assert workers
        for c in workers:
            assert f"--ntp={chrony.address}" in c and c[c.index("--tsa") + 1] == tsa.url
    for cam in CAMERAS:
        # The whole camera verifies offline with the recorder key and the TSA's CA; the
        # report gives its clock quality and by when the footage provably existed.
        r = vidproof("verify", svc.store, "--camera", cam, "--trust", svc.pub,
                     "--tsa-cert", pki / "ca.pem", "--json")
        assert r.code == 0, r.out + r.err
        (report,) = r.json["cameras"]
        clock = report["clock"]
        assert clock["measured"] and clock["synchronized"] and not clock["override"], clock
        assert report["timestamps"]["valid"] >= 1 and report["timestamps"]["anchored"]
        assert report["proven_existence"], report.keys()
        assert all(s["proof"] == "rfc3161" for s in report["proven_existence"])
