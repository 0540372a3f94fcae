"""Micro-batch windows: derived from the schedule, never from the clock (invariant 2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Window:
    """The half-open interval ``[start, end)`` of landing times one run consumes."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        day = self.start.strftime("%Y-%m-%d")
        return f"{day} {self.start:%H:%M}–{self.end:%H:%M}"

    @property
    def batch_id(self) -> str:
        return self.end.strftime("%Y%m%dT%H%M%SZ")


def window_ending_at(at: datetime, interval: timedelta) -> Window:
    """The window of length ``interval`` that ends at ``at`` (aware; converted to UTC).

    A scheduled run at 10:15 with a 15-minute interval consumes ``[10:00, 10:15)``; a
    time that is not on the interval grid is floored to it, so a run that starts late
    still consumes the window of its schedule slot.
    """
    if at.tzinfo is None:
        raise ValueError(f"{at.isoformat()} has no time zone: write it as 2026-01-01T00:15:00Z")
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    at = at.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    end = epoch + ((at - epoch) // interval) * interval
    return Window(start=end - interval, end=end)


def windows_between(start: datetime, end: datetime, interval: timedelta) -> list[Window]:
    """The consecutive windows of length ``interval`` that tile ``[start, end)``, in order.

    Both ends must be aware and on the interval grid (the grid of :func:`window_ending_at`,
    counted from the Unix epoch), so a backfill covers exactly the windows its scheduled
    runs would have. Raises ``ValueError`` saying what to change otherwise.

    Example::

        windows_between(parse_time("2026-01-01T00:00Z"), parse_time("2026-01-01T01:00Z"),
                        timedelta(minutes=15))   # 4 windows: 00:00–00:15 … 00:45–01:00
    """
    for name, t in (("start", start), ("end", end)):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"{name} {t.isoformat()} has no time zone: write it as 2026-01-01T00:15:00Z")
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ValueError(
            f"end {end.isoformat()} must be after start {start.isoformat()}: the range "
            "[start, end) holds no window"
        )
    for name, t in (("start", start), ("end", end)):
        floor = window_ending_at(t, interval).end
        if floor != t:
            raise ValueError(
                f"{name} {t.isoformat()} is not on the {_duration(interval)} window grid: "
                f"use {floor.isoformat()} or {(floor + interval).isoformat()}"
            )
    count = (end - start) // interval
    return [Window(start=start + k * interval, end=start + (k + 1) * interval) for k in range(count)]


def _duration(interval: timedelta) -> str:
    """``15m``, ``1h``, ``90s``: the interval as the command line writes it."""
    seconds = int(interval.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
