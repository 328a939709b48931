"""RFC 3161 client: time-stamp requests over checkpoints, in the background.

Every ``interval`` seconds of recording, the recorder asks the time-stamp authority
for a token over its latest checkpoint: the message imprint is SHA-256 over the
checkpoint's canonical bytes, which is the checkpoint's entry hash (docs/FORMAT.md
section 13). Requests are made by a background thread, never by the capture loop;
while the TSA is unreachable they stay queued and are retried with back-off, and
each token obtained becomes a ``timestamp`` entry of the evidence log, written
right after the next checkpoint line (:class:`TimestampingWriter`).
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import algos, tsp

from ..errors import UsageError
from ..model import FORMAT
from ..store import EvidenceWriter
from ..verify.timestamps import TokenError, TokenInfo, inspect_token, parse_anchors_pem

log = logging.getLogger(__name__)

CONTENT_TYPE_QUERY = "application/timestamp-query"
CONTENT_TYPE_REPLY = "application/timestamp-reply"
MAX_REPLY_BYTES = 256 * 1024
MAX_QUEUE = 10_000  # requests kept while the TSA is unreachable; the oldest go first
FINAL_WAIT_S = 10.0  # at stop, how long to wait for the last tokens


class TsaUnavailable(Exception):
    """The TSA could not be reached, or refused the request: retry later."""


@dataclass(frozen=True)
class TsaSettings:
    url: str
    interval_s: float = 60.0
    anchors: tuple[bytes, ...] = ()  # DER certificates the TSA's must lead to (--tsa-cert)
    timeout_s: float = 10.0
    final_wait_s: float = FINAL_WAIT_S

    @classmethod
    def make(cls, url: str, interval_s: float, cert: Path | None) -> TsaSettings:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UsageError(f"--tsa {url!r} is not an http:// or https:// URL")
        if not (interval_s > 0):
            raise UsageError("--tsa-interval must be positive")
        anchors: tuple[bytes, ...] = ()
        if cert is not None:
            try:
                anchors = tuple(parse_anchors_pem(cert.read_bytes()))
            except OSError as exc:
                raise UsageError(f"cannot read --tsa-cert {cert}: {exc.strerror}") from None
            except TokenError as exc:
                raise UsageError(f"--tsa-cert {cert}: {exc}") from None
        return cls(url, interval_s, anchors)

    def context(self) -> dict[str, Any]:
        """What the signed context says about time-stamping (credentials left out)."""
        p = urllib.parse.urlsplit(self.url)
        netloc = p.hostname or ""
        if p.port is not None:
            netloc += f":{p.port}"
        return {"url": urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", "")),
                "interval_ms": round(self.interval_s * 1000),
                "imprint": "sha256 of the checkpoint's canonical bytes (its entry hash)",
                "trust_anchor": bool(self.anchors)}


def build_request(imprint: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq (RFC 3161 section 2.4.1): SHA-256 imprint, nonce, certReq."""
    return bytes(tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                            "hashed_message": imprint},
        "nonce": nonce,
        "cert_req": True,
    }).dump())


