"""Maintenance steps on small local Delta tables: retention bounded by consumers, dry runs, conflicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import maintenance
from lakehouse.commit import app_id, commit_properties, ensure_table
from lakehouse.config import Settings
from lakehouse.declaration import load, parse
from lakehouse.errors import CommitConflict, ConfigError

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("day", pa.large_string())])
APP = app_id("silver/t", "bronze/t_raw")
NO_WAIT = maintenance.Options(retention_hours=0, margin_hours=0)


def rows(*ids: int) -> pa.Table:
    return pa.table({"id": list(ids), "day": ["d1"] * len(ids)}, schema=SCHEMA)


def producer(tmp_path: Path, appends: int = 4) -> tuple[maintenance.Target, str]:
    """A change-data-feed table of small appends, read by a consumer table at ``consumer``."""
    uri, consumer = str(tmp_path / "bronze"), str(tmp_path / "silver")
    ensure_table(uri, SCHEMA, {})
    for i in range(appends):
        write_deltalake(uri, rows(i), mode="append")
    target = maintenance.Target("bronze.t_raw", uri, consumers=(maintenance.Consumer("silver.t", consumer, APP),))
    return target, consumer


def consume(consumer: str, version: int) -> None:
    """The consumer records that it read the producer up to ``version``."""
    ensure_table(consumer, SCHEMA, {})
    write_deltalake(consumer, rows(), mode="append", commit_properties=commit_properties({APP: version}))


def cdf_ids(uri: str, start: int) -> list[int]:
    table = DeltaTable(uri)
    return sorted(pa.table(table.load_cdf(starting_version=start, ending_version=table.version()).read_all()).column("id").to_pylist())


def test_an_optimize_commit_adds_nothing_to_the_change_data_feed(tmp_path: Path) -> None:
    target, _ = producer(tmp_path)
    before = DeltaTable(target.uri).version()
    done = maintenance.optimize(Settings(warehouse=str(tmp_path)), target)
    assert done.before.count == 4 and done.after.count == 1
    assert DeltaTable(target.uri).version() == before + 1
    assert cdf_ids(target.uri, before + 1) == []  # the optimize commit: no rows
    assert cdf_ids(target.uri, 1) == [0, 1, 2, 3]  # a range holding it: each row once


def test_compaction_aims_at_the_tables_own_target_file_size(tmp_path: Path) -> None:
    # a silver table carries its declared target_file_size (delta.targetFileSize): compaction
    # bin-packs its small files to that size, not to the 100 MiB default that would put the
    # newest keys back in one huge file for every merge to rewrite
    uri = str(tmp_path / "silver")
    ensure_table(uri, SCHEMA, {}, configuration={"delta.targetFileSize": str(64 * 1024)})
    wide = pa.schema([*SCHEMA, pa.field("pad", pa.large_string())])
    random = np.random.default_rng(1)
    for i in range(8):  # eight files of ~16 kB (random padding barely compresses)
        ids = list(range(i * 400, (i + 1) * 400))
        pads = [bytes(b).hex() for b in random.integers(0, 256, size=(400, 16), dtype=np.uint8)]
        write_deltalake(uri, pa.table({"id": ids, "day": ["d1"] * 400, "pad": pads}, schema=wide),
                        mode="append", schema_mode="merge")
    sizes = [int(s) for s in pa.table(DeltaTable(uri).get_add_actions(flatten=True)).column("size_bytes").to_pylist()]
    assert len(sizes) == 8 and max(sizes) < 64 * 1024 < sum(sizes), sizes
    done = maintenance.optimize(Settings(warehouse=str(tmp_path)), maintenance.Target("silver.t", uri))
    assert done.before.count == 8
    assert 1 < done.after.count < 8, done  # packed into several files of at most 64 KiB


def test_vacuum_keeps_the_files_a_consumer_has_not_read(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    target, consumer = producer(tmp_path)
    consume(consumer, 2)  # read versions 1 and 2; 3 and 4 not yet
    maintenance.optimize(settings, target, NO_WAIT)
    done = maintenance.vacuum(settings, target, NO_WAIT)
    assert done.oldest_unconsumed == 3
    assert done.files == ()
    assert done.retention_hours == 1  # seconds since version 3, rounded up
    assert cdf_ids(target.uri, 3) == [2, 3]  # what the consumer reads next is all there

    consume(consumer, DeltaTable(target.uri).version())  # caught up: the removed files may go
    done = maintenance.vacuum(settings, target, NO_WAIT)
    assert done.oldest_unconsumed is None and done.retention_hours == 0
    assert len(done.files) == 4


def change_data_files(uri: str) -> list[Path]:
    return sorted((Path(uri) / "_change_data").rglob("*.parquet"))


def test_vacuum_deletes_the_change_data_no_consumer_needs(tmp_path: Path) -> None:
    # appends carry no change data files; updates (silver merges, gold overwrites) do, and
    # delta-rs' vacuum never deletes them: without this, `_change_data/` grows forever
    settings = Settings(warehouse=str(tmp_path))
    target, consumer = producer(tmp_path, appends=2)
    for i in range(3):
        DeltaTable(target.uri).update(updates={"day": f"'u{i}'"}, predicate=f"id = {i % 2}")
    assert len(change_data_files(target.uri)) == 3
    last = DeltaTable(target.uri).version()
    consume(consumer, last - 1)  # the last update not read yet
    done = maintenance.vacuum(settings, target, NO_WAIT)
    assert len(done.change_data) == 2 and len(change_data_files(target.uri)) == 1
    feed = DeltaTable(target.uri).load_cdf(starting_version=last, ending_version=last).read_all()
    assert sorted(pa.table(feed).column("day").to_pylist()) == ["u0", "u2"]  # what the consumer reads next: id 0 from u0 to u2

    consume(consumer, last)
    assert maintenance.vacuum(settings, target, maintenance.Options(retention_hours=1, margin_hours=0)).change_data == ()
    done = maintenance.vacuum(settings, target, NO_WAIT)  # caught up, and old enough
    assert len(done.change_data) == 1 and change_data_files(target.uri) == []


def test_a_dry_run_lists_change_data_and_deletes_none(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    target, consumer = producer(tmp_path, appends=1)
    DeltaTable(target.uri).update(updates={"day": "'u'"}, predicate="id = 0")
    consume(consumer, DeltaTable(target.uri).version())
    done = maintenance.vacuum(settings, target, maintenance.Options(retention_hours=0, margin_hours=0, dry_run=True))
    assert len(done.change_data) == 1 and len(change_data_files(target.uri)) == 1


def test_a_consumer_that_never_read_keeps_everything(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    target, _ = producer(tmp_path)  # the consumer's table does not exist yet
    maintenance.optimize(settings, target, NO_WAIT)
    done = maintenance.vacuum(settings, target, NO_WAIT)
    assert done.oldest_unconsumed == 0 and done.files == ()
    assert cdf_ids(target.uri, 0) == [0, 1, 2, 3]


def test_unreadable_consumer_progress_means_no_vacuum(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    target, consumer = producer(tmp_path)
    log = Path(consumer) / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("not json\n")
    maintenance.optimize(settings, target, NO_WAIT)
    done = maintenance.vacuum(settings, target, NO_WAIT)
    assert done.skipped and "silver.t" in done.skipped
    assert done.files == ()
    tidied = maintenance.tidy_log(settings, target, NO_WAIT)
    assert not tidied.cleaned and "skipped" in tidied.note


def test_retention_is_the_age_of_the_oldest_unconsumed_commit_rounded_up_plus_a_margin() -> None:
    h = maintenance.Horizon(oldest_unconsumed=7, age_hours=30.2)
    options = maintenance.Options(retention_hours=24, margin_hours=1)
    assert maintenance.retention_hours(h, options, has_consumers=True) == 32
    assert maintenance.retention_hours(maintenance.Horizon(), options, has_consumers=True) == 24
    assert maintenance.retention_hours(h, maintenance.Options(retention_hours=168), has_consumers=True) == 168
    assert maintenance.retention_hours(h, options, has_consumers=False) == 24


def test_log_clean_up_waits_for_a_consumer_near_the_log_retention(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    target, consumer = producer(tmp_path)
    consume(consumer, 1)
    later = datetime.now(UTC) + timedelta(days=30)
    tidied = maintenance.tidy_log(settings, target, NO_WAIT, now=later)
    assert tidied.checkpoint == DeltaTable(target.uri).version()
    assert not tidied.cleaned and "version 2" in tidied.note
    assert maintenance.tidy_log(settings, target, NO_WAIT).cleaned


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    target, consumer = producer(tmp_path)
    maintenance.optimize(settings, target)
    consume(consumer, DeltaTable(target.uri).version())
    write_deltalake(target.uri, rows(9), mode="append")
    consume(consumer, DeltaTable(target.uri).version())
    version = DeltaTable(target.uri).version()
    on_disk = sorted(p.name for p in Path(target.uri).rglob("*"))

    dry = maintenance.maintain(settings, target, maintenance.Options(retention_hours=0, margin_hours=0, dry_run=True))

    assert len(dry.optimized.files) == 2  # the compacted file and the new append
    assert len(dry.vacuumed.files) == 4  # the four files the first compaction removed
    assert dry.log.checkpoint == version
    assert DeltaTable(target.uri).version() == version
    assert sorted(p.name for p in Path(target.uri).rglob("*")) == on_disk


def test_z_order_rewrites_only_partitions_with_several_files(tmp_path: Path) -> None:
    uri = str(tmp_path / "gold")
    ensure_table(uri, SCHEMA, {}, partition_by=["day"])
    for i, day in enumerate(["d1", "d1", "d2"]):
        write_deltalake(uri, pa.table({"id": [i], "day": [day]}, schema=SCHEMA), mode="append")
    target = maintenance.Target("gold.g", uri, zorder=("id",))
    done = maintenance.optimize(Settings(warehouse=str(tmp_path)), target)
    assert done.zorder == ("id",) and len(done.files) == 2 and done.after.count == 2
    again = maintenance.optimize(Settings(warehouse=str(tmp_path)), target)
    assert again.files == () and again.version == done.version  # nothing left to do: no commit


def test_a_conflicting_commit_is_a_transient_conflict(tmp_path: Path) -> None:
    target, _ = producer(tmp_path)
    stale = DeltaTable(target.uri)
    DeltaTable(target.uri).delete("id = 1")  # another writer rewrites a file the compaction reads
    with pytest.raises(CommitConflict, match="bronze.t_raw"), maintenance.conflicts(target):
        stale.optimize.compact()


def test_targets_cover_every_table_and_their_consumers(tmp_path: Path) -> None:
    settings = Settings(warehouse=str(tmp_path))
    found = {t.table: t for t in maintenance.targets(settings, load().pipeline("shop"))}
    assert set(found) == {
        "bronze.products_raw", "bronze.product_history_raw", "bronze.orders_raw", "bronze.order_items_raw",
        "silver.products", "silver.product_history", "silver.orders", "silver.order_items",
        "quarantine.products", "quarantine.product_history", "quarantine.orders", "quarantine.order_items",
        "gold.daily_sales", "quality.scan_results",
    }
    assert [c.app for c in found["bronze.orders_raw"].consumers] == ["lakehouse:silver/orders<-bronze/orders_raw"]
    assert [c.app for c in found["silver.order_items"].consumers] == ["lakehouse:gold/daily_sales<-silver/order_items"]
    assert found["silver.products"].consumers == ()  # no gold model reads it
    assert found["silver.order_items"].zorder == ("order_id",)
    assert [t.table for t in maintenance.select(list(found.values()), ["orders"])] == ["silver.orders", "quarantine.orders"]
    with pytest.raises(ConfigError, match="no table silver.nope"):
        maintenance.select(list(found.values()), ["silver.nope"])


YAML = """
pipelines:
  p:
    sources: {s: {kind: landing_files}}
    datasets:
      d:
        source: s
        columns: {k: string, day: date, v: int64}
        key: k
        partition_by: day
        zorder: {zorder}
    gold:
      m:
        sql: "SELECT day, CAST(sum(v) AS BIGINT) AS total FROM silver.d GROUP BY day"
        partition_by: day
        zorder: {gold_zorder}
"""


def test_zorder_is_declared_on_datasets_and_models() -> None:
    pipeline = parse(YAML.replace("{zorder}", "[k, v]").replace("{gold_zorder}", "total")).pipeline()
    assert pipeline.dataset("d").zorder == ("k", "v")
    assert pipeline.models[0].zorder == ("total",)


@pytest.mark.parametrize(
    ("zorder", "gold_zorder", "message"),
    [
        ("[kk]", "[]", "datasets.d.zorder: 'kk' is not a column of d (columns: k, day, v)"),
        ("[day]", "[]", "datasets.d.zorder: 'day' is the partition column"),
        ("[k, k]", "[]", "datasets.d.zorder: lists a column twice: k, k"),
        ("[]", "[sum]", "gold.m.zorder: 'sum' is not a column of the model's result (columns: day, total)"),
    ],
)
def test_zorder_errors_name_the_path(zorder: str, gold_zorder: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(YAML.replace("{zorder}", zorder).replace("{gold_zorder}", gold_zorder), path="p.yaml")
