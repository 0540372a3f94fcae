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
from lakehouse.engine import run_window
from lakehouse.window import Window
from tests.integration.conftest import WINDOWS, InOrder
from tests.integration.helpers import INTERVAL, window_end
from tests.shop_files import SHOP

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


PARTITIONED = """
pipelines:
  p:
    sources:
      drops: {kind: landing_files, prefix: drops}
    datasets:
      events:
        source: drops
        columns: {event_id: string, day: date, v: int64, note: string, updated_at: timestamp}
        key: event_id
        order_by: updated_at
        partition_by: day
        target_file_size: 65536        # small files, so that a partition holds many after a few windows
"""


def test_a_merge_into_a_growing_partition_reads_the_files_its_keys_can_be_in(
    proxied: ProxyProcess, moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found with the benchmark: silver orders partitioned by date merged with only the
    # partition as the scope, so each window's merge scanned the whole day's partition (its
    # peak RSS went from 0.56 to 1.18 GB over 70 windows); with the key range as well, it
    # reads the files whose key statistics can hold the batch's keys
    import hashlib
    import json

    from lakehouse.declaration.build import parse
    from lakehouse.storage import open_store
    from tests.conftest import new_warehouse

    new_warehouse(moto, monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxied.endpoint_url)
    settings = Settings()
    pipeline = parse(PARTITIONED).pipeline("p")
    landing = open_store(settings.landing_root, settings)
    tallies = []
    for k in range(1, 6):
        end = window_end(k)
        stamp = (end - INTERVAL).isoformat().replace("+00:00", "Z")
        note = hashlib.sha256(str(k).encode()).hexdigest()
        new = [{"event_id": f"E{k:03d}-{i:04d}", "day": "2026-01-01", "v": 1, "note": f"{note}{i}", "updated_at": stamp}
               for i in range(2000)]
        again = [{"event_id": f"E{k - 1:03d}-{i:04d}", "day": "2026-01-01", "v": 2, "note": "", "updated_at": stamp}
                 for i in range(0, 2000, 100)] if k > 1 else []
        body = "".join(json.dumps(r) + "\n" for r in new + again).encode()
        landing.put(f"drops/events/{end - INTERVAL:%Y/%m/%d/%H/%M}/part-1.jsonl", body)
        proxied.tally()
        run_window(settings, pipeline, window(k))
        tallies.append(proxied.tally())
    silver = [f for f in tallies[-1].data_files if "/silver/events/" in f]
    early = [f for f in tallies[1].data_files if "/silver/events/" in f]
    # one partition of five windows' files; a window reads the last window's files (its
    # updates and the edge of the key range), not all of them (before: 2, 4, 6, 8 files)
    assert 0 < len(silver) <= len(early) + 1, (early, silver)
