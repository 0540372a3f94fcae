"""The windows of a backfill range: the schedule's grid, in order, or a clear error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lakehouse.window import Window, window_ending_at, windows_between

T0 = datetime(2026, 1, 1, tzinfo=UTC)
M15 = timedelta(minutes=15)


def test_a_range_is_tiled_by_the_windows_of_its_schedule_in_order() -> None:
    windows = windows_between(T0, T0 + timedelta(hours=6), M15)
    assert len(windows) == 24
    assert windows[0] == Window(T0, T0 + M15)
    assert windows[-1] == Window(T0 + timedelta(hours=5, minutes=45), T0 + timedelta(hours=6))
    assert all(a.end == b.start for a, b in zip(windows, windows[1:], strict=False))
    # each is exactly the window a scheduled run at its end would process
    assert all(window_ending_at(w.end, M15) == w for w in windows)


def test_one_window_and_other_zones() -> None:
    plus_one = timezone(timedelta(hours=1))
    windows = windows_between(datetime(2026, 1, 1, 1, 0, tzinfo=plus_one), datetime(2026, 1, 1, 1, 15, tzinfo=plus_one), M15)
    assert windows == [Window(T0, T0 + M15)]
    assert windows[0].start.tzinfo == UTC


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (T0, T0, "must be after start"),
        (T0 + timedelta(hours=1), T0, "must be after start"),
        (T0 + timedelta(minutes=7), T0 + timedelta(hours=1), r"start 2026-01-01T00:07:00\+00:00 is not on the 15m window grid: use 2026-01-01T00:00:00\+00:00 or 2026-01-01T00:15:00\+00:00"),
        (T0, T0 + timedelta(minutes=50), r"end 2026-01-01T00:50:00\+00:00 is not on the 15m window grid: use 2026-01-01T00:45:00\+00:00 or 2026-01-01T01:00:00\+00:00"),
        (T0.replace(tzinfo=None), T0 + M15, "start 2026-01-01T00:00:00 has no time zone"),
        (T0, (T0 + M15).replace(tzinfo=None), "end 2026-01-01T00:15:00 has no time zone"),
    ],
    ids=["empty", "reversed", "misaligned-start", "misaligned-end", "naive-start", "naive-end"],
)
def test_bad_ranges_say_what_to_change(start: datetime, end: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        windows_between(start, end, M15)


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        windows_between(T0, T0 + M15, timedelta(0))


def test_an_hourly_grid_names_its_interval() -> None:
    with pytest.raises(ValueError, match="not on the 1h window grid"):
        windows_between(T0 + M15, T0 + timedelta(hours=2), timedelta(hours=1))
