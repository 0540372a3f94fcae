"""Gold sales equal an independent DuckDB query over the simulator's raw landing records, to the cent.

The in-order warehouse (4 windows with every fault of :mod:`lakehouse.dev.simulator`: later
versions and an out-of-order one, exact duplicates, a file delivered twice, malformed lines,
rows that break checks, corrected order dates, late lines, ties, a product sold before its
catalogue entry, a late product change), then one quarantine replay. The query below reads
the landing files' JSON lines directly (nothing of bronze, silver or the engine's SQL) and
applies the shop's rules as a shop manager states them: the latest valid version of each
order and line (by ``updated_at``, then the later landing), cancelled orders out, lines of an
unknown product out, revenue net of discounts, each line in the category of the product's
latest record at its order's time (else its own).

A late product change then lands on its own: only the days with a sale after it are
recomputed, and gold equals a recomputation from every silver row.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from bench.soak import landing_lines
from lakehouse.config import Settings
from lakehouse.dev.shop import shop_files
from lakehouse.layers.gold.models import run_model
from lakehouse.storage import open_store
from tests.integration.conftest import InOrder, Replayed
from tests.integration.helpers import read, run

pytestmark = pytest.mark.usefixtures("prefect_api")

STATUSES = "('placed', 'paid', 'shipped', 'delivered', 'cancelled')"
RAW = f"""
WITH o AS (
  SELECT file, line,
         json_extract_string(text, '$.order_id') AS order_id,
         json_extract_string(text, '$.customer_id') AS customer_id,
         json_extract_string(text, '$.status') AS status,
         CAST(json_extract_string(text, '$.ordered_at') AS TIMESTAMPTZ) AS ordered_at,
         CAST(json_extract_string(text, '$.updated_at') AS TIMESTAMPTZ) AS updated_at
  FROM orders_lines WHERE json_valid(text)),
orders AS (
  SELECT * FROM o WHERE order_id IS NOT NULL AND updated_at IS NOT NULL AND status IN {STATUSES}
  QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC, file DESC, line DESC) = 1),
i AS (
  SELECT file, line,
         json_extract_string(text, '$.order_id') AS order_id,
         CAST(json_extract_string(text, '$.line_no') AS BIGINT) AS line_no,
         json_extract_string(text, '$.product_id') AS product_id,
         json_extract_string(text, '$.category') AS category,
         CAST(json_extract_string(text, '$.quantity') AS BIGINT) AS quantity,
         CAST(json_extract_string(text, '$.unit_price') AS DECIMAL(12,2)) AS unit_price,
         CAST(json_extract_string(text, '$.discount') AS DECIMAL(12,2)) AS discount,
         CAST(json_extract_string(text, '$.updated_at') AS TIMESTAMPTZ) AS updated_at
  FROM item_lines WHERE json_valid(text)),
items AS (
  SELECT * FROM i
  WHERE order_id IS NOT NULL AND line_no IS NOT NULL AND updated_at IS NOT NULL AND product_id IS NOT NULL
    AND quantity BETWEEN 1 AND 1000 AND unit_price BETWEEN 0 AND 100000 AND coalesce(discount, 0) BETWEEN 0 AND 100000
    AND product_id IN (SELECT json_extract_string(text, '$.product_id') FROM product_lines WHERE json_valid(text))
  QUALIFY row_number() OVER (PARTITION BY order_id, line_no ORDER BY updated_at DESC, file DESC, line DESC) = 1),
products AS (
  SELECT json_extract_string(text, '$.product_id') AS product_id,
         json_extract_string(text, '$.category') AS category,
         CAST(json_extract_string(text, '$.updated_at') AS TIMESTAMPTZ) AS updated_at, file, line
  FROM product_lines WHERE json_valid(text)),
sold AS (
  SELECT CAST(timezone('UTC', orders.ordered_at) AS DATE) AS order_date, orders.order_id, orders.customer_id,
         orders.ordered_at, items.product_id, items.category AS own, items.quantity,
         items.quantity * items.unit_price AS gross, coalesce(items.discount, 0) AS discount
  FROM items JOIN orders USING (order_id) WHERE orders.status <> 'cancelled'),
placed AS (  -- the product's latest record at the order's time
  SELECT sold.*, coalesce((SELECT p.category FROM products p WHERE p.product_id = sold.product_id
                                AND p.updated_at <= sold.ordered_at
                           ORDER BY p.updated_at DESC, p.file DESC, p.line DESC LIMIT 1), own) AS category
  FROM sold)
