"""The memory guard's two steps, each run in a fresh process (``python -m tests.integration.memory_probe``).

``setup WAREHOUSE ORDERS``: one simulated window through the engine, then ``ORDERS`` orders
of history (and three lines each) appended straight to silver, older than anything the
simulator makes, with gold told it has consumed them; then the next window's files land.

``window WAREHOUSE``: that next, small window through every layer; prints the peak RSS of
the process in MB (``ru_maxrss``) and what the window merged, as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


def _setup(orders: int) -> None:
    import polars as pl
    from deltalake import DeltaTable, write_deltalake

    from lakehouse.commit import app_id, commit_properties
    from lakehouse.config import Settings
    from lakehouse.dev.shop import DAILY_SALES
    from lakehouse.dev.simulator import simulate
    from lakehouse.engine import run_window
    from lakehouse.layers.silver import silver_schema
    from lakehouse.storage import open_store
    from lakehouse.window import window_ending_at
    from tests.shop_files import SHOP

    settings = Settings()
    landing = open_store(settings.landing_root, settings)
    simulate(landing, start=START, windows=1, interval=INTERVAL, seed=11, orders_per_window=40)
    run_window(settings, SHOP, window_ending_at(START + INTERVAL, INTERVAL))

    n = pl.int_range(0, orders, eager=True)
    day = (pl.lit(datetime(2025, 1, 1, tzinfo=UTC)) + pl.duration(minutes=n * (365 * 24 * 60 // orders))).alias("ordered_at")
    history = pl.DataFrame({"n": n}).with_columns(day).with_columns(
        pl.format("O-{}-{}", pl.col("ordered_at").dt.strftime("%Y%m%d%H%M"), pl.col("n").cast(pl.String).str.zfill(7)).alias("order_id"),
    )
    stamp = pl.col("ordered_at") + pl.duration(minutes=5)
    lineage = [pl.lit("history:1").alias("_batch_id"), pl.lit("history").alias("_source_position"),
               pl.col("n").alias("_line"), stamp.alias("_landed_at"), pl.lit(1, dtype=pl.Int64).alias("_bronze_version")]
    orders_frame = history.select(
        "order_id", pl.format("C-{}", pl.col("n") % 5000).alias("customer_id"), pl.lit("delivered").alias("status"),
        "ordered_at", stamp.alias("updated_at"), pl.col("ordered_at").dt.date().alias("order_date"), *lineage,
    )
    items = history.join(pl.DataFrame({"line_no": [1, 2, 3]}, schema={"line_no": pl.Int64}), how="cross").select(
        "order_id", "line_no", pl.format("P-{}", (pl.col("n") % 50).cast(pl.String).str.zfill(3)).alias("product_id"),
        pl.lit("books").alias("category"), pl.lit(2).cast(pl.Int64).alias("quantity"),
        pl.lit("9.99").cast(pl.Decimal(12, 2)).alias("unit_price"), pl.lit("0.00").cast(pl.Decimal(12, 2)).alias("discount"),
        stamp.alias("updated_at"), *lineage,
    )
    specs = {"orders": orders_frame, "order_items": items}
    consumed = {}
    for name, frame in specs.items():
        spec = SHOP.dataset(name).spec
        uri = settings.table_uri("silver", name)
        schema = silver_schema(spec)
        write_deltalake(uri, frame.select(schema.names).to_arrow().cast(schema), mode="append",
                        partition_by=[spec.partition_by] if spec.partition_by else None)
        consumed[app_id("gold/daily_sales", f"silver/{name}")] = DeltaTable(uri).version()
    for name in DAILY_SALES.inputs:  # and the first window's products
        consumed.setdefault(app_id("gold/daily_sales", f"silver/{name}"), DeltaTable(settings.table_uri("silver", name)).version())
    # gold has read the history (its figures for 2025 do not matter to memory)
    gold_uri = settings.table_uri("gold", DAILY_SALES.spec.name)
    empty = DAILY_SALES.spec.arrow_schema().empty_table()
    write_deltalake(gold_uri, empty, mode="append",
                    commit_properties=commit_properties(consumed))
    simulate(landing, start=START + INTERVAL, windows=1, interval=INTERVAL, seed=11, orders_per_window=40)


def _window() -> None:
    from lakehouse.config import Settings
    from lakehouse.engine import run_window
    from lakehouse.window import window_ending_at
    from tests.shop_files import SHOP

    run = run_window(Settings(), SHOP, window_ending_at(START + 2 * INTERVAL, INTERVAL))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "peak_mb": peak_mb,
        "merged": {r.table: r.counts.merged if r.counts else 0 for r in run.merged},
        "gold_partitions": [str(p) for g in run.refreshed for p in g.touched],
    }))


if __name__ == "__main__":
    os.environ["LAKEHOUSE_WAREHOUSE"] = sys.argv[2]
    if sys.argv[1] == "setup":
        _setup(int(sys.argv[3]))
    else:
        _window()
