"""Crash points: which hit of which point kills the process (the kill itself is replaced here)."""

from __future__ import annotations

import signal

import pytest

from lakehouse.dev import faults


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(faults, "_hits", faults.Counter())
    return sent


def test_unset_a_crash_point_does_nothing(kills: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_CRASH_AT", raising=False)
    for point in faults.POINTS:
        faults.crash_point(point)
    assert kills == []


def test_the_named_point_kills_on_its_first_hit(kills: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_CRASH_AT", "silver.committed")
    faults.crash_point("bronze.committed")
    assert kills == []
    faults.crash_point("silver.committed")
    assert kills == [signal.SIGKILL]


def test_a_hit_count_kills_on_the_nth_hit_only(kills: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_CRASH_AT", "gold.prepared")
    monkeypatch.setenv("LAKEHOUSE_CRASH_AT_HIT", "4")
    for _ in range(3):
        faults.crash_point("gold.prepared")
        faults.crash_point("bronze.committed")  # other points do not count
    assert kills == []
    faults.crash_point("gold.prepared")
    assert kills == [signal.SIGKILL]


def test_an_unknown_point_is_refused() -> None:
    with pytest.raises(ValueError, match="add it to lakehouse.dev.faults.POINTS"):
        faults.crash_point("silver.half-merged")
