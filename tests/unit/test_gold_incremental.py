"""An additive gold model maintained from changes equals the model computed from scratch.

The benchmark's data (``bench/data.py``: orders whose status moves on, cancelled orders
leaving the model, later versions of order lines, duplicates) through the engine, window
after window; then a second writer's delete in silver, and an order whose date is
corrected (its result rows move to another partition). After each, gold equals
:func:`lakehouse.layers.gold.rebuild`; and the maintained model reads only the changed
orders' rows, not the day's.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from bench import data
from lakehouse.config import Settings
from lakehouse.declaration.build import parse
from lakehouse.engine import run_window
from lakehouse.errors import ConfigError
from lakehouse.layers import gold
from lakehouse.pipeline import Pipeline
from lakehouse.storage import LocalStore
from lakehouse.window import Window

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pipeline.yaml"
INCREMENTAL = "        incremental: {by: order_id, count: lines}\n"


def declared(*, incremental: bool) -> Pipeline:
    text = BENCH.read_text()
    assert INCREMENTAL in text  # the benchmark declares its model incremental
    return parse(text if incremental else text.replace(INCREMENTAL, "")).pipeline("bench")


def current(settings: Settings) -> pl.DataFrame:
    frame = pl.read_delta(settings.table_uri("gold", "daily_revenue"))
    return frame.select(sorted(frame.columns)).sort(["order_date", "status"])


def rebuilt(settings: Settings, pipeline: Pipeline) -> pl.DataFrame:
    frame = gold.rebuild(settings, pipeline.models[0])
    return frame.select(sorted(frame.columns)).sort(["order_date", "status"])


def test_the_bench_model_is_additive_when_declared_so() -> None:
    model = declared(incremental=True).models[0]
    assert model.additive is not None
    assert (model.additive.by, model.additive.count) == ("order_id", "lines")
    assert model.additive.measures == ("orders", "lines", "quantity", "revenue")
    assert declared(incremental=False).models[0].additive is None


def test_an_incremental_model_equals_a_rebuild_after_every_window(tmp_path) -> None:
    settings = Settings(warehouse=str(tmp_path / "wh"), landing=str(tmp_path / "landing"))
    store = LocalStore(tmp_path / "landing")
    pipeline = declared(incremental=True)
    shape = data.Shape(lines=300, lines_per_file=150, customers=50, parts=40)
    for w in range(4):
        data.land_window(shape, store, w)
        run = run_window(settings, pipeline, Window(shape.window_start(w), shape.window_end(w)))
        assert run.refreshed and run.refreshed[0].rows > 0
        assert_frame_equal(current(settings), rebuilt(settings, pipeline))
    statuses = set(current(settings).get_column("status"))
    assert "cancelled" not in statuses and len(statuses) >= 3  # orders moved between groups, and out of the model

    # a second writer deletes an order's lines in silver: gold loses exactly what they contributed
    lines = DeltaTable(settings.table_uri("silver", "order_lines"))
    victim = pl.read_delta(settings.table_uri("silver", "order_lines")).get_column("order_id").sort()[0]
    lines.delete(f"order_id = '{victim}'")
    # and an order's date is corrected, so its result rows move to another day's partition
    orders = pl.read_delta(settings.table_uri("silver", "orders"))
    moved = orders.filter(pl.col("status") != "cancelled").sort("order_id").row(3, named=True)
    late = shape.window_end(4)
    record = {
        "order_id": moved["order_id"], "customer_id": moved["customer_id"], "status": moved["status"],
        "total_price": float(moved["total_price"]), "priority": moved["priority"],
        "ordered_at": "2025-12-30T10:00:00Z", "updated_at": late.isoformat().replace("+00:00", "Z"),
    }
    store.put(f"orders/{shape.window_start(4):%Y/%m/%d/%H/%M}/part-9.jsonl", (json.dumps(record) + "\n").encode())
    run_window(settings, pipeline, Window(shape.window_start(4), shape.window_end(4)))
    after = current(settings)
    assert_frame_equal(after, rebuilt(settings, pipeline))
    assert "2025-12-30" in {str(d) for d in after.get_column("order_date")}


def test_an_incremental_batch_reads_the_changed_orders_not_the_day(tmp_path) -> None:
    settings = Settings(warehouse=str(tmp_path / "wh"), landing=str(tmp_path / "landing"))
    store = LocalStore(tmp_path / "landing")
    shape = data.Shape(lines=200, lines_per_file=200, customers=50, parts=40)
    pipeline = declared(incremental=True)
    sizes = []
    for w in range(6):
        data.land_window(shape, store, w)
        run_window(settings, pipeline, Window(shape.window_start(w), shape.window_end(w)))
        sizes.append(pl.read_delta(settings.table_uri("silver", "order_lines")).height)
    # every window is one day's: a recomputation reads the whole day (all of silver here),
    # the maintained model the window's new and updated orders' lines
    from lakehouse import duck
    from lakehouse.layers.gold import incremental
    from lakehouse.layers.gold.models import DeltaSnapshot

    table = DeltaTable(settings.table_uri("silver", "order_lines"))
    snap = DeltaSnapshot(table.table_uri, table.version(), tuple(pipeline.dataset("order_lines").spec.column_names))
    last = pl.DataFrame({"order_id": data.window_records(shape, 5).lines.get_column("order_id").unique()})
    con = duck.connect(settings)
    try:
        read = incremental._of_entities(con, {"order_lines": snap}, "order_id", last)["order_lines"]  # pyright: ignore[reportPrivateUsage]
    finally:
        con.close()
    assert sizes[-1] > 3 * read.num_rows  # the day holds 6 windows; one window's orders are a fraction of it
    assert set(read.column("order_id").to_pylist()) <= set(last.get_column("order_id"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("incremental: {by: order_id, count: lines}", None),
        ("incremental: {by: part_id, count: lines}", "'part_id' must be a column of every input; silver.orders has none"),
        ("incremental: {by: order_id, count: status}", "'status' is not a result column outside the key"),
    ],
)
def test_an_incremental_declaration_is_checked_against_the_model(change: str, message: str | None) -> None:
    text = BENCH.read_text().replace(INCREMENTAL, f"        {change}\n")
    if message is None:
        assert parse(text).pipeline("bench").models[0].additive is not None
        return
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_a_non_additive_result_column_is_refused() -> None:
    text = BENCH.read_text().replace("CAST(count(*) AS BIGINT)                                     AS lines,",
                        "CAST(count(*) AS BIGINT) AS lines, max(l.part_id) AS top_part,")
    with pytest.raises(ConfigError, match="must be BIGINT or DECIMAL; top_part is string"):
        parse(text)


def test_sums_that_cannot_be_reached_fail_the_batch_instead_of_writing_them() -> None:
    import pyarrow as pa

    from lakehouse.layers.gold.incremental import NotAdditive, _apply  # pyright: ignore[reportPrivateUsage]

    model = declared(incremental=True).models[0]
    schema = pa.schema([("order_date", pa.date32()), ("status", pa.string()), ("orders", pa.int64()),
                        ("lines", pa.int64()), ("quantity", pa.int64()), ("revenue", pa.decimal128(18, 2))])

    def rows(*values: tuple[int, int, int, str]) -> pa.Table:
        from datetime import date
        from decimal import Decimal

        return pa.Table.from_pylist(
            [{"order_date": date(2026, 1, 1), "status": "paid", "orders": o, "lines": n, "quantity": q, "revenue": Decimal(r)}
             for o, n, q, r in values], schema=schema)

    kept = _apply(model, rows((2, 5, 9, "10.00")), rows((1, 1, 1, "1.00")), rows((1, 2, 3, "4.00")))
    (row,) = kept.to_pylist()  # 2 orders, 5 lines; one order's 2 lines replaced by 1
    assert (row["orders"], row["lines"], row["quantity"], str(row["revenue"])) == (2, 4, 7, "7.00")
    gone = _apply(model, rows((1, 2, 3, "4.00")), rows(), rows((1, 2, 3, "4.00")))
    assert gone.num_rows == 0  # its last lines left: the row is removed, not kept with zeros
    with pytest.raises(NotAdditive, match="declared incremental .* do not add up for 1 result rows"):
        _apply(model, rows((1, 1, 1, "1.00")), rows(), rows((1, 2, 3, "4.00")))  # a count below 0
