"""Times as vidproof writes them for people: ISO 8601 to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def iso_ns(ns: int, tz: tzinfo = UTC) -> str:
    """Nanoseconds since 1970 (UTC) as ISO 8601 with milliseconds (truncated): ``Z`` in
    UTC, else the zone's offset as ``+HH:MM``."""
    dt = datetime.fromtimestamp(ns // 10**9, tz=tz)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 10**9) // 10**6:03d}"
    return text + ("Z" if tz is UTC else dt.strftime("%z")[:3] + ":" + dt.strftime("%z")[3:])
