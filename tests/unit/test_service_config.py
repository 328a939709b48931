"""The site configuration (TOML): every field, its default, and what is refused.

The loader is vidproof/service/config.py; configs/site.example.toml must document each
key it accepts and load as it is. Credentials are only ever read from a file or the
environment and put into the URL handed to the worker; the end-to-end check that they
leak nowhere is in tests/e2e/test_service_api.py.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import vidproof
from vidproof.errors import UsageError
from vidproof.service.config import (
    CAMERA_KEYS,
    MAX_RETENTION_DAYS,
    NTP_KEYS,
    SITE_KEYS,
    STORAGE_KEYS,
    TOP_KEYS,
    TSA_KEYS,
    NtpConfig,
    TsaConfig,
    load_config,
)
from vidproof.service.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "site.example.toml"
DEMO = ROOT / "configs" / "demo.toml"

CAMERA = '''
[[cameras]]
id = "{id}"
source = "{source}"
location = "Hall"
lat = "48.8566"
lon = "2.3522"
{extra}
'''


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def camera(id: str = "cam1", source: str = "testsrc:320x240@12", extra: str = "") -> str:
    return CAMERA.format(id=id, source=source, extra=extra)


def refused(tmp_path: Path, text: str) -> str:
    """The one-line message of the UsageError a config is refused with."""
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- every field and its default ------------------------------------------------------

def test_defaults(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, camera()))
    assert c.name == "vidproof recorder"
    assert c.data_dir == tmp_path / "data"           # relative to the config file
    assert c.store == tmp_path / "data" / "store"
    assert c.key == tmp_path / "data" / "keys" / "device.key"
    assert c.users_file == tmp_path / "data" / "users.json"
    assert (c.host, c.port) == ("127.0.0.1", 8080)
    assert c.segment_seconds == 60.0
    assert c.retention_days == 30.0 and c.retention_override is False
    assert c.ntp is None and c.tsa is None  # the host's clock as it is, no TSA
    (cam,) = c.cameras
    assert (cam.id, cam.source) == ("cam1", "testsrc:320x240@12")
    assert (cam.location.label, cam.location.lat, cam.location.lon) == (
        "Hall", "48.8566", "2.3522")
    assert cam.close_shot is True and cam.stamp is False and cam.enabled is True
    assert cam.credentials_file is None and cam.credentials_env is None
    assert cam.source_with_credentials() == "testsrc:320x240@12"


def test_every_field_is_read(tmp_path: Path) -> None:
    text = '''
[site]
name = "Site 7"
host = "0.0.0.0"
port = 9443
key = "/keys/rec.key"
users_file = "etc/users.json"

[storage]
path = "/srv/vidproof"
segment_seconds = 12.5
retention_days = 45
retention_override = true

[ntp]
servers = ["ntp.example", "[::1]:1123"]
max_offset_ms = 250
interval_seconds = 30
allow_unsynced = true

[tsa]
url = "https://tsa.example/"
interval_seconds = 120
cert = "tsa/cacert.pem"
''' + camera("a", extra='close_shot = false\nstamp = true\nenabled = false\n'
             'credentials_file = "secrets/a.cred"') + camera(
        "b", "rtsp://127.0.0.1:8554/cam", 'credentials_env = "CAM_B"')
    c = load_config(write(tmp_path, text))
    assert c.name == "Site 7" and (c.host, c.port) == ("0.0.0.0", 9443)
    assert c.key == Path("/keys/rec.key")
    assert c.users_file == tmp_path / "etc" / "users.json"
    assert c.data_dir == Path("/srv/vidproof") and c.segment_seconds == 12.5
    assert c.retention_days == 45 and c.retention_override is True
    assert c.ntp == NtpConfig(("ntp.example", "[::1]:1123"), 250.0, 30.0, True)
    assert c.tsa == TsaConfig("https://tsa.example/", 120.0, tmp_path / "tsa" / "cacert.pem")
    a, b = c.cameras
    assert (a.close_shot, a.stamp, a.enabled) == (False, True, False)
    assert a.credentials_file == tmp_path / "secrets" / "a.cred"
    assert b.credentials_env == "CAM_B" and b.credentials_file is None
    assert c.camera("b") is b and c.camera("nope") is None


def test_command_line_overrides_data_and_users(tmp_path: Path) -> None:
    path = write(tmp_path, camera())
    c = load_config(path, data_dir=tmp_path / "elsewhere", users_file=tmp_path / "u.json")
    assert c.data_dir == tmp_path / "elsewhere"
    assert c.key == tmp_path / "elsewhere" / "keys" / "device.key"  # the key follows
    assert c.users_file == tmp_path / "u.json"


def test_disabled_camera_gets_no_worker(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, camera("on") + camera("off", extra="enabled = false")))
    assert list(Supervisor(c).workers) == ["on"]


# --- retention: the decree's one month -------------------------------------------------

@pytest.mark.parametrize("days", [31, 30.5, 365])
def test_retention_over_a_month_needs_the_override(tmp_path: Path, days: float) -> None:
    text = f"[storage]\nretention_days = {days}\n" + camera()
    message = refused(tmp_path, text)
    assert "decree of 3 August 2007" in message
    assert "retention_override" in message and f"{MAX_RETENTION_DAYS} days" in message
    ok = f"[storage]\nretention_days = {days}\nretention_override = true\n" + camera()
    assert load_config(write(tmp_path, ok)).retention_days == days


def test_thirty_days_is_allowed_without_override(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "[storage]\nretention_days = 30\n" + camera()))
    assert c.retention_days == 30


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "true", '"30"'])
def test_retention_must_be_a_positive_number(tmp_path: Path, value: str) -> None:
    # nan would compare false with the 30-day limit and slip past it; true is a TOML
    # boolean, not a number of days.
    text = f"[storage]\nretention_days = {value}\nretention_override = true\n" + camera()
    assert "retention_days" in refused(tmp_path, text)


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "false"])
def test_segment_seconds_must_be_positive(tmp_path: Path, value: str) -> None:
    assert "segment_seconds" in refused(tmp_path, f"[storage]\nsegment_seconds = {value}\n"
                                        + camera())


@pytest.mark.parametrize("value", ["0", "70000", "true", '"8080"'])
def test_port_must_be_a_tcp_port(tmp_path: Path, value: str) -> None:
    assert "port" in refused(tmp_path, f"[site]\nport = {value}\n" + camera())


# --- cameras ---------------------------------------------------------------------------

def test_duplicate_camera_ids_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, camera("gate") + camera("yard") + camera("gate"))
    assert "'gate'" in message and "twice" in message and "#3" in message


def test_no_camera_is_refused(tmp_path: Path) -> None:
    assert "no [[cameras]]" in refused(tmp_path, "[site]\nname = 'x'\n")


@pytest.mark.parametrize("bad_id", ["../etc", "a/b", "", ".hidden", "x" * 65, "caméra"])
def test_camera_id_cannot_name_a_path(tmp_path: Path, bad_id: str) -> None:
    assert "camera id" in refused(tmp_path, camera(bad_id))


@pytest.mark.parametrize("missing", ["id", "source", "location", "lat", "lon"])
def test_required_camera_fields(tmp_path: Path, missing: str) -> None:
    lines = [ln for ln in camera().splitlines() if not ln.startswith(f"{missing} =")]
    assert f"'{missing}' is required" in refused(tmp_path, "\n".join(lines))


@pytest.mark.parametrize(("lat", "lon"), [('"91"', '"2"'), ('"48"', '"181"'),
                                          ('"north"', '"2"'), ("48.85", '"2.35"')])
def test_bad_coordinates_are_refused(tmp_path: Path, lat: str, lon: str) -> None:
    text = camera().replace('lat = "48.8566"', f"lat = {lat}").replace(
        'lon = "2.3522"', f"lon = {lon}")
    message = refused(tmp_path, text)
    assert "lat" in message or "location" in message


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    # A misspelt setting must not silently fall back to its default.
    assert "'retention_day'" in refused(tmp_path, "[storage]\nretention_day = 90\n" + camera())
    assert "'credential_file'" in refused(tmp_path, camera(extra='credential_file = "x"'))
    assert "'hots'" in refused(tmp_path, "[site]\nhots = '0.0.0.0'\n" + camera())
    assert "'camera'" in refused(tmp_path, "[[camera]]\nid = 'x'\n" + camera())


def test_wrong_types_are_refused(tmp_path: Path) -> None:
    assert "close_shot" in refused(tmp_path, camera(extra='close_shot = "yes"'))
    assert "'storage'" in refused(tmp_path, 'storage = "data"\n' + camera())
    assert "must be a table" in refused(tmp_path, "cameras = [1]\n")


# --- bad files: one line, never a traceback ---------------------------------------------

@pytest.mark.parametrize("text", [
    "[site\nname = 'x'\n",                       # unclosed table header
    "[site]\nname = \n",                         # no value
    "[[cameras]]\nid = 'a'\n[[cameras]\n",       # broken array of tables
    "[site]\nname = 'a'\n[site]\nname = 'b'\n",  # table defined twice
])
def test_bad_toml_is_one_line(tmp_path: Path, text: str) -> None:
    message = refused(tmp_path, text)
    assert "not valid TOML" in message and str(tmp_path / "site.toml") in message


def test_binary_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(path)


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(tmp_path)  # a directory


@pytest.mark.parametrize("text", ["[site\n", "[storage]\nretention_days = 31\n"])
def test_serve_refuses_a_bad_config_with_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text + camera(), encoding="utf-8")
    r = vidproof("serve", "--config", path, "--data", tmp_path / "data", timeout=60)
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidproof: error: "), r.err
    assert not (tmp_path / "data").exists()  # refused before anything was created


# --- credentials -----------------------------------------------------------------------

def test_credentials_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "cam.cred"
    secret.write_text("viewer:pa ss@w/rd:1\n")
    c = load_config(write(tmp_path, camera(source="rtsp://10.0.0.5:554/live?ch=1",
                                           extra=f'credentials_file = "{secret.name}"')))
    (cam,) = c.cameras
    url = cam.source_with_credentials()
    # Reserved characters are percent-encoded, so the URL still parses the same way.
    assert url == "rtsp://viewer:pa%20ss%40w%2Frd%3A1@10.0.0.5:554/live?ch=1"
    assert cam.source == "rtsp://10.0.0.5:554/live?ch=1"  # the config itself holds none
    assert "pa ss" not in repr(c)


def test_credentials_from_the_environment(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_SECRET_T", "admin:Zq-7!x")
    (cam,) = load_config(write(tmp_path, camera(source="rtsps://cam.local/s",
                                                extra='credentials_env = "CAM_SECRET_T"'))
                         ).cameras
    assert cam.source_with_credentials() == "rtsps://admin:Zq-7%21x@cam.local/s"
    monkeypatch.delenv("CAM_SECRET_T")
    with pytest.raises(UsageError, match="CAM_SECRET_T is not set"):
        cam.source_with_credentials()


def test_unreadable_credentials_file(tmp_path: Path) -> None:
    (cam,) = load_config(write(tmp_path, camera(source="rtsp://h/s",
                                                extra='credentials_file = "missing.cred"'))
                         ).cameras
    with pytest.raises(UsageError, match="cannot read credentials file"):
        cam.source_with_credentials()


def test_credentials_inside_the_url_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, camera(source="rtsp://admin:hunter2@10.0.0.5/s"))
    assert "credentials_file" in message
    assert "hunter2" not in message  # the refusal does not repeat the password


def test_both_credential_sources_are_refused(tmp_path: Path) -> None:
    extra = 'credentials_file = "a.cred"\ncredentials_env = "B"'
    assert "not both" in refused(tmp_path, camera(source="rtsp://h/s", extra=extra))


def test_credentials_are_not_on_the_worker_command_line(tmp_path: Path) -> None:
    secret = tmp_path / "cam.cred"
    secret.write_text("viewer:S3cret-Pw\n")
    c = load_config(write(tmp_path, camera(source="rtsp://127.0.0.1:9/cam",
                                           extra=f'credentials_file = "{secret}"')))
    sup = Supervisor(c)
    cmd = sup._command(c.cameras[0])
    assert not [a for a in cmd if "S3cret" in a or "rtsp:" in a]
    assert "env:VIDPROOF_SOURCE_URL" in cmd


# --- the shipped configurations --------------------------------------------------------

def test_site_example_loads() -> None:
    c = load_config(EXAMPLE)
    assert [cam.id for cam in c.cameras] == ["entrance", "car-park", "test-pattern"]
    assert c.retention_days <= MAX_RETENTION_DAYS
    assert c.camera("entrance").credentials_file is not None  # type: ignore[union-attr]
    assert c.camera("car-park").credentials_env  # type: ignore[union-attr]


def test_site_example_documents_every_field() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    assert set(raw) == set(TOP_KEYS)

    def section(name: str) -> str:
        m = re.search(rf"^\[{name}\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
        assert m, name
        return m.group(1)

    # [site] and [storage]: set, or shown commented out with a value (defaults that
    # follow the storage path are best left unset).
    for name, keys in (("site", SITE_KEYS), ("storage", STORAGE_KEYS)):
        body = section(name)
        for key in keys:
            assert re.search(rf"^#? ?{key} = \S", body, re.M), f"[{name}] {key} undocumented"
    # Cameras: every key is used by one of the example cameras and explained above them.
    used = set().union(*(cam.keys() for cam in raw["cameras"]))
    assert used == set(CAMERA_KEYS)
    comments = "\n".join(ln for ln in text.splitlines() if ln.startswith("#"))
    for key in CAMERA_KEYS:
        assert re.search(rf"\b{key}\b", comments), f"camera key {key} not explained"
    # [ntp] and [tsa]: every key shown, commented out (empty tables: not in use).
    for name, keys in (("ntp", NTP_KEYS), ("tsa", TSA_KEYS)):
        body = section(name)
        for key in keys:
            assert re.search(rf"^# {key} = \S", body, re.M), f"[{name}] {key} undocumented"
    # And no key in the example that the loader would refuse.
    assert set(raw["site"]) <= SITE_KEYS and set(raw["storage"]) <= STORAGE_KEYS


def test_demo_config_loads() -> None:
    c = load_config(DEMO)
    assert len([cam for cam in c.cameras if cam.enabled]) == 2
    assert all(cam.source.startswith("testsrc") for cam in c.cameras)


def test_time_sources_become_the_workers_record_flags(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, '[ntp]\nservers = ["127.0.0.1:1123"]\n'
                          '[tsa]\nurl = "http://127.0.0.1:8318/tsr"\ncert = "tsa.pem"\n'
                          + camera()))
    cmd = Supervisor(c)._command(c.cameras[0])
    tail = cmd[cmd.index("--ntp=127.0.0.1:1123"):]
    assert tail == ["--ntp=127.0.0.1:1123", "--max-clock-offset-ms", "500.0",
                    "--ntp-interval", "60.0", "--tsa", "http://127.0.0.1:8318/tsr",
                    "--tsa-interval", "60.0", "--tsa-cert", str(tmp_path / "tsa.pem")]
    # Without the tables, the workers are given none of these flags.
    plain = load_config(write(tmp_path, camera()))
    assert not [a for a in Supervisor(plain)._command(plain.cameras[0])
                if a.startswith(("--ntp", "--tsa", "--max-clock", "--allow-unsynced"))]


@pytest.mark.parametrize(("text", "message"), [
    ('[ntp]\nserver = ["a"]\n', "unknown setting 'server'"),
    ("[ntp]\nmax_offset_ms = 5\n", "'servers' is required"),
    ("[ntp]\nservers = []\n", "non-empty list"),
    ('[ntp]\nservers = ["a:99999"]\n', "port must be 1-65535"),
    ('[ntp]\nservers = ["a"]\nmax_offset_ms = -1\n', "[ntp] max_offset_ms must be a positive"),
    ('[ntp]\nservers = ["a"]\nallow_unsynced = "yes"\n', "'allow_unsynced' has the wrong type"),
    ('[tsa]\nurl = "ftp://tsa.example/"\n', "not an http:// or https:// URL"),
    ("[tsa]\ninterval_seconds = 5\n", "'url' is required"),
    ('[tsa]\nurl = "https://t.example/"\ninterval_seconds = 0\n',
     "[tsa] interval_seconds must be a positive"),
    ('[tsa]\nurl = "https://t.example/"\nca_file = "x"\n', "unknown setting 'ca_file'"),
])
def test_bad_time_sources_are_refused_in_one_line(tmp_path: Path, text: str,
                                                   message: str) -> None:
    with pytest.raises(UsageError) as e:
        load_config(write(tmp_path, text + camera()))
    assert message in str(e.value) and "\n" not in str(e.value)
