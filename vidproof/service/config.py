"""Site configuration (TOML): cameras, storage, retention, users, time sources.

configs/site.example.toml documents every field. Credentials are never in the
file itself: a camera names a file or an environment variable holding them,
and they are never logged or recorded.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import UsageError
from ..model import Location, RecordError, check_camera_id

MAX_RETENTION_DAYS = 30  # decree of 3 August 2007: at most one month
# Every key the loader accepts (configs/site.example.toml documents each); any other key
# is refused, so that a misspelt setting is not silently replaced by its default.
TOP_KEYS = frozenset({"site", "storage", "cameras", "ntp", "tsa"})
SITE_KEYS = frozenset({"name", "host", "port", "key", "cert", "trust", "crls", "users_file"})
STORAGE_KEYS = frozenset({"path", "segment_seconds", "retention_days", "retention_override"})
CAMERA_KEYS = frozenset({"id", "source", "location", "lat", "lon", "close_shot", "stamp",
                         "credentials_file", "credentials_env", "enabled"})
NTP_KEYS = frozenset({"servers", "max_offset_ms", "interval_seconds", "allow_unsynced"})
TSA_KEYS = frozenset({"url", "interval_seconds", "cert"})


@dataclass(frozen=True)
class NtpConfig:
    """[ntp]: every worker measures its clock against these servers (``record --ntp``),
    refuses to start beyond ``max_offset_ms`` unless ``allow_unsynced``, and measures
    again every ``interval_seconds``."""

    servers: tuple[str, ...]
    max_offset_ms: float = 500.0
    interval_seconds: float = 60.0
    allow_unsynced: bool = False

    def flags(self) -> list[str]:
        out = [f"--ntp={s}" for s in self.servers]
        out += ["--max-clock-offset-ms", repr(self.max_offset_ms),
                "--ntp-interval", repr(self.interval_seconds)]
        return out + (["--allow-unsynced-clock"] if self.allow_unsynced else [])


@dataclass(frozen=True)
class TsaConfig:
    """[tsa]: every worker has its checkpoints time-stamped by this RFC 3161 authority
    (``record --tsa``) at most every ``interval_seconds``; ``cert``: its certificate
    (or CA), kept with the evidence."""

    url: str
    interval_seconds: float = 60.0
    cert: Path | None = None

    def flags(self) -> list[str]:
        out = ["--tsa", self.url, "--tsa-interval", repr(self.interval_seconds)]
        return out + (["--tsa-cert", str(self.cert)] if self.cert is not None else [])


@dataclass(frozen=True)
class CameraConfig:
    id: str
    source: str
    location: Location
    close_shot: bool = True
    stamp: bool = False
    credentials_file: Path | None = None
    credentials_env: str | None = None
    enabled: bool = True

    def source_with_credentials(self) -> str:
        """The source URL with the camera's user:password inserted (never log this)."""
        secret = None
        if self.credentials_env:
            secret = os.environ.get(self.credentials_env)
            if secret is None:
                raise UsageError(f"camera {self.id}: environment variable "
                                 f"{self.credentials_env} is not set")
        elif self.credentials_file:
            try:
                secret = self.credentials_file.read_text().strip()
            except OSError as exc:
                raise UsageError(f"camera {self.id}: cannot read credentials file "
                                 f"{self.credentials_file}: {exc.strerror}") from None
        if not secret or "://" not in self.source:
            return self.source
        user, _, password = secret.partition(":")
        parts = urlsplit(self.source)
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class SiteConfig:
    path: Path
    name: str
    data_dir: Path
    key: Path
    users_file: Path
    cameras: tuple[CameraConfig, ...]
    segment_seconds: float = 60.0
    retention_days: float = 30.0
    retention_override: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    ntp: NtpConfig | None = None
    tsa: TsaConfig | None = None
    # The recorder key's certificate chain (vidproof device enroll): in the evidence and
    # the bundles. The anchor that uploaded bundles are verified against (a CA
    # certificate or a public key; default: this recorder's own key), and its CRLs.
    cert: Path | None = None
    trust: Path | None = None
    crls: tuple[Path, ...] = ()

    @property
    def store(self) -> Path:
        return self.data_dir / "store"

    def camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.id == camera_id), None)


