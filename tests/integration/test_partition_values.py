"""Silver partitioned by a string whose values hold spaces and ``%``: gold keeps working.

delta-rs' ``load_cdf`` does not find the change files of such partitions (the path is
percent-encoded twice); gold then failed on every run after the first. Real tables, on a
local path and on moto S3, through the engine's own window runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.engine import run_window
from lakehouse.layers import gold
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at

DECLARATION = """
pipelines:
  shop:
    sources:
      drops: {prefix: drops, format: jsonl, interval: 10m}
    datasets:
      sales:
        source: drops
        columns: {sale_id: string, region: string, amount: int64, updated_at: timestamp}
        key: sale_id
        order_by: updated_at
        partition_by: region
    gold:
      by_region:
        partition_by: region
        key: [region]
        sql: |
          SELECT region, CAST(sum(amount) AS BIGINT) AS total, CAST(count(*) AS BIGINT) AS sales
          FROM silver.sales GROUP BY ALL
"""

REGIONS = ["North East", "50% off", "a%20b", "plain", "100 %"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _land(settings: Settings, k: int) -> None:
    records = [
        {"sale_id": f"S{i}", "region": REGIONS[i % len(REGIONS)], "amount": i * k,
         "updated_at": (START + timedelta(minutes=10 * k - 9)).isoformat()}
        for i in range(10)
    ]
    key = f"drops/sales/{(START + timedelta(minutes=10 * k - 5)).strftime('%Y/%m/%d/%H/%M')}/part-0.jsonl"
    open_store(settings.landing_root, settings).put(key, "\n".join(json.dumps(r) for r in records).encode())


def _three_windows_then_compare_with_a_rebuild() -> None:
    settings = Settings()
    pipeline = parse(DECLARATION, path="t.yaml").pipeline("shop")
    for k in (1, 2, 3):  # window 1 creates; 2 and 3 update every key in place (pre- and post-images)
        _land(settings, k)
        run = run_window(settings, pipeline, window_ending_at(START + timedelta(minutes=10 * k), timedelta(minutes=10)))
        assert run.refreshed and sorted(run.refreshed[0].touched) == sorted(REGIONS)
    model = pipeline.models[0]
    table = pl.from_arrow(
        __import__("deltalake").DeltaTable(settings.table_uri("gold", "by_region"), storage_options=_options(settings)).to_pyarrow_table()
    )
    assert isinstance(table, pl.DataFrame)
    assert_frame_equal(table.sort(table.columns), gold.rebuild(settings, model))
    assert table.filter(pl.col("region") == "50% off").get_column("total").to_list() == [(1 + 6) * 3]


def _options(settings: Settings) -> dict[str, str]:
    from lakehouse.storage import storage_options

    return storage_options(settings)


def test_partition_values_with_spaces_and_percent_on_a_local_path(local_warehouse: str) -> None:
    _three_windows_then_compare_with_a_rebuild()


def test_partition_values_with_spaces_and_percent_on_s3(warehouse: str) -> None:
    _three_windows_then_compare_with_a_rebuild()


@pytest.mark.parametrize("start", [0, 1, 2])
def test_the_log_reader_gives_the_feed_load_cdf_gives(tmp_path, start: int) -> None:  # type: ignore[no-untyped-def]
    """On a table load_cdf can read, lakehouse.layers.gold.cdf gives the same rows."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from lakehouse.layers.gold import cdf
    from lakehouse.storage import LocalStore

    uri = str(tmp_path / "t")
    DeltaTable.create(uri, pa.schema([("k", pa.string()), ("cat", pa.string()), ("v", pa.int64())]),
                      partition_by=["cat"], configuration={"delta.enableChangeDataFeed": "true"})
    write_deltalake(uri, pa.table({"k": ["1", "2", "3"], "cat": ["ab", "x", "y"], "v": [1, 2, 3]}), mode="append")
    DeltaTable(uri).merge(pa.table({"k": ["1", "4"], "cat": ["ab", "x"], "v": [10, 4]}), "t.k = s.k", source_alias="s",
                          target_alias="t").when_matched_update_all().when_not_matched_insert_all().execute()
    write_deltalake(uri, pa.table({"k": ["3"], "cat": ["y"], "v": [30]}), mode="overwrite", predicate="cat = 'y'")
    table = DeltaTable(uri)
    expected = pl.from_arrow(pa.table(table.load_cdf(starting_version=start, ending_version=table.version()).read_all()))
    got = cdf.changes(table, LocalStore(uri), start, table.version())
    assert isinstance(expected, pl.DataFrame)
    order = ["_commit_version", "_change_type", "k", "v"]
    expected = expected.with_columns(pl.col(pl.String).cast(pl.String)).select(got.columns).sort(order)
    assert_frame_equal(got.sort(order), expected, check_dtypes=False)
