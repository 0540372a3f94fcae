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
