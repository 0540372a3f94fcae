"""The benchmark's generators: deterministic, of the declared shape, parsed by the engine."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from bench import data
from bench.engine import pipeline
from lakehouse.storage import LocalStore


def test_windows_are_deterministic_and_independent_of_order() -> None:
    shape = data.Shape(lines=500, seed=3)
    late_first = data.window_records(data.Shape(lines=500, seed=3), 4)
    for w in range(4):
        data.window_records(shape, w)
    again = data.window_records(shape, 4)
    assert_frame_equal(late_first.orders, again.orders)
    assert_frame_equal(late_first.lines, again.lines)
    other_seed = data.window_records(data.Shape(lines=500, seed=4), 4)
    assert not other_seed.lines.equals(again.lines)


def test_window_shape() -> None:
    shape = data.Shape(lines=1_000, seed=7, duplicate_share=0.01)
    first = data.new_records(shape, 0)
    assert first.lines.height == 1_000
    # time-ordered keys, every line belongs to an order of the window, 1–7 lines each
    assert first.orders.get_column("order_id").is_sorted()
    assert first.orders.get_column("order_id").str.starts_with("O-000000-").all()
    assert first.lines.join(first.orders, on="order_id", how="anti").is_empty()
    per_order = first.lines.group_by("order_id").len().get_column("len")
    assert per_order.max() <= 7
    assert 3 <= per_order.mean() <= 5  # type: ignore[operator]

    later = data.window_records(shape, 5)
    new = later.lines.filter(pl.col("order_id").str.starts_with("O-000005-"))
    updates = later.lines.filter(~pl.col("order_id").str.starts_with("O-000005-"))
    assert new.height >= 900
    assert 50 <= updates.height <= 120  # 10 % updates (sampled keys collapse a little), 1 % duplicates
    # updates are of the previous three windows' lines, and newer than the originals
    windows = updates.get_column("order_id").str.slice(2, 6).cast(pl.Int64)
    assert windows.min() >= 2 and windows.max() <= 4  # type: ignore[operator]
    originals = pl.concat([data.new_records(shape, w).lines for w in (2, 3, 4)])
    matched = updates.unique(subset=["order_id", "line_no"]).join(originals, on=["order_id", "line_no"], suffix="_old")
    assert matched.height == updates.unique(subset=["order_id", "line_no"]).height
    assert (matched.get_column("updated_at") > matched.get_column("updated_at_old")).all()
    # an updated order keeps its ordered_at (its partition), and its status moves on
    old_orders = pl.concat([data.new_records(shape, w).orders for w in (2, 3, 4)])
    moved = later.orders.join(old_orders, on="order_id", suffix="_old")
    assert moved.height > 0
    assert (moved.get_column("ordered_at") == moved.get_column("ordered_at_old")).all()
    assert (moved.get_column("status") != "placed").all()
    assert later.lines.is_duplicated().sum() > 0


def test_landing_files_parse_cleanly_into_the_declared_specs(tmp_path) -> None:
    from lakehouse.layers.silver.transform import parse_records
    from lakehouse.sources.files import FileCursor, pending_files, read_lines

    shape = data.Shape(lines=300, seed=7, lines_per_file=100)
    store = LocalStore(tmp_path)
    written = data.land_window(shape, store, 1)
    assert 290 <= written["order_lines"] <= 310  # 10 % updates (sampled keys may coincide), duplicates
    keys = [o.key for o in store.list("order_lines/")]
    assert keys[0] == "order_lines/2026/01/01/00/15/part-0.jsonl"
    assert len(keys) == -(-written["order_lines"] // 100)  # at most 100 lines per file
    chosen = pipeline()
    for name in ("orders", "order_lines"):
        ds = chosen.dataset(name)
        files = pending_files(store, prefix=ds.prefix, before=shape.window_end(1), cursor=FileCursor(), lookback=ds.lookback).files
        lines = read_lines(store, files).with_columns(pl.lit("b").alias("_batch_id"))
        known = {"reference(order_id)": pl.Series(["x"])}  # references are not under test here
        parsed = parse_records(lines.lazy(), ds.spec, known).collect()
        reasons = parsed.get_column("_reject_reason").drop_nulls()
        assert reasons.str.starts_with("unknown order_id").all(), reasons.head(3).to_list()
        assert parsed.height == written[name]
