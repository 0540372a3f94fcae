"""Nothing outside the landing root is ingested, and gold SQL reads silver and nothing else.

A real local landing area with a symbolic link to /etc/passwd, a real moto bucket with a
key holding ``..``, and DuckDB connections of the engine against local and S3 warehouses.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse import duck
from lakehouse.config import Settings
from lakehouse.layers import bronze, silver
from lakehouse.storage import UnsafeKey, open_store, storage_options
from lakehouse.window import window_ending_at
from tests.shop_files import SHOP

WINDOW = window_ending_at(datetime(2026, 1, 1, 0, 15, tzinfo=UTC), timedelta(minutes=15))
ORDER = b'{"order_id": "O1", "customer_id": "C1", "status": "paid", "ordered_at": "2026-01-01T00:01:00Z", "updated_at": "2026-01-01T00:02:00Z"}\n'


def _ingest_and_promote(settings: Settings) -> pl.DataFrame:
    """Bronze then silver for orders; the quarantined rows."""
    orders = SHOP.dataset("orders")
    landed = bronze.ingest(settings, orders, WINDOW, landing=open_store(settings.landing_root, settings))
    assert not landed.skipped
    assert bronze.ingest(settings, orders, WINDOW, landing=open_store(settings.landing_root, settings)).skipped  # recorded once
    batch = silver.prepare(settings, orders, now=WINDOW.end)
    assert batch is not None and batch.gate.passed, batch.gate.summary() if batch else None
    assert batch.counts.read == batch.counts.merged + batch.counts.rejected + batch.counts.duplicates + batch.counts.conflicts
    silver.commit(settings, batch)
    return pl.read_delta(settings.table_uri("quarantine", "orders"), storage_options=storage_options(settings))


def test_a_symlink_out_of_a_local_landing_area_is_refused_not_read(local_warehouse: str) -> None:
    settings = Settings()
    landing = Path(settings.landing_root) / "orders/2026/01/01/00/01"
    landing.mkdir(parents=True)
    (landing / "part-0.jsonl").write_bytes(ORDER)
    os.symlink("/etc/passwd", landing / "part-1.jsonl")
    with pytest.raises(UnsafeKey, match="outside the landing root"):
        open_store(settings.landing_root, settings).get("orders/2026/01/01/00/01/part-1.jsonl")

    quarantined = _ingest_and_promote(settings)
    raw = pl.read_delta(settings.table_uri("bronze", "orders_raw")).get_column("_raw").to_list()
    assert not any("root:" in r for r in raw)  # not one byte of /etc/passwd
    row = quarantined.filter(pl.col("_source_position").str.ends_with("part-1.jsonl"))
    assert row.height == 1
    assert row.get_column("_reject_reason").to_list()[0].startswith("unreadable: refused: "), row.to_dicts()
    assert "symbolic link to /etc/passwd" in row.get_column("_reject_reason").to_list()[0]
    assert pl.read_delta(settings.table_uri("silver", "orders")).height == 1


def test_a_landed_key_with_dot_dot_is_refused(warehouse: str) -> None:
    settings = Settings()
    store = open_store(settings.landing_root, settings)
    store.put("orders/2026/01/01/00/01/part-0.jsonl", ORDER)
    bucket, _, root = settings.landing_root.removeprefix("s3://").partition("/")
    sneaky = f"{root}/orders/2026/01/01/00/01/../../../../../../outside.jsonl"
    store._client.put_object(Bucket=bucket, Key=sneaky, Body=ORDER)  # type: ignore[attr-defined]
    with pytest.raises(UnsafeKey, match="'..' is not allowed"):
        store.get("orders/../outside.jsonl")

    quarantined = _ingest_and_promote(settings)
    row = quarantined.filter(pl.col("_source_position").str.contains("..", literal=True))
    assert row.height == 1 and "'..' is not allowed" in row.get_column("_reject_reason").to_list()[0]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_gold_sql_reads_silver_and_no_other_file(where: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("local_warehouse" if where == "local" else "warehouse")
    settings = Settings()
    options = storage_options(settings)
    write_deltalake(settings.table_uri("silver", "t"), pa.table({"a": [1, 2]}), storage_options=options)
    write_deltalake(settings.table_uri("bronze", "t"), pa.table({"a": [1, 2]}), storage_options=options)
    con = duck.connect(settings)
    try:
        assert con.execute(f"SELECT sum(a) FROM delta_scan('{settings.table_uri('silver', 't')}')").fetchall() == [(3,)]
        for sql in ("SELECT * FROM read_text('/etc/hostname')", "SELECT * FROM read_csv('/etc/passwd')",
                    f"SELECT * FROM delta_scan('{settings.table_uri('bronze', 't')}')",
                    "COPY (SELECT 1) TO '/tmp/lakehouse-escape.csv'"):
            with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
                con.execute(sql).fetchall()
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET enable_external_access = true")
    finally:
        con.close()
