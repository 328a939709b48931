"""Clock discipline for the recorder: measure before recording, watch while recording.

- Before recording (:meth:`ClockWatch.start_check`): the recorder's clock is measured
  against the configured NTP servers. With no usable answer, or an offset beyond
  ``max_offset``, recording is refused (IEC 62676-1-2: no evidence recording with time
  stamps the device cannot guarantee) unless the operator overrides it, which is
  itself recorded in the signed context.
- While recording: the clock is measured again every ``interval`` in a background
  thread; a notable change (offset moved by ``NOTABLE_CHANGE_NS`` or more, or the
  status changed) becomes a signed ``clock_offset`` event. Every frame, the wall clock
  is compared with the monotonic clock: a step of ``JUMP_THRESHOLD_NS`` or more becomes
  a signed ``clock_jump`` event (docs/FORMAT.md section 14).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import Error, UsageError

if TYPE_CHECKING:
    from . import ntp
    from .ntp import Measurement, Server
else:  # every recorder imports this module; the NTP client only when --ntp is given
    ntp = lazy_module("vidproof.timestamp.ntp")
    Server = lazy_module("vidproof.timestamp.ntp", "Server")

log = logging.getLogger(__name__)

JUMP_THRESHOLD_NS = 100_000_000  # a wall-clock step this large is signed as clock_jump
MAX_READ_GAP_NS = 5_000_000  # two reads further apart than this are not compared
NOTABLE_CHANGE_NS = 100_000_000  # a re-measured offset this far from the last signed one


class ClockNotSynchronized(Error):
    """The clock cannot be trusted for evidence and no override was given."""


@dataclass(frozen=True)
class ClockSettings:
    servers: tuple[Server, ...] = ()
    max_offset_ns: int = 500_000_000
    allow_unsynced: bool = False
    interval_s: float = 60.0
    timeout_s: float = 1.0

    @classmethod
    def make(cls, servers: list[str] | None, max_offset_ms: float, allow_unsynced: bool,
             interval_s: float) -> ClockSettings:
        if not (max_offset_ms > 0):
            raise UsageError("--max-clock-offset-ms must be positive")
        if not (interval_s > 0):
            raise UsageError("--ntp-interval must be positive")
        return cls(tuple(Server.parse(s) for s in servers or ()),
                   round(max_offset_ms * 1_000_000), allow_unsynced, interval_s)


def status_of(m: Measurement, max_offset_ns: int) -> str:
    best = m.best
    if best is None:
        return "unreachable"
    return "synchronized" if abs(best.offset_ns) <= max_offset_ns else "offset_too_large"


def sync_json(m: Measurement, settings: ClockSettings) -> dict[str, Any]:
    """The ``sync`` member of ``context.clock`` (and the detail of ``clock_offset``)."""
    best = m.best
    return {
        "status": status_of(m, settings.max_offset_ns),
        "servers": list(m.servers),
        "server": best.server if best else None,
        "offset_ns": best.offset_ns if best else None,
        "delay_ns": best.delay_ns if best else None,
        "stratum": best.stratum if best else None,
        "leap": best.leap if best else None,
        "ref_id": best.ref_id if best else None,
        "measured_utc_ns": m.measured_utc_ns,
        "max_offset_ns": settings.max_offset_ns,
        "allow_unsynced": settings.allow_unsynced,
        "samples": [s.to_json() for s in m.samples],
        "errors": list(m.errors),
    }


def _describe(m: Measurement, settings: ClockSettings) -> str:
    best = m.best
    if best is None:
        return ("no NTP server answered (" + "; ".join(m.errors) + ")") if m.errors else \
            "no NTP server answered"
    return (f"the clock is off by {best.offset_ns / 1e9:+.3f} s against {best.server} "
            f"(stratum {best.stratum}), more than the {settings.max_offset_ns / 1e6:g} ms "
            "allowed (--max-clock-offset-ms)")


class ClockWatch:
    """The recorder's clock discipline. Only ``poll`` and ``context`` are called by the
    capture thread; measurements after the first are made by a background thread."""

    def __init__(self, settings: ClockSettings, clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], int] = time.monotonic_ns) -> None:
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self.sync: dict[str, Any] | None = None  # the latest measurement, as signed
        self._signed_offset: int | None = None
        self._signed_status: str | None = None
        self._pending: list[Measurement] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, int] | None = None  # (wall - mono, mono) at the last read

    def start_check(self) -> None:
        """Measure before recording; refuse when the clock cannot be trusted."""
        s = self.settings
        if not s.servers:
            return
        m = ntp.measure(s.servers, self.clock, s.timeout_s)
        status = status_of(m, s.max_offset_ns)
        if status != "synchronized":
            if not s.allow_unsynced:
                raise ClockNotSynchronized(
                    f"refusing to record: {_describe(m, s)}; fix the clock, or record anyway "
                    "with --allow-unsynced-clock (recorded in the signed evidence)")
            log.warning("recording with an unsynchronized clock (--allow-unsynced-clock): %s",
                        _describe(m, s))
        self._accept(m)
        self._thread = threading.Thread(target=self._run, name="ntp", daemon=True)
        self._thread.start()

    def _accept(self, m: Measurement) -> None:
        self.sync = sync_json(m, self.settings)
        self._signed_offset = self.sync["offset_ns"]
        self._signed_status = self.sync["status"]

    def context(self) -> dict[str, Any] | None:
        return self.sync

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            m = ntp.measure(self.settings.servers, self.clock, self.settings.timeout_s)
            with self._lock:
                self._pending.append(m)

    def poll(self) -> list[tuple[str, int, dict[str, Any]]]:
        """Events to sign now: ``(kind, utc_ns, detail)``. Called for every frame."""
        events: list[tuple[str, int, dict[str, Any]]] = []
        m0 = self.monotonic()
        wall = self.clock()
        m1 = self.monotonic()
        if m1 - m0 <= MAX_READ_GAP_NS:  # else the thread was preempted between the reads
            diff = wall - (m0 + m1) // 2
            if self._last is not None:
                jump = diff - self._last[0]
                if abs(jump) >= JUMP_THRESHOLD_NS:
                    events.append(("clock_jump", wall, {
                        "jump_ns": jump, "wall_before_ns": self._last[0] + self._last[1],
                        "wall_after_ns": wall, "monotonic_elapsed_ns": m1 - self._last[1],
                        "threshold_ns": JUMP_THRESHOLD_NS}))
            self._last = (diff, (m0 + m1) // 2)
        if self._pending:
            with self._lock:
                pending, self._pending = self._pending, []
            for m in pending:
                sync = sync_json(m, self.settings)
                off, status = sync["offset_ns"], sync["status"]
                moved = (off is not None and self._signed_offset is not None
                         and abs(off - self._signed_offset) >= NOTABLE_CHANGE_NS)
                if moved or status != self._signed_status:
                    sync["previous_offset_ns"] = self._signed_offset
                    sync["previous_status"] = self._signed_status
                    events.append(("clock_offset", wall, sync))
                    self._signed_status = status
                    if off is not None:
                        self._signed_offset = off
                self.sync = {k: v for k, v in sync.items()
                             if k not in ("previous_offset_ns", "previous_status")}
        return events

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s * len(self.settings.servers) + 1)
