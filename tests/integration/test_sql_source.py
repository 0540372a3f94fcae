"""The SQL source end to end, declared only in YAML: the shop's database (lakehouse/dev/shop_db.py)
changing over several windows, a deleted order line leaving a gold total, and a SIGKILL
between two bronze batches.

The database is a real SQLite file and the warehouse a local folder (the storage layer is the
same for every kind of source and is tested on moto elsewhere); windows run through the engine (``run_window``), as the flow
runs them, without Prefect.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.dev import shop_db
from lakehouse.engine import run_window
from lakehouse.layers import bronze
from lakehouse.pipeline import Pipeline
from lakehouse.storage import open_store, storage_options
from lakehouse.window import Window, window_ending_at

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)

SHOP = """
pipelines:
  shop_db:
    sources:
      db:
        kind: sql
        url: {url}
        max_batch_records: 4
        deletes:
          customers: {{column: is_deleted}}
          products: {{tombstones: {{table: products_deleted, watermark: deleted_at}}}}
    datasets:
      customers:
        source: db
        columns:
          customer_id: {{type: string, nullable: false}}
          name: {{type: string, nullable: false}}
          email: string
          segment: string
          updated_at: {{type: timestamp, nullable: false}}
        key: customer_id
        order_by: updated_at
        checks:
          - valid_values: segment
            values: [new, regular, vip]
          - row_count: 1
      products:
        source: db
        columns:
          product_id: {{type: string, nullable: false}}
          name: string
          category: string
          unit_price: decimal(12,2)
          updated_at: {{type: timestamp, nullable: false}}
        key: product_id
        order_by: updated_at
    gold:
      catalogue:
        partition_by: category
        key: category
        sql: |
          SELECT category, CAST(count(*) AS BIGINT) AS products, CAST(sum(unit_price) AS DECIMAL(18,2)) AS value
          FROM silver.products GROUP BY category
"""


def window(k: int) -> Window:
    return window_ending_at(START + k * QUARTER, QUARTER)


def read(settings: Settings, layer: str, name: str) -> pl.DataFrame:
    return pl.read_delta(settings.table_uri(layer, name), storage_options=storage_options(settings))


def test_windows_of_updates_touches_and_deletes_leave_silver_and_gold_equal_to_the_database(
    local_warehouse: str, tmp_path: Path
) -> None:
    settings = Settings()
    engine = shop_db.create(tmp_path / "shop.db")
    pipeline = parse(SHOP.format(url=shop_db.url(tmp_path / "shop.db"))).pipeline("shop_db")
    landing = open_store(settings.landing_root, settings)
    runs, steps = [], {}
    for k in (1, 2, 3, 4):
        steps[k] = shop_db.step(engine, window(k).start, window(k).end)
        if k == 2:  # bronze only: window 3's silver batch holds two windows' versions of some keys
            for ds in pipeline.datasets:
                bronze.ingest(settings, ds, window(k), landing=landing)
            continue
        runs.append(run_window(settings, pipeline, window(k)))

    customers = read(settings, "silver", "customers").sort("customer_id")
    expected = pl.DataFrame(shop_db.live_customers(engine)).drop("is_deleted")
    assert customers.select(expected.columns).with_columns(pl.col("updated_at").dt.replace_time_zone(None)).equals(expected)
    products = read(settings, "silver", "products").sort("product_id")
    want = shop_db.live_products(engine)
    assert products.select("product_id", "unit_price").rows() == [(p["product_id"], p["unit_price"]) for p in want]
    deleted = {t: {key for s in steps.values() for key in s[t].deleted} for t in ("customers", "products")}
    assert deleted["customers"] and deleted["products"]
    assert not deleted["customers"] & set(customers.get_column("customer_id"))
    assert not deleted["products"] & set(products.get_column("product_id"))

    merged = [m for r in runs for m in r.merged if m.counts is not None]
    assert sum(m.counts.deleted for m in merged if m.counts) == len(deleted["customers"]) + len(deleted["products"])
    # a key deleted in window 1 (silver's first batch), or created in window 2 and deleted in window 3,
    # reaches silver first as a delete of a key it never held: that inserts nothing; every other delete
    # removed a row
    never = {k for t in ("customers", "products")
             for k in {*steps[1][t].deleted, *set(steps[2][t].inserted) & set(steps[3][t].deleted)}}
    assert len(never) == 2
    assert sum(m.removed for m in merged) == sum(m.counts.deleted for m in merged if m.counts) - len(never)
    w2, w3 = steps[2]["customers"], steps[3]["customers"]
    twice = set(w2.updated + w2.touched + w2.deleted + w2.inserted) & set(w3.updated + w3.touched + w3.deleted)
    window_3 = next(m for m in runs[1].merged if m.table == "silver.customers")
    assert window_3.counts is not None and window_3.counts.duplicates == len(twice) > 0  # older versions collapsed

    positions = read(settings, "bronze", "customers_raw").get_column("_source_position")
    assert positions.n_unique() == positions.len()  # no row read twice
    gold = read(settings, "gold", "catalogue").sort("category")
    by_category: dict[str, tuple[int, Decimal]] = {}
    for p in want:
        n, value = by_category.get(str(p["category"]), (0, Decimal(0)))
        by_category[str(p["category"])] = (n + 1, value + Decimal(str(p["unit_price"])))
    assert gold.rows() == sorted((c, n, v) for c, (n, v) in by_category.items())


LINES = """
pipelines:
  sales:
    sources:
      db:
        kind: sql
        url: {url}
        deletes:
          order_lines: {{column: deleted_at, tombstones: {{table: order_lines_gone, watermark: gone_at}}}}
    datasets:
      order_lines:
        source: db
        columns:
          order_id: string
          line_no: int64
          order_date: date
          amount: decimal(12,2)
          updated_at: timestamp
        key: [order_id, line_no]
        order_by: updated_at
        partition_by: order_date
    gold:
      daily_totals:
        partition_by: order_date
        key: order_date
        sql: |
          SELECT order_date, CAST(sum(amount) AS DECIMAL(18,2)) AS total, CAST(count(*) AS BIGINT) AS lines
          FROM silver.order_lines GROUP BY order_date
      order_totals:                    # maintained from the change (additive), not recomputed
        partition_by: order_date
        key: [order_date, order_id]
        incremental: {{by: order_id, count: lines}}
        sql: |
          SELECT order_date, order_id, sum(CAST(amount AS DECIMAL(18,2))) AS total, CAST(count(*) AS BIGINT) AS lines
          FROM silver.order_lines GROUP BY ALL
