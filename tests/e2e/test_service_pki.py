"""A site on the operator's PKI (issue 6 with issue 5): the service signs with an enrolled
device key and its certificate ([site] key, cert), every worker writes the chain into its
evidence, police bundles carry it and verify offline against the CA alone, and bundles
uploaded to the web service are checked against the site's anchor ([site] trust, crls):
one from a recorder of another CA is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LOCATION, vidproof
from tests.e2e.service_harness import CameraSpec, Service, running_service, wait_until

pytestmark = pytest.mark.slow


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        r = vidproof("ca", "init", "--out", root / ca)
        assert r.code == 0, r.err
    for dev, ca in (("site-dev", "ca"), ("other-dev", "other-ca")):
        r = vidproof("device", "enroll", "--ca", root / ca, "--recorder-id", dev, "--out",
                     root / dev)
        assert r.code == 0, r.err
    return root


@pytest.fixture(scope="module")
def svc(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    site = {"key": str(pki / "site-dev" / "device.key"),
            "cert": str(pki / "site-dev" / "device.pem"), "trust": str(pki / "ca" / "ca.pem")}
    with running_service(tmp_path_factory.mktemp("service-pki"),
                         [CameraSpec("cam-a", "testsrc:320x240@12")],
                         roles=("police", "auditor"), site=site) as s:
        yield s


def upload(svc: Service, bundle: Path) -> dict[str, Any]:
    r = svc.request("POST", "/api/verify", "auditor",
                    files={"file": (bundle.name, bundle.read_bytes(), "application/zip")})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_police_bundle_carries_the_chain_and_verifies_against_the_ca(
        svc: Service, pki: Path, tmp_path: Path) -> None:
    def covered() -> Any:
        r = svc.get("/api/recordings", "police", params={"camera": "cam-a"}).json()
        return r["ranges"] if r["ranges"] and (
            parse(r["ranges"][-1]["end"]) - parse(r["ranges"][0]["start"])
        ).total_seconds() >= 5 else None

    (run,) = wait_until("5 s of cam-a", covered, 60)
    log = [json.loads(x) for x in (svc.store / "cam-a" / "evidence.jsonl").read_bytes()
           .split(b"\n") if x]
    context = next(e for e in log if e.get("type") == "context")["context"]
    assert context["key"].get("certs"), context["key"]  # the worker got --cert
    start = parse(run["start"]) + timedelta(seconds=1)
    body = {"camera": "cam-a", "from": start.isoformat(),
            "to": (start + timedelta(seconds=3)).isoformat(), "case": "PKI-1"}
    r = svc.request("POST", "/api/exports", "police", json=body)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    status = wait_until("the export", lambda: (lambda s: s if s["state"] in ("done", "failed")
                        else None)(svc.get(f"/api/exports/{job}", "police").json()), 60, 0.2)
    assert status["state"] == "done", status
    bundle = tmp_path / "site.zip"
    bundle.write_bytes(svc.get(f"/api/exports/{job}/bundle", "police").content)
    # Offline, with only the operator's CA: the bundle carries the device certificate.
    r = vidproof("verify", bundle, "--trust", pki / "ca" / "ca.pem", "--json")
    assert r.code == 0, r.out + r.err
    # Another CA does not vouch for it.
    r = vidproof("verify", bundle, "--trust", pki / "other-ca" / "ca.pem", "--json")
    assert r.code == 1, r.out
    # The service checks uploads against its [site] trust, the CA.
    assert upload(svc, bundle)["verdict"] == "authentic"


def test_upload_from_a_recorder_of_another_ca_is_not_authentic(
        svc: Service, pki: Path, tmp_path: Path) -> None:
    store, dev = tmp_path / "store", pki / "other-dev"
    r = vidproof("record", "--source", "testsrc:320x240@12", "--fast", "--duration", "4",
                 "--camera-id", "cam-x", "--location", LOCATION, "--key", dev / "device.key",
                 "--cert", dev / "device.pem", "--store", store)
    assert r.code == 0, r.err
    first = next(json.loads(x) for x in (store / "cam-x" / "evidence.jsonl").read_bytes()
                 .split(b"\n") if b'"type":"frame"' in x)
    t0 = datetime.fromtimestamp(first["utc_ns"] / 1e9, tz=UTC)
    bundle = tmp_path / "other.zip"
    r = vidproof("export", "--store", store, "--camera", "cam-x", "--from",
                 t0.isoformat(), "--to", (t0 + timedelta(seconds=3)).isoformat(), "--out",
                 bundle, "--case", "X", "--officer", "someone", "--key", dev / "device.key",
                 "--cert", dev / "device.pem")
    assert r.code == 0, r.err
    assert vidproof("verify", bundle, "--trust", pki / "other-ca" / "ca.pem").code == 0
    report = upload(svc, bundle)
    assert report["verdict"] == "not_authentic", report
    assert any(f["severity"] == "error" for f in report["findings"]), report["findings"]