def read_response(data: bytes, imprint: bytes, nonce: int,
                  anchors: tuple[bytes, ...] = ()) -> tuple[bytes, TokenInfo]:
    """Check a DER TimeStampResp; return the token (DER ContentInfo) and what it says.
    Raises TsaUnavailable when the TSA refused, TokenError when the token is bad."""
    try:
        resp = tsp.TimeStampResp.load(data, strict=True)
        status = resp["status"]["status"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TokenError(f"the TSA's reply is not a TimeStampResp ({exc})") from None
    if status not in ("granted", "granted_with_mods"):
        text = resp["status"]["status_string"].native
        raise TsaUnavailable(f"the TSA refused the request: {status}"
                             + (f" ({'; '.join(text)})" if text else ""))
    token_value = resp["time_stamp_token"]
    if token_value.native is None:
        raise TokenError("the TSA granted the request but sent no token")
    token = bytes(token_value.dump())
    info = inspect_token(token, anchors, expected_imprint=imprint, nonce=nonce)
    return token, info


class TsaClient:
    """Asks one TSA over HTTP(S) (RFC 3161 section 3.4)."""

    def __init__(self, settings: TsaSettings) -> None:
        self.settings = settings

    def stamp(self, imprint: bytes) -> tuple[bytes, TokenInfo]:
        nonce = secrets.randbits(63) | 1
        req = urllib.request.Request(
            self.settings.url, data=build_request(imprint, nonce), method="POST",
            headers={"Content-Type": CONTENT_TYPE_QUERY, "Accept": CONTENT_TYPE_REPLY})
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as r:  # noqa: S310
                body = r.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise TsaUnavailable(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TsaUnavailable(str(reason)) from None
        if len(body) > MAX_REPLY_BYTES:
            raise TokenError("the TSA's reply is too large")
        return read_response(body, imprint, nonce, self.settings.anchors)


@dataclass(frozen=True)
class _Request:
    seq: int
    checkpoint: str


class Timestamper:
    """Requests tokens over checkpoints in a background thread; never blocks capture.

    ``checkpoint()`` is called (by the capture thread) for every checkpoint written; one
    every ``interval`` is queued. ``ready()`` hands back the timestamp entries obtained.
    While the TSA is unreachable, requests stay queued, in order, and are retried with
    back-off (1 s doubling, at most ``min(interval, 30 s)``): nothing is dropped unless
    MAX_QUEUE requests pile up, and then the oldest go (a later token covers them too).
    """

    def __init__(self, settings: TsaSettings, camera: str,
                 clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic,
                 client: TsaClient | None = None) -> None:
        self.settings = settings
        self.camera = camera
        self.clock = clock
        self.monotonic = monotonic
        self.client = client or TsaClient(settings)
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._ready: list[dict[str, Any]] = []
        self._stopping = False
        self._last_request: float | None = None
        self._latest: _Request | None = None
        self._requested: _Request | None = None
        self.requested = 0
        self.obtained = 0
        self.dropped = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name=f"tsa-{camera}", daemon=True)
        self._thread.start()

    def checkpoint(self, seq: int, checkpoint_hash: str) -> None:
        self._latest = _Request(seq, checkpoint_hash)
        now = self.monotonic()
        if self._last_request is None or now - self._last_request >= self.settings.interval_s:
            self._last_request = now
            self._enqueue(self._latest)

    def _enqueue(self, req: _Request) -> None:
        with self._cond:
            if len(self._queue) >= MAX_QUEUE:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(req)
            self._requested = req
            self.requested += 1
            self._cond.notify_all()

    def ready(self) -> list[dict[str, Any]]:
        with self._cond:
            out, self._ready = self._ready, []
        return out

    def finish(self, wait_s: float | None = None) -> list[dict[str, Any]]:
        """At stop: request the last checkpoint too, wait (bounded) for the queue to empty,
        stop the thread, and return the entries not yet handed back."""
        if self._latest is not None and self._latest != self._requested:
            self._enqueue(self._latest)
        deadline = self.monotonic() + (self.settings.final_wait_s if wait_s is None else wait_s)
        with self._cond:
            while self._queue and self.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - self.monotonic())))
            self._stopping = True
            pending = len(self._queue)
            self._cond.notify_all()
        self._thread.join(timeout=self.settings.timeout_s + 1)
        if pending:
            log.warning("%s: %d time-stamp requests were still pending at stop (TSA %s "
                        "unreachable); later footage will be covered by the next run's "
                        "tokens", self.camera, pending, self.settings.url)
        return self.ready()

    def _run(self) -> None:
        backoff = 1.0
        cap = max(0.2, min(self.settings.interval_s, 30.0))
        down_since: float | None = None
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                req = self._queue[0]
            try:
                token, info = self.client.stamp(bytes.fromhex(req.checkpoint))
            except TokenError as exc:
                # The TSA answered with something that is not a valid token over this
                # checkpoint: asking again would not help. Skip it; later tokens cover it.
                self.failures += 1
                log.error("%s: the TSA's token for checkpoint seq %d is not valid (%s); "
                          "skipped", self.camera, req.seq, exc)
                with self._cond:
                    if self._queue and self._queue[0] is req:
                        self._queue.popleft()
                        self.dropped += 1
                    self._cond.notify_all()
                continue
            except TsaUnavailable as exc:
                self.failures += 1
                if down_since is None:
                    down_since = self.monotonic()
                    log.warning("%s: time-stamp request for checkpoint seq %d failed (%s); "
                                "retrying", self.camera, req.seq, exc)
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(backoff)
                backoff = min(backoff * 2, cap)
                continue
            if down_since is not None:
                log.warning("%s: the TSA answers again after %.1f s", self.camera,
                            self.monotonic() - down_since)
                down_since = None
            backoff = 1.0
            entry = {
                "camera": self.camera, "checkpoint": req.checkpoint, "seq": req.seq,
                "token": base64.b64encode(token).decode("ascii"), "type": "timestamp",
                "utc_ns": self.clock(), "v": FORMAT,
            }
            del info  # checked by read_response; the verifier checks it again
            with self._cond:
                if self._queue and self._queue[0] is req:
                    self._queue.popleft()
                self._ready.append(entry)
                self.obtained += 1
                self._cond.notify_all()


class TimestampingWriter(EvidenceWriter):
    """The evidence log of a recorder that time-stamps its checkpoints.

    Every checkpoint appended is offered to the :class:`Timestamper`; the timestamp
    entries obtained are appended right after a checkpoint line, when the log is synced
    (the chain syncs it after each checkpoint), so that they are never interleaved with
    unsigned chain entries and crash recovery keeps them (docs/FORMAT.md sections 6 and 13)."""

    def __init__(self, path: Path, stamper: Timestamper) -> None:
        super().__init__(path)
        self.stamper = stamper
        self._after_checkpoint = False

    def append(self, entry: dict[str, Any]) -> str:
        h = super().append(entry)
        self._after_checkpoint = entry.get("type") == "checkpoint"
        if self._after_checkpoint:
            self.stamper.checkpoint(int(entry["seq"]), h)
        return h

    def _append_ready(self, entries: list[dict[str, Any]]) -> None:
        for e in entries:
            super().append(e)

    def sync(self) -> None:
        if self._after_checkpoint:
            self._append_ready(self.stamper.ready())
        super().sync()

    def close(self) -> None:
        if self._after_checkpoint:
            self._append_ready(self.stamper.finish())
        else:
            self.stamper.finish(0)
        super().close()
