"""Bronze progress from the Delta log: the cursor in commit metadata, bounded commits, old tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
from deltalake import DeltaTable, write_deltalake

from lakehouse.commit import latest_metadata
from lakehouse.config import Settings
from lakehouse.layers import bronze
from lakehouse.layers.bronze import BRONZE_SCHEMA, CURSOR_KEY
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at
from tests.shop_files import SHOP

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
ORDERS = SHOP.dataset("orders")


def put(store: LocalStore, minute: int, n: int = 1) -> str:
    at = START + timedelta(minutes=minute)
    key = f"orders/{at:%Y/%m/%d/%H/%M}/part-{n}.jsonl"
    store.put(key, b'{"order_id": "O1"}\n')
    return key


def test_a_backlog_becomes_bounded_commits_each_with_its_cursor(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings = Settings()
    store = LocalStore(tmp_path / "landing")
    keys = [put(store, m) for m in range(0, 60, 5)]  # an hour of files, one every 5 minutes
    dataset = replace(ORDERS, max_batch_files=5)
    window = window_ending_at(START + timedelta(hours=1), QUARTER)
    result = bronze.ingest(settings, dataset, window, landing=store)
    assert result.commits == 3 and len(result.files) == 12 and result.rows == 12
    table = DeltaTable(settings.table_uri("bronze", "orders_raw"))
    files = [h.get("lakehouse.files") for h in table.history() if h.get("lakehouse.files")]
    assert sorted(len(pl.Series([f]).str.json_decode().explode()) for f in files) == [2, 5, 5]
    cursor = latest_metadata(table, CURSOR_KEY)
    assert cursor["watermark"] == (START + timedelta(minutes=55)).isoformat()
    assert bronze.ingest(settings, dataset, window, landing=store).skipped  # a re-run commits nothing
    assert {k for k, *_ in bronze.cursor(table, "", {}).recent} <= set(keys)


def test_a_table_written_before_cursors_is_scanned_once_and_then_carries_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings = Settings()
    store = LocalStore(tmp_path / "landing")
    old = put(store, 1)
    info = store.list("orders/")[0]
    uri = settings.table_uri("bronze", "orders_raw")
    legacy = pl.DataFrame({
        "_raw": ['{"order_id": "O1"}'], "_batch_id": ["orders_raw:1"], "_source": ["orders"],
        "_source_position": [old], "_source_version": [info.etag], "_line": [1],
        "_landed_at": [START + timedelta(minutes=1)], "_ingested_at": [START + timedelta(minutes=2)],
    }).to_arrow().cast(BRONZE_SCHEMA)
    DeltaTable.create(uri, BRONZE_SCHEMA)
    write_deltalake(uri, legacy, mode="append")  # no lakehouse.cursor in its commit
    new = put(store, 7)
    result = bronze.ingest(settings, ORDERS, window_ending_at(START + QUARTER, QUARTER), landing=store)
    assert [f.key for f in result.files] == [new]  # the file already in bronze is not taken again
    assert latest_metadata(DeltaTable(uri), CURSOR_KEY) is not None
    later = put(store, 20)  # the next window reads the cursor, and the old file stays settled
    result = bronze.ingest(settings, ORDERS, window_ending_at(START + 2 * QUARTER, QUARTER), landing=store)
    assert [f.key for f in result.files] == [later]
