"""What a window reads does not grow with the tables' history (issue 10), seen from outside.

Every S3 request of delta-rs, DuckDB and boto3 goes through a counting proxy in front of the
moto server (lakehouse/dev/s3proxy.py), and the windows run through the engine without Prefect
(``lakehouse.engine.run_window``), so the tally is exactly the window's own reads.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lakehouse.config import Settings
from lakehouse.dev.s3proxy import ProxyProcess, Tally
from lakehouse.dev.shop import SHOP
from lakehouse.engine import run_window
from lakehouse.window import Window
from tests.integration.conftest import WINDOWS, InOrder
from tests.integration.helpers import INTERVAL, window_end

pytestmark = pytest.mark.slow



@pytest.fixture
def proxied(moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(moto.endpoint_url)
    try:
        yield proxy
    finally:
        proxy.stop()


def window(k: int) -> Window:
    return Window(window_end(k) - INTERVAL, window_end(k))


def measured(in_order: InOrder, proxy: ProxyProcess, monkeypatch: pytest.MonkeyPatch, k: int) -> tuple[Tally, Tally | None]:
    """Window ``k`` run through the proxy on a copy of the session's warehouse after window
    ``k - 1`` (its history), and, for the last window, a re-run of it with nothing new."""
    in_order.clone(k - 1, monkeypatch, landed=k)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
    settings = Settings()
    proxy.tally()
    run = run_window(settings, SHOP, window(k))
    assert sum(len(b.files) for b in run.landed) > 0
    reads = proxy.tally()
    if k < WINDOWS:
        return reads, None
    assert not any(len(b.files) for b in run_window(settings, SHOP, window(k)).landed)
    return reads, proxy.tally()


def test_a_windows_reads_stay_flat_and_a_window_with_nothing_new_reads_no_data(
    in_order: InOrder, proxied: ProxyProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session's in-order warehouse gives each measured window its history (windows 1 and
    # 3 were run once for the whole session): window 2 after one window, window 4 after three
    early, _ = measured(in_order, proxied, monkeypatch, 2)
    late, idle = measured(in_order, proxied, monkeypatch, WINDOWS)
    assert early.requests["data"] > 0, early
    # a window with nothing new reads the Delta logs and the landing listing, no data file
    assert idle is not None and idle.requests["data"] == 0, idle.requests
    # the data files a window reads are the batch's (its bronze version, the few silver files
    # its keys can be in, the partitions it touches), whatever the history: window 4 reads
    # what window 2 did, within the batch's own spread
    assert len(late.data_files) <= len(early.data_files) + 2, (early.data_files, late.data_files)
    assert late.bytes["data"] <= 1.3 * early.bytes["data"], (early.bytes, late.bytes)