"""

meta = sa.MetaData()
ORDER_LINES = sa.Table(
    "order_lines", meta,
    sa.Column("order_id", sa.String, primary_key=True), sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("order_date", sa.Date), sa.Column("amount", sa.Numeric(12, 2)),
    sa.Column("updated_at", sa.DateTime), sa.Column("deleted_at", sa.DateTime),
)
GONE = sa.Table("order_lines_gone", meta, sa.Column("order_id", sa.String), sa.Column("line_no", sa.Integer),
                sa.Column("gone_at", sa.DateTime))


def test_a_deleted_order_line_disappears_from_silver_and_from_the_gold_total(local_warehouse: str, tmp_path: Path) -> None:
    settings = Settings()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sales.db'}")
    meta.create_all(engine)
    pipeline = parse(LINES.format(url=engine.url)).pipeline("sales")
    day_1, day_2 = date(2026, 1, 1), date(2026, 1, 2)
    at = window(1).start.replace(tzinfo=None) + timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(sa.insert(ORDER_LINES), [
            {"order_id": "O1", "line_no": 1, "order_date": day_1, "amount": Decimal("10.00"), "updated_at": at},
            {"order_id": "O1", "line_no": 2, "order_date": day_1, "amount": Decimal("2.50"), "updated_at": at},
            {"order_id": "O2", "line_no": 1, "order_date": day_2, "amount": Decimal("7.25"), "updated_at": at},
            {"order_id": "O2", "line_no": 2, "order_date": day_2, "amount": Decimal("1.00"), "updated_at": at},
        ])

    def totals() -> list[tuple[object, ...]]:
        return read(settings, "gold", "daily_totals").sort("order_date").rows()

    def per_order() -> list[tuple[object, ...]]:
        return read(settings, "gold", "order_totals").select("order_id", "total", "lines").sort("order_id").rows()

    run_window(settings, pipeline, window(1))
    assert totals() == [(day_1, Decimal("12.50"), 2), (day_2, Decimal("8.25"), 2)]
    assert per_order() == [("O1", Decimal("12.50"), 2), ("O2", Decimal("8.25"), 2)]

    later = window(2).start.replace(tzinfo=None) + timedelta(minutes=1)
    with engine.begin() as conn:  # a soft delete of O1/2, a hard delete of O2/1 with its tombstone
        conn.execute(sa.update(ORDER_LINES).where(ORDER_LINES.c.order_id == "O1", ORDER_LINES.c.line_no == 2)
                     .values(deleted_at=later, updated_at=later))
        conn.execute(sa.delete(ORDER_LINES).where(ORDER_LINES.c.order_id == "O2", ORDER_LINES.c.line_no == 1))
        conn.execute(sa.insert(GONE).values(order_id="O2", line_no=1, gone_at=later))
    run = run_window(settings, pipeline, window(2))
    (merged,) = run.merged
    assert merged.counts is not None and (merged.counts.deleted, merged.removed) == (2, 2)
    lines = read(settings, "silver", "order_lines").sort("order_id", "line_no")
    assert lines.select("order_id", "line_no").rows() == [("O1", 1), ("O2", 2)]
    assert totals() == [(day_1, Decimal("10.00"), 1), (day_2, Decimal("1.00"), 1)]
    assert per_order() == [("O1", Decimal("10.00"), 1), ("O2", Decimal("1.00"), 1)]  # new - old: the deleted lines left
    refreshed = next(r for r in run.refreshed if r.table == "gold.daily_totals")
    assert sorted(refreshed.touched) == [day_1, day_2]  # the partitions the deletes left were recomputed

    with engine.begin() as conn:  # the last line of O2 goes too: its incremental row's count falls to 0
        conn.execute(sa.delete(ORDER_LINES).where(ORDER_LINES.c.order_id == "O2"))
        conn.execute(sa.insert(GONE).values(order_id="O2", line_no=2, gone_at=later + QUARTER))
    run_window(settings, pipeline, window(3))
    assert totals() == [(day_1, Decimal("10.00"), 1)] and per_order() == [("O1", Decimal("10.00"), 1)]


WRITER = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime, timedelta
    from lakehouse.config import Settings
    from lakehouse.declaration import parse
    from lakehouse.engine import run_window
    from lakehouse.layers import bronze
    from lakehouse.window import window_ending_at

    original, appended = bronze.append, []

    def append(*args, **kwargs):
        landed = original(*args, **kwargs)
        appended.append(landed)
        if len(appended) == 2:  # the second batch's commit landed; the third is not read yet
            os.kill(os.getpid(), signal.SIGKILL)
        return landed

    bronze.append = append
    pipeline = parse(open(sys.argv[1]).read()).pipeline("shop_db")
    run_window(Settings(), pipeline, window_ending_at(datetime.fromisoformat(sys.argv[2]), timedelta(minutes=15)))
""")


