"""``lakehouse rebuild``'s engine: one emptying commit per table that sets its consumption back
(lakehouse.rebuild), then silver re-reading bronze from version 0 and gold recomputed, equal to
the tables built incrementally (local Delta tables, the engine without Prefect)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from bench import data
from lakehouse import rebuild
from lakehouse.commit import gold_app, silver_app
from lakehouse.config import Settings
from lakehouse.engine import rebuild as rebuild_all
from lakehouse.engine import run_window
from lakehouse.history import history
from lakehouse.pipeline import Declaration, Pipeline
from lakehouse.storage import LocalStore
from lakehouse.window import Window
from tests.unit.test_gold_incremental import current, declared, rebuilt

SHAPE = data.Shape(lines=300, lines_per_file=150, customers=50, parts=40)


def _tables(settings: Settings, pipeline: Pipeline) -> dict[str, pl.DataFrame]:
    names = [("silver", ds.spec.name) for ds in pipeline.datasets]
    names += [("quarantine", ds.spec.name) for ds in pipeline.datasets]
    names += [("gold", m.spec.name) for m in pipeline.models]
    out = {}
    for layer, name in names:
        uri = settings.table_uri(layer, name)
        if Path(uri).exists():
            frame = pl.read_delta(uri)
            out[f"{layer}.{name}"] = frame.select(sorted(frame.columns)).sort(sorted(frame.columns), nulls_last=True)
    return out


def _built(tmp_path: Path, pipeline: Pipeline, *, windows: int = 4) -> Settings:
    settings = Settings(warehouse=str(tmp_path / "wh"), landing=str(tmp_path / "landing"))
    store = LocalStore(tmp_path / "landing")
    for w in range(windows):
        data.land_window(SHAPE, store, w)
        run_window(settings, pipeline, Window(SHAPE.window_start(w), SHAPE.window_end(w)))
    return settings


def test_reset_empties_each_table_in_one_commit_and_silver_then_reads_bronze_from_its_start(tmp_path: Path) -> None:
    pipeline = declared(incremental=False)
    settings = _built(tmp_path, pipeline, windows=2)
    before = {name: DeltaTable(settings.table_uri("silver", name)) for name in ("orders", "order_lines")}
    gold_before = DeltaTable(settings.table_uri("gold", "daily_revenue"))
    bronze_versions = {name: DeltaTable(settings.table_uri("bronze", f"{name}_raw")).version() for name in before}
    chosen = rebuild.plan(settings, pipeline)
    assert [r.table for r in chosen.silver] == ["silver.orders", "silver.order_lines"]
    assert all(r.rows > 0 for r in chosen.silver)
    assert "re-read bronze.orders_raw v0..v" in "\n".join(chosen.describe())

    emptied = rebuild.reset(settings, chosen, pipeline)
    for name, table in before.items():
        after = DeltaTable(settings.table_uri("silver", name))
        assert after.version() == table.version() + 1 == emptied[f"silver.{name}"]  # one commit
        assert after.to_pyarrow_table().num_rows == 0
        assert after.transaction_version(silver_app(name, f"{name}_raw")) == rebuild.NOTHING
        assert after.history(limit=1)[0]["operation"] == "DELETE"
        assert DeltaTable(settings.table_uri("silver", name), version=table.version()).to_pyarrow_table().num_rows > 0
    gold_after = DeltaTable(settings.table_uri("gold", "daily_revenue"))
    assert gold_after.version() == gold_before.version() + 1 and gold_after.to_pyarrow_table().num_rows == 0
    assert gold_after.transaction_version(gold_app("daily_revenue", "orders")) == emptied["silver.orders"]
    newest = history(settings, Declaration("bench", {"bench": pipeline}), "silver.orders", limit=1)[0]
    assert newest.operation == "DELETE" and "emptied for a rebuild from bronze" in newest.note
    assert newest.consumed == {"bronze.orders_raw": rebuild.NOTHING}
    # bronze is untouched
    for name, version in bronze_versions.items():
        assert DeltaTable(settings.table_uri("bronze", f"{name}_raw")).version() == version

    # silver's next promotion starts at bronze version 0 (committed_version -1 → start 0)
    from lakehouse.layers import silver

    batch = silver.prepare(settings, pipeline.dataset("orders"), now=SHAPE.window_end(1))
    assert batch is not None and batch.bronze_from == 0 and batch.since == rebuild.NOTHING


@pytest.mark.slow
@pytest.mark.parametrize("incremental", [False, True], ids=["recomputed", "additive"])
def test_a_rebuild_in_small_batches_equals_the_tables_built_incrementally(tmp_path: Path, incremental: bool) -> None:
    pipeline = declared(incremental=incremental)
    settings = _built(tmp_path, pipeline)
    reference = _tables(settings, pipeline)
    assert {"silver.orders", "silver.order_lines", "gold.daily_revenue"} <= set(reference)
    # bounded batches of at most one bronze commit (whole commits): the original rounds' batches are
    # replayed, and nothing larger than the bound is read at once
    small = dataclasses.replace(
        pipeline, datasets=tuple(dataclasses.replace(ds, max_batch_rows=1) for ds in pipeline.datasets)
    )
    run = rebuild_all(settings, small)
    assert len(run.rounds) >= 4  # one round per window's bronze commit at least, not one for all of bronze
    assert run.merged[0].counts is not None and run.merged[0].bronze_version is not None
    after = _tables(settings, pipeline)
    assert set(after) == set(reference)
    for name, frame in reference.items():
        # _bronze_version: the bronze commit each row came from, the same in both
        assert_frame_equal(after[name], frame, check_row_order=True)
    assert_frame_equal(current(settings), rebuilt(settings, pipeline))

    again = rebuild_all(settings, pipeline)  # a second rebuild: the same contents
    assert again.emptied
    for name, frame in reference.items():
        assert_frame_equal(_tables(settings, pipeline)[name], frame)


def test_a_silver_table_whose_bronze_is_gone_is_refused(tmp_path: Path) -> None:
    import shutil

    pipeline = declared(incremental=False)
    settings = _built(tmp_path, pipeline, windows=1)
    shutil.rmtree(settings.table_uri("bronze", "orders_raw"))
    with pytest.raises(rebuild.RebuildRefused, match=r"silver.orders: its bronze table bronze.orders_raw is missing"):
        rebuild.plan(settings, pipeline)
    with pytest.raises(rebuild.RebuildRefused, match=r"--from silver: only --from bronze"):
        rebuild.plan(settings, pipeline, source="silver")


@pytest.mark.slow
def test_a_rebuild_interrupted_after_one_round_and_run_again_replays_the_original_rounds(tmp_path: Path) -> None:
    from lakehouse.engine import RebuildRun, promote_round

    pipeline = declared(incremental=False)
    settings = _built(tmp_path, pipeline)
    reference = _tables(settings, pipeline)
    first = rebuild.plan(settings, pipeline)
    # one round per window, each dataset to the bronze version its window's merge took it to
    assert [set(r) for r in first.schedule] == [{"orders", "order_lines"}] * 4
    assert [r["orders"] for r in first.schedule] == sorted({r["orders"] for r in first.schedule})
    rebuild.reset(settings, first, pipeline)
    promote_round(settings, pipeline, RebuildRun(None), until=first.schedule[0])  # interrupted after its first round
    again = rebuild.plan(settings, pipeline)
    assert again.schedule == first.schedule  # from the emptying commits, not from the interrupted replay
    rebuild_all(settings, pipeline)
    for name, frame in reference.items():
        assert_frame_equal(_tables(settings, pipeline)[name], frame)
    assert rebuild.plan(settings, pipeline).schedule == first.schedule


def test_a_bronze_that_vacuum_has_deleted_files_from_is_refused(tmp_path: Path) -> None:
    pipeline = declared(incremental=False)
    settings = _built(tmp_path, pipeline, windows=2)
    bronze = DeltaTable(settings.table_uri("bronze", "orders_raw"))
    bronze.optimize.compact()  # as maintenance does: the small files removed (dataChange false) ...
    assert bronze.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)  # ... then deleted
    with pytest.raises(rebuild.RebuildRefused, match=r"bronze.orders_raw: vacuum deleted \d+ of its data files"):
        rebuild.plan(settings, pipeline)