def _req(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise UsageError(f"{where}: {key!r} is required")
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise UsageError(f"{where}: {key!r} must be a {kind.__name__}")
    return value


def _opt(table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any,
         where: str) -> Any:
    value = table.get(key, default)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is not default and (not isinstance(value, kind) or (
            isinstance(value, bool) and bool not in kinds)):  # TOML true is not a number
        raise UsageError(f"{where}: {key!r} has the wrong type")
    return value


def _known(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown setting {unknown[0]!r}; expected one of "
                         f"{', '.join(sorted(allowed))}")


def _seconds(value: float, what: str, where: str, table: str = "storage") -> float:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{where}: [{table}] {what} must be a positive, finite number")
    return value


def _ntp(raw: dict[str, Any], where: str) -> NtpConfig | None:
    table = _opt(raw, "ntp", dict, None, where)
    if not table:  # absent or empty: the host's clock, as it is
        return None
    w = where + " [ntp]"
    _known(table, NTP_KEYS, w)
    servers = _req(table, "servers", list, w)
    if not servers or not all(isinstance(x, str) and x.strip() for x in servers):
        raise UsageError(f"{w}: 'servers' must be a non-empty list of host names "
                         "(\"host\" or \"host:port\")")
    from ..timestamp.ntp import Server  # checks each as record --ntp does

    for x in servers:
        try:
            Server.parse(x)
        except (UsageError, ValueError) as exc:
            raise UsageError(f"{w}: {exc}") from None
    return NtpConfig(
        tuple(servers),
        _seconds(float(_opt(table, "max_offset_ms", (int, float), 500, w)), "max_offset_ms",
                 where, "ntp"),
        _seconds(float(_opt(table, "interval_seconds", (int, float), 60, w)),
                 "interval_seconds", where, "ntp"),
        bool(_opt(table, "allow_unsynced", bool, False, w)))


def _tsa(raw: dict[str, Any], where: str, rel: Any) -> TsaConfig | None:
    table = _opt(raw, "tsa", dict, None, where)
    if not table:  # absent or empty: no trusted timestamps
        return None
    w = where + " [tsa]"
    _known(table, TSA_KEYS, w)
    url = _req(table, "url", str, w)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{w}: url {url!r} is not an http:// or https:// URL")
    cert = _opt(table, "cert", str, None, w)
    return TsaConfig(url, _seconds(float(_opt(table, "interval_seconds", (int, float), 60, w)),
                                   "interval_seconds", where, "tsa"),
                     rel(cert) if cert else None)


def load_config(path: Path, data_dir: Path | None = None,
                users_file: Path | None = None) -> SiteConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config {path} is not valid TOML: {exc}") from None
    base = path.parent
    where = str(path)
    _known(raw, TOP_KEYS, where)
    site = _opt(raw, "site", dict, {}, where)
    storage = _opt(raw, "storage", dict, {}, where)
    _known(site, SITE_KEYS, where + " [site]")
    _known(storage, STORAGE_KEYS, where + " [storage]")

    def rel(p: str | Path) -> Path:
        q = Path(os.path.expanduser(str(p)))
        return q if q.is_absolute() else (base / q).resolve()

    data = data_dir or rel(_opt(storage, "path", str, "data", where + " [storage]"))
    retention = _seconds(float(_opt(storage, "retention_days", (int, float), 30, where)),
                         "retention_days", where)
    override = bool(_opt(storage, "retention_override", bool, False, where))
    segment_seconds = _seconds(float(_opt(storage, "segment_seconds", (int, float), 60, where)),
                               "segment_seconds", where)
    port = _opt(site, "port", int, 8080, where)
    if not 1 <= port <= 65535:
        raise UsageError(f"{where}: [site] port {port} is not a TCP port (1-65535)")
    if retention > MAX_RETENTION_DAYS and not override:
        raise UsageError(
            f"{where}: [storage] retention_days = {retention:g} exceeds the legal maximum of "
            f"{MAX_RETENTION_DAYS} days (decree of 3 August 2007); set retention_override = "
            "true only where a legal exception applies")
    cert, trust = (_opt(site, k, str, None, where + " [site]") for k in ("cert", "trust"))
    crls = _opt(site, "crls", list, [], where + " [site]")
    if not all(isinstance(x, str) and x for x in crls):
        raise UsageError(f"{where} [site]: 'crls' must be a list of file names")
    if crls and not trust:
        raise UsageError(f"{where} [site]: 'crls' applies with 'trust' (the CA they revoke "
                         "from) only")
    cameras: list[CameraConfig] = []
    raw_cams = _opt(raw, "cameras", list, [], where)
    if not raw_cams:
        raise UsageError(f"{where}: no [[cameras]] configured")
    seen: set[str] = set()
    for i, cam in enumerate(raw_cams):
        cw = f"{where} [[cameras]] #{i + 1}"
        if not isinstance(cam, dict):
            raise UsageError(f"{cw}: must be a table")
        _known(cam, CAMERA_KEYS, cw)
        cid = _req(cam, "id", str, cw)
        try:
            check_camera_id(cid)
            location = Location.parse(f"{_req(cam, 'location', str, cw)};"
                                      f"{_req(cam, 'lat', (str), cw)},{_req(cam, 'lon', str, cw)}")
        except RecordError as exc:
            raise UsageError(f"{cw}: {exc}") from None
        if cid in seen:
            raise UsageError(f"{cw}: camera id {cid!r} is used twice")
        seen.add(cid)
        cred_file = _opt(cam, "credentials_file", str, None, cw)
        source = _req(cam, "source", str, cw)
        try:
            parts = urlsplit(source)
            inline = "://" in source and bool(parts.username or parts.password)
        except ValueError as exc:
            raise UsageError(f"{cw}: source is not a valid URL ({exc})") from None
        if inline:
            raise UsageError(f"{cw}: the source URL holds credentials; put them in a file "
                             "(credentials_file) or an environment variable (credentials_env)")
        if cred_file and "credentials_env" in cam:
            raise UsageError(f"{cw}: give credentials_file or credentials_env, not both")
        cameras.append(CameraConfig(
            id=cid, source=source, location=location,
            close_shot=bool(_opt(cam, "close_shot", bool, True, cw)),
            stamp=bool(_opt(cam, "stamp", bool, False, cw)),
            credentials_file=rel(cred_file) if cred_file else None,
            credentials_env=_opt(cam, "credentials_env", str, None, cw),
            enabled=bool(_opt(cam, "enabled", bool, True, cw)),
        ))
    return SiteConfig(
        path=path, name=str(_opt(site, "name", str, "vidproof recorder", where)),
        data_dir=data,
        key=rel(_opt(site, "key", str, str(data / "keys" / "device.key"), where)),
        users_file=users_file or rel(_opt(site, "users_file", str, str(data / "users.json"),
                                          where)),
        cameras=tuple(cameras),
        segment_seconds=segment_seconds,
        retention_days=retention, retention_override=override,
        host=str(_opt(site, "host", str, "127.0.0.1", where)),
        port=port,
        ntp=_ntp(raw, where), tsa=_tsa(raw, where, rel),
        cert=rel(cert) if cert else None, trust=rel(trust) if trust else None,
        crls=tuple(rel(x) for x in crls),
    )
