"""What a window reads does not grow with the tables' history (issue 10), seen from outside.

Every S3 request of delta-rs, DuckDB and boto3 goes through a counting proxy in front of the
moto server (lakehouse/s3proxy.py), and the windows run through the engine without Prefect
(``lakehouse.engine.run_window``), so the tally is exactly the window's own reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from lakehouse.config import Settings
from lakehouse.engine import run_window
from lakehouse.s3proxy import ProxyProcess, Tally
from lakehouse.shop import SHOP
from lakehouse.window import Window
from tests.integration.helpers import INTERVAL, land, window_end

pytestmark = pytest.mark.slow

WINDOWS = 4


@pytest.fixture
def proxied(moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(moto.endpoint_url)
    try:
        bucket = f"reads-{uuid.uuid4().hex[:8]}"
        moto.create_bucket(bucket)
        for key, value in moto.env(f"s3://{bucket}/wh").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
        yield proxy
    finally:
        proxy.stop()


def window(k: int) -> Window:
    return Window(window_end(k) - INTERVAL, window_end(k))


def test_a_windows_reads_stay_flat_and_a_window_with_nothing_new_reads_no_data(proxied: ProxyProcess, moto) -> None:
    land(WINDOWS, orders=10)
    settings = Settings()
    # the windows that are not measured (1 and 3) go to moto directly: the proxy is slow
    direct = Settings(aws_endpoint_url=moto.endpoint_url)
    reads: dict[int, Tally] = {}
    idle: dict[int, Tally] = {}
    for k in range(1, WINDOWS + 1):
        proxied.tally()
        run = run_window(settings if k % 2 == 0 else direct, SHOP, window(k))
        assert sum(len(b.files) for b in run.landed) > 0
        reads[k] = proxied.tally()
        if k == WINDOWS:  # a re-run of the same window: nothing new
            assert not any(len(b.files) for b in run_window(settings, SHOP, window(k)).landed)
            idle[k] = proxied.tally()

    # windows 1 and 3 bypassed the proxy; the measured ones went through it
    assert sum(reads[1].requests.values()) == 0 and reads[2].requests["data"] > 0, (reads[1], reads[2])
    # a window with nothing new reads the Delta logs and the landing listing, no data file
    assert all(t.requests["data"] == 0 for t in idle.values()), {k: t.requests for k, t in idle.items()}
    # the data files a window reads are the batch's (its bronze version, the few silver files
    # its keys can be in, the partitions it touches), whatever the history: window 4 reads
    # what window 2 did, within the batch's own spread
    early, late = reads[2], reads[WINDOWS]
    assert len(late.data_files) <= len(early.data_files) + 2, (early.data_files, late.data_files)
    assert late.bytes["data"] <= 1.3 * early.bytes["data"], (early.bytes, late.bytes)