def _without_ingest_time(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {n: f.drop("_ingested_at", strict=False).sort(f.columns[0], "_source_position") for n, f in frames.items()}


def _tables(settings: Settings, pipeline: Pipeline) -> dict[str, pl.DataFrame]:
    out = {}
    for ds in pipeline.datasets:
        out[f"bronze.{ds.spec.name}"] = read(settings, "bronze", f"{ds.spec.name}_raw")
        out[f"silver.{ds.spec.name}"] = read(settings, "silver", ds.spec.name)
    return _without_ingest_time(out)


def test_a_sigkill_between_two_bronze_batches_then_a_rerun_equals_a_clean_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shop.db"
    engine = shop_db.create(path)
    shop_db.step(engine, window(1).start, window(1).end)
    declaration = tmp_path / "shop_db.yaml"
    declaration.write_text(SHOP.format(url=shop_db.url(path)))
    pipeline = parse(declaration.read_text()).pipeline("shop_db")

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "LAKEHOUSE_WAREHOUSE": str(killed)}
    env.pop("LAKEHOUSE_LANDING", None)
    proc = subprocess.run([sys.executable, "-c", WRITER, str(declaration), window(1).end.isoformat()],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(killed))
    settings = Settings()
    assert read(settings, "bronze", "customers_raw").height == 8  # two batches of 4 landed, nothing after
    run_window(settings, pipeline, window(1))  # the same window again: it resumes from the second batch's cursor
    after_kill = _tables(settings, pipeline)

    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(clean))
    run_window(Settings(), pipeline, window(1))
    uninterrupted = _tables(Settings(), pipeline)
    assert after_kill.keys() == uninterrupted.keys()
    for name, frame in uninterrupted.items():
        assert_frame_equal(after_kill[name], frame, check_row_order=True)
    assert after_kill["silver.customers"].height == len(shop_db.live_customers(engine))
