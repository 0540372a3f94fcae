"""A restore commit in gold's input feed: row-exact (lakehouse.layers.gold.restore), so that an
additive gold model, which subtracts what a change's pre-images contributed, stays right
after ``lakehouse rollback`` of its input (local Delta tables, the engine without Prefect)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from polars.testing import assert_frame_equal

from bench import data
from lakehouse import rollback
from lakehouse.config import Settings
from lakehouse.engine import run_window
from lakehouse.layers.gold.incremental import first_images
from lakehouse.layers.gold.restore import net, restores
from lakehouse.pipeline import Declaration
from lakehouse.storage import LocalStore
from lakehouse.window import Window
from tests.unit.test_gold_incremental import current, declared, rebuilt

SCHEMA = pa.schema([("k", pa.string()), ("v", pa.int64()), ("day", pa.string())])


def _feed(table: DeltaTable, version: int) -> pl.DataFrame:
    frame = pl.from_arrow(pa.table(table.load_cdf(starting_version=version, ending_version=version).read_all()))
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_a_restore_feed_is_the_undone_merge_reversed_row_by_row(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    DeltaTable.create(uri, SCHEMA, partition_by=["day"], configuration={"delta.enableChangeDataFeed": "true"})
    rows = {"k": ["a", "b", "c", "d"], "v": [1, 2, 3, 4], "day": ["1", "1", "1", "2"]}
    write_deltalake(uri, pa.table(rows, schema=SCHEMA), mode="append")
    source = pa.table({"k": ["a", "c", "e"], "v": [10, None, 5], "day": ["1", "1", "2"]}, schema=SCHEMA)
    table = DeltaTable(uri)
    (table.merge(source, "t.k = s.k", source_alias="s", target_alias="t")
     .when_matched_update_all(predicate="s.v IS NOT NULL").when_matched_delete(predicate="s.v IS NULL")
     .when_not_matched_insert_all().execute())
    merged = DeltaTable(uri).version()
    DeltaTable(uri).restore(merged - 1)
    table = DeltaTable(uri)
    raw = _feed(table, table.version())
    # the file-level feed: b, untouched by the merge, is deleted and inserted again; a is a delete and an insert
    assert set(raw.filter(pl.col("k") == "b").get_column("_change_type")) == {"delete", "insert"}

    assert restores(table, 0, table.version()) == {table.version()}
    netted = net(raw, {table.version()}, ["k"]).select("k", "v", "_change_type").sort("k", "_change_type")
    expected = pl.DataFrame(
        {"k": ["a", "a", "c", "e"], "v": [10, 1, 3, 5],
         "_change_type": ["update_preimage", "update_postimage", "insert", "delete"]},
    ).sort("k", "_change_type")
    # the reverse of the merge's own feed: a back from 10 to 1, c (deleted) back, e (inserted) gone
    assert_frame_equal(netted.sort("k", "_change_type"), expected.select(netted.columns), check_dtypes=False)
    # what gold's additive path takes as the rows before the change: the merged state
    before = first_images(net(raw, {table.version()}, ["k"]), ["k"]).select("k", "v").sort("k")
    assert before.to_dicts() == [{"k": "a", "v": 10}, {"k": "e", "v": 5}]
    # the raw feed is right only while delta-rs happens to list the deletes first: in another order
    # a key's first image is the insert, and an additive model would count it twice
    shuffled = raw.reverse()
    assert first_images(shuffled, ["k"]).select("k", "v").sort("k").to_dicts() != before.to_dicts()
    assert first_images(net(shuffled, {table.version()}, ["k"]), ["k"]).select("k", "v").sort("k").to_dicts() == before.to_dicts()
    assert_frame_equal(net(raw, set(), ["k"]), raw)  # no restore in the range: the feed as it is


@pytest.mark.slow
def test_rolling_back_the_input_of_an_additive_model_gives_the_gold_of_a_run_without_it(tmp_path: Path) -> None:
    shape = data.Shape(lines=300, lines_per_file=150, customers=50, parts=40)
    pipeline = declared(incremental=True)

    def warehouse(name: str) -> tuple[Settings, LocalStore]:
        root = tmp_path / name
        return Settings(warehouse=str(root / "wh"), landing=str(root / "landing")), LocalStore(root / "landing")

    def window(settings: Settings, store: LocalStore, w: int) -> None:
        data.land_window(shape, store, w)
        run_window(settings, pipeline, Window(shape.window_start(w), shape.window_end(w)))

    reference, ref_store = warehouse("reference")
    for w in range(4):
        window(reference, ref_store, w)

    settings, store = warehouse("rolled")
    for w in range(3):
        window(settings, store, w)
    lines = DeltaTable(settings.table_uri("silver", "order_lines"))
    chosen = rollback.plan(settings, Declaration("bench", {"bench": pipeline}), "silver.order_lines",
                           to_version=lines.version() - 1)
    assert [c.table for c in chosen.consumers] == ["gold.daily_revenue"]
    assert chosen.consumers[0].consumed == lines.version()  # gold has read the version undone
    rollback.execute(settings, chosen)
    # gold alone first: it takes back what the undone merge had added (the restore's feed, reversed)
    run_window(settings, pipeline, Window(shape.window_start(2), shape.window_end(2)))
    assert_frame_equal(current(settings), rebuilt(settings, pipeline))
    window(settings, store, 3)  # silver merges window 2's order lines again, with window 3's
    assert_frame_equal(current(settings), current(reference))
    assert_frame_equal(current(settings), rebuilt(settings, pipeline))
    for name in ("orders", "order_lines"):
        frame = pl.read_delta(settings.table_uri("silver", name))
        expected = pl.read_delta(reference.table_uri("silver", name))
        assert_frame_equal(frame.sort(frame.columns), expected.sort(expected.columns))
