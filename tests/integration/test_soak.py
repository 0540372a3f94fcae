"""The soak (``make soak``) runs on the shop as it is declared now.

It broke once unnoticed: the shop gained sources with local siblings (a SQL database, a
Kinesis stream, an HTTP API) that the soak does not start, and every window failed. Two
windows without faults, on a real moto server through the fault proxy, must end with every
table equal to the independent recomputation.
"""

from __future__ import annotations

import pytest

from bench.soak import soak

pytestmark = pytest.mark.in_order_shard  # the shards' balance (tests/shards.py)


@pytest.mark.slow
def test_two_windows_of_the_soak_equal_the_independent_recomputation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_CONFIG", raising=False)  # as `make soak` runs: the built-in shop (the suite points it at its files)
    report = soak(2, seed=7, orders=6, rate=0.0, lost_ack=0.0, retries=1)
    assert not report.aborted and report.failures == [], report.failures
    assert set(report.equal) == {"silver.products", "silver.product_history", "silver.orders", "silver.order_items", "gold.daily_sales"}
    assert all(report.equal.values()), report.differences
    assert report.rows["silver.orders"] > 0


@pytest.mark.slow
def test_a_soak_out_of_time_stops_after_its_window_and_still_compares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_CONFIG", raising=False)
    report = soak(50, seed=7, orders=6, rate=0.0, lost_ack=0.0, retries=1, minutes=0)  # spent after the first
    assert report.stopped == "after window 1 of 50: --minutes 0 spent"
    assert len(report.window_seconds) == 1 and not report.aborted and report.failures == [], report.failures
    assert report.equal and all(report.equal.values()), report.differences
    assert report.rows["silver.orders"] > 0
