"""The text of the stamp: what is burned into each frame, formatted fast.

Four lines::

    2024-05-17 14:03:22.123 UTC
    2024-05-17 16:03:22.123 +02:00
    cam1 | 12 rue de Rivoli, Paris
    48.8566, 2.3522

Times are truncated (not rounded) to the millisecond, so the second shown is the
second of the record's capture time. The two time lines are split into a part
that changes at most once a day or when the local offset changes (the
``template``: date, separators, zone) and nine time digits ``HH MM SS mmm`` that
change from frame to frame; the renderer redraws only the digits that changed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: positions of the nine digits in "HH:MM:SS.mmm"
TIME_DIGITS = (0, 1, 3, 4, 6, 7, 9, 10, 11)
TIME_WIDTH = 12
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class TimeLine:
    """One time line: ``date + " " + HH:MM:SS.mmm + " " + zone``."""

    date: str
    zone: str
    digits: tuple[int, ...]

    @property
    def template(self) -> str:
        """The line with its time digits replaced by ``#``: the part cached."""
        return f"{self.date} ##:##:##.### {self.zone}"

    @property
    def layout(self) -> str:
        """The line with its time digits as ``0``: what sets the cell widths."""
        return f"{self.date} 00:00:00.000 {self.zone}"

    @property
    def digit_positions(self) -> tuple[int, ...]:
        start = len(self.date) + 1
        return tuple(start + p for p in TIME_DIGITS)

    @property
    def text(self) -> str:
        d = self.digits
        return (f"{self.date} {d[0]}{d[1]}:{d[2]}{d[3]}:{d[4]}{d[5]}.{d[6]}{d[7]}{d[8]} "
                f"{self.zone}")


def format_offset(seconds: int) -> str:
    """``+02:00``, ``-03:30``, or ``+00:09:21`` for offsets with seconds."""
    sign = "-" if seconds < 0 else "+"
    h, rem = divmod(abs(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def location_lines(camera_id: str, label: str, lat: str, lon: str) -> tuple[str, str]:
    """The two lines that do not change: camera and place, then coordinates as given."""
    first = f"{camera_id} | {label}" if label else camera_id
    return first, f"{lat}, {lon}"


class StampClock:
    """Splits capture times (ns since the Unix epoch, UTC) into the two time lines.

    ``tz`` is the zone of the local-time line; ``None`` means the machine's local
    zone, looked up when the second changes (so a DST change shows at once).
    """

    def __init__(self, tz: dt.tzinfo | None = None) -> None:
        self.tz = tz
        self._day = -1 << 62
        self._date = ""
        self._local_sec = -1 << 62
        self._offset = 0
        self._local_zone = ""
        self._local_day = -1 << 62
        self._local_date = ""

    def _offset_at(self, sec: int) -> int:
        if sec != self._local_sec:
            when = dt.datetime.fromtimestamp(sec, dt.UTC)
            local = when.astimezone(self.tz) if self.tz is not None else when.astimezone()
            off = local.utcoffset()
            self._offset = 0 if off is None else int(off.total_seconds())
            self._local_zone = format_offset(self._offset)
            self._local_sec = sec
        return self._offset

    def _date_of(self, day: int, local: bool) -> str:
        if local:
            if day != self._local_day:
                self._local_day = day
                self._local_date = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
            return self._local_date
        if day != self._day:
            self._day = day
            self._date = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        return self._date

    def lines(self, utc_ns: int) -> tuple[TimeLine, TimeLine]:
        ms_total = utc_ns // 1_000_000
        sec, ms = divmod(ms_total, 1000)
        utc = self._line(sec, ms, False, "UTC")
        offset = self._offset_at(sec)
        local = self._line(sec + offset, ms, True, self._local_zone)
        return utc, local

    def _line(self, sec: int, ms: int, local: bool, zone: str) -> TimeLine:
        day, sod = divmod(sec, 86400)
        hh, rem = divmod(sod, 3600)
        mm, ss = divmod(rem, 60)
        digits = (hh // 10, hh % 10, mm // 10, mm % 10, ss // 10, ss % 10,
                  ms // 100, ms // 10 % 10, ms % 10)
        return TimeLine(self._date_of(day, local), zone, digits)
