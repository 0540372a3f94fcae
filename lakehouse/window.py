"""Micro-batch windows: derived from the schedule, never from the clock (invariant 2).

Also the one home of time and interval parsing (:func:`parse_time`, :func:`parse_interval`):
the command line, the flows' parameters, the declaration and the simulator all read them here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator


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
        """The window's batch id: its end as ``YYYYMMDDTHHMMSSZ``."""
        return self.end.strftime("%Y%m%dT%H%M%SZ")


def window_ending_at(at: datetime, interval: timedelta) -> Window:
    """The window of length ``interval`` that ends at ``at`` (aware; converted to UTC).

    A scheduled run at 10:15 with a 15-minute interval consumes ``[10:00, 10:15)``; a
    time that is not on the interval grid is floored to it, so a run that starts late
    still consumes the window of its schedule slot.
    """
    if at.tzinfo is None:
        msg = f"{at.isoformat()} has no time zone: write it as 2026-01-01T00:15:00Z"
        raise ValueError(msg)
    if interval <= timedelta(0):
        msg = f"interval must be positive, got {interval}"
        raise ValueError(msg)
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
            msg = f"{name} {t.isoformat()} has no time zone: write it as 2026-01-01T00:15:00Z"
            raise ValueError(msg)
    if interval <= timedelta(0):
        msg = f"interval must be positive, got {interval}"
        raise ValueError(msg)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        msg = (
            f"end {end.isoformat()} must be after start {start.isoformat()}: the range "
            "[start, end) holds no window"
        )
        raise ValueError(msg)
    for name, t in (("start", start), ("end", end)):
        floor = window_ending_at(t, interval).end
        if floor != t:
            msg = (
                f"{name} {t.isoformat()} is not on the {_duration(interval)} window grid: "
                f"use {floor.isoformat()} or {(floor + interval).isoformat()}"
            )
            raise ValueError(msg)
    count = (end - start) // interval
    return [Window(start=start + k * interval, end=start + (k + 1) * interval) for k in range(count)]


def _duration(interval: timedelta) -> str:
    """``15m``, ``1h``, ``90s``: the interval as the command line writes it."""
    seconds = int(interval.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp with a zone (``2026-01-01T00:15:00Z`` or ``…+00:00``), as an aware datetime.

    Raises ``ValueError`` for text that is not a timestamp or has no zone.
    """
    cleaned = text.strip()
    if cleaned[-1:] in ("Z", "z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        msg = f"{text!r} is not an ISO 8601 timestamp such as 2026-01-01T00:15:00Z"
        raise ValueError(msg) from exc
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{text!r} has no time zone: write it as 2026-01-01T00:15:00Z or with +01:00"
        raise ValueError(msg)
    return value


_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")


def parse_interval(text: str) -> timedelta:
    """A positive duration such as ``90s``, ``5m``, ``15m`` or ``1h``; ``ValueError`` otherwise."""
    m = _INTERVAL.match(text)
    if not m or int(m.group(1)) == 0:
        msg = f"{text!r} is not an interval such as 5m, 15m, 1h or 90s"
        raise ValueError(msg)
    amount, unit = int(m.group(1)), m.group(2)
    return {
        "s": timedelta(seconds=amount),
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
    }[unit]


_DELTA_INTERVAL = re.compile(r"^\s*(?:interval\s+)?(\d+)\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)


def parse_delta_interval(text: str) -> timedelta | None:
    """A Delta table property's duration (``interval 30 days``, ``7 days``), or None if unreadable."""
    m = _DELTA_INTERVAL.match(text)
    if not m:
        return None
    return timedelta(**{f"{m.group(2).lower()}s": int(m.group(1))})


def _interval_value(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return parse_interval(value)
    except ValueError:
        msg = f"expected an interval such as 5m, 15m or 1h, got {value!r}"
        raise ValueError(msg) from None


Interval = Annotated[timedelta, BeforeValidator(_interval_value)]
"""A duration in a validated model, written as :func:`parse_interval` reads it (``15m``)."""

OptionalInterval = Annotated[timedelta | None, BeforeValidator(_interval_value)]
"""An :data:`Interval` that may be left out (``None``)."""