SELECT order_date, product_id, category,
       CAST(sum(quantity) AS BIGINT) AS quantity,
       CAST(sum(gross) AS DECIMAL(18,2)) AS gross_revenue,
       CAST(sum(discount) AS DECIMAL(18,2)) AS discount,
       CAST(sum(gross - discount) AS DECIMAL(18,2)) AS revenue,
       CAST(count(DISTINCT order_id) AS BIGINT) AS orders,
       CAST(count(DISTINCT customer_id) AS BIGINT) AS customers,
       CAST(sum(gross - discount) / count(DISTINCT order_id) AS DECIMAL(18,2)) AS avg_order_value
FROM placed GROUP BY ALL
"""


def _raw_sales(settings: Settings) -> pl.DataFrame:
    store = open_store(settings.landing_root, settings)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, prefix in (("orders_lines", "orders"), ("item_lines", "order_items"), ("product_lines", "products")):
            con.register(name, landing_lines(store, prefix).to_arrow())
        return con.execute(RAW).pl()
    finally:
        con.close()


KEY = ["order_date", "product_id", "category"]
MEASURES = ["quantity", "gross_revenue", "discount", "revenue", "orders", "customers", "avg_order_value"]


def test_daily_sales_equal_a_query_over_the_raw_landing_records_to_the_cent(
    in_order: InOrder, replayed: Replayed, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_order.use(4, monkeypatch)  # its landing: the 4 windows' files as the simulator wrote them
    expected = _raw_sales(Settings()).sort(KEY)
    gold = replayed.tables["gold.daily_sales"]
    actual = gold.select([*KEY, *MEASURES]).sort(KEY)
    assert expected.height > 50 and expected.get_column("revenue").sum() > 0
    per_day = {d: (a, e) for d, a, e in (
        (d, actual.filter(pl.col("order_date") == d)["revenue"].sum(), expected.filter(pl.col("order_date") == d)["revenue"].sum())
        for d in expected.get_column("order_date").unique().to_list())}
    assert all(a == e for a, e in per_day.values()), per_day  # daily revenue to the cent, first
    assert_frame_equal(actual, expected.cast(dict(actual.schema)))  # type: ignore[arg-type]
    # the late product change (fault 11) and the discounts shaped the figures checked
    assert gold.get_column("discount").sum() > 0
    moved = gold.group_by("order_date", "product_id").agg(pl.col("category").n_unique()).filter(pl.col("category") > 1)
    assert moved.height > 0, "no product was recategorised during a day"


def test_a_late_product_change_recomputes_only_the_days_sold_after_it(in_order: InOrder, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order.clone(4, monkeypatch, landed=4)
    before = read("gold", "daily_sales")
    days = sorted(before.get_column("order_date").unique().to_list())
    assert days == [date(2025, 12, 31), date(2026, 1, 1)]  # fault 7 moved some orders one day back
    both = before.group_by("product_id").agg(pl.col("order_date").n_unique()).filter(pl.col("order_date") == 2)
    product = sorted(both.get_column("product_id").to_list())[0]  # sold on both days
    at = datetime(2026, 1, 1, tzinfo=UTC)  # the change is dated at the second day's start
    settings = Settings()
    record = {"product_id": product, "name": f"Clearance {product}", "category": "clearance",
              "unit_price": "1.00", "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    open_store(settings.landing_root, settings).put("products/2026/01/01/01/02/part-0.jsonl", (json.dumps(record) + "\n").encode())

    state = run(5)  # 01:00–01:15: the products file alone
    assert state.is_completed(), state.message
    gold = {g.table: g for g in state.result().gold}
    assert gold["gold.daily_sales"].partitions == ["2026-01-01"]  # not 2025-12-31, where it sold before the change
    after = read("gold", "daily_sales")
    assert after.filter((pl.col("product_id") == product) & (pl.col("category") == "clearance")).height == 1
    assert_frame_equal(after.filter(pl.col("order_date") == date(2025, 12, 31)),
                       before.filter(pl.col("order_date") == date(2025, 12, 31)))
    model = next(m for m in shop_files().models if m.spec.name == "daily_sales")
    silver = {n: read("silver", n).to_arrow() for n in model.inputs}
    recomputed = pl.from_arrow(run_model(model.sql, silver))
    assert isinstance(recomputed, pl.DataFrame)
    assert_frame_equal(after.sort(model.spec.keys), recomputed.select(after.columns).cast(dict(after.schema)).sort(model.spec.keys))  # type: ignore[arg-type]
