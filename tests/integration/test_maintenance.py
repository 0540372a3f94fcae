"""Maintenance on real pipeline tables: fewer files, the same contents, nothing a consumer needs lost."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from polars.testing import assert_frame_equal

from lakehouse import maintenance
from lakehouse.commit import commit_properties, ensure_table, open_table
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.errors import CommitConflict
from lakehouse.layers import bronze
from lakehouse.layers.bronze import BRONZE_SCHEMA
from lakehouse.storage import open_store, storage_options
from tests.integration.helpers import contents, land, read, run, versions, without
from tests.integration.helpers import window_end as end_of

pytestmark = pytest.mark.usefixtures("prefect_api")


def maintain(**params: object) -> dict:
    from flows.maintenance import maintenance as maintenance_flow

    state = maintenance_flow(return_state=True, **params)
    assert state.is_completed(), state.message
    return state.result()


def data_files() -> dict[str, int]:
    settings = Settings()
    options = storage_options(settings)
    out = {}
    for target in maintenance.targets(settings, load().pipeline()):
        table = open_table(target.uri, options)
        if table is not None:
            out[target.table] = len(table.file_uris())
    return out


def partitions(table: str) -> int:
    layer, name = table.split(".")
    spec_col = {"silver.orders": "order_date", "gold.daily_sales": "order_date"}.get(table)
    return read(layer, name).get_column(spec_col).n_unique() if spec_col else 1


def test_maintenance_compacts_every_table_and_later_windows_match_a_run_without_it(
    local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(3, orders=10)
    for k in (1, 2):
        assert run(k).is_completed()
    before, files_before = contents(), data_files()
    twin = str(tmp_path / "never-maintained")
    shutil.copytree(local_warehouse, twin)  # Delta logs hold relative paths: a working copy

    summary = maintain(retention_hours=0, margin_hours=0)

    files_after = data_files()
    for table, n in files_after.items():
        assert n <= partitions(table), (table, files_before[table], n)
    assert sum(files_after.values()) < sum(files_before.values()) / 2, (files_before, files_after)
    rows = {t.table: t for t in summary.tables}
    assert rows["silver.order_items"].zorder == "order_id"
    assert rows["quality.scan_results"].vacuumed > 0  # nobody reads its history: removed files go
    after = contents()
    assert after.keys() == before.keys()
    for name in before:
        assert_frame_equal(after[name], before[name])

    assert run(3).is_completed()
    # bronze's version numbers count maintenance's commits too: compare the order they give, not their values
    maintained = without(contents(), "_bronze_version")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", twin)
    assert run(3).is_completed()
    plain = without(contents(), "_bronze_version")
    assert plain.keys() == maintained.keys()
    for name in plain:
        assert_frame_equal(maintained[name], plain[name])


def test_vacuum_keeps_the_bronze_files_silver_has_not_read(local_warehouse: str) -> None:
    land(2, orders=10)
    assert run(1).is_completed()
    settings = Settings()
    orders = load().pipeline().dataset("orders")
    from lakehouse.window import window_ending_at
    from tests.integration.helpers import INTERVAL

    ingested = bronze.ingest(settings, orders, window_ending_at(end_of(2), INTERVAL), landing=open_store(settings.landing_root, settings))
    assert ingested.rows > 0

    summary = maintain(tables=["bronze.orders_raw", "quality.scan_results"], retention_hours=0, margin_hours=0)
    rows = {t.table: t for t in summary.tables}
    bronze_row = rows["bronze.orders_raw"]
    assert bronze_row.rewritten >= 2  # window 1's and window 2's files were compacted …
    assert bronze_row.vacuumed == 0  # … but silver has not read window 2: nothing deleted
    assert bronze_row.oldest_unconsumed == ingested.version
    assert bronze_row.retention_hours >= 1
    assert rows["quality.scan_results"].vacuumed > 0  # the same retention elsewhere does delete

    state = run(2)
    assert state.is_completed(), state.message
    promoted = {t.table: t for t in state.result().tables}
    assert promoted["silver.orders"].read == ingested.rows  # every row of the compacted files


def test_a_dry_run_changes_nothing(local_warehouse: str) -> None:
    land(1, orders=10)
    assert run(1).is_completed()
    before_versions, before_files = versions(), data_files()

    summary = maintain(dry_run=True, retention_hours=0, margin_hours=0)

    assert versions() == before_versions
    assert data_files() == before_files
    assert len(summary.rewrite["quality.scan_results"]) == before_files["quality.scan_results"] > 1  # what it would compact
    assert all(t.files_after == t.files_before for t in summary.tables)


def test_maintenance_beside_a_writer_loses_no_commit(local_warehouse: str) -> None:
    settings = Settings()
    options = storage_options(settings)
    uri = settings.table_uri("bronze", "orders_raw")
    ensure_table(uri, BRONZE_SCHEMA, options)
    gold_uri = settings.table_uri("gold", "daily_sales")

    def batch(n: int, rows: int = 3) -> pa.Table:
        now = pa.scalar(0, pa.timestamp("us", tz="UTC"))
        return pa.table(
            {
                "_raw": [f'{{"n": {n}, "i": {i}}}' for i in range(rows)],
                "_batch_id": [f"orders_raw:{n}"] * rows,
                "_source": ["orders"] * rows,
                "_source_position": [f"orders/{n}.jsonl"] * rows,
                "_source_version": ["1"] * rows,
                "_line": list(range(rows)),
                "_landed_at": [now] * rows,
                "_ingested_at": [now] * rows,
            },
            schema=BRONZE_SCHEMA,
        )

    partitioned = pa.schema([pa.field("order_date", pa.large_string()), pa.field("n", pa.int64())])
    ensure_table(gold_uri, partitioned, options, partition_by=["order_date"])
    for n in range(10):
        write_deltalake(uri, batch(n), mode="append", storage_options=options)
        write_deltalake(gold_uri, pa.table({"order_date": [f"d{n % 2}"], "n": [n]}, schema=partitioned),
                        mode="append", storage_options=options)

    appended: list[int] = []
    deleted: list[int] = []
    failures: list[BaseException] = []

    def appender() -> None:  # bronze: appends never conflict with compaction
        try:
            for n in range(10, 50):
                write_deltalake(uri, batch(n), mode="append", storage_options=options)
                appended.append(n)
                time.sleep(0.02)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    def deleter() -> None:  # gold: appends, and deletes that rewrite files a compaction also rewrites
        try:
            for n in range(10, 40):
                write_deltalake(gold_uri, pa.table({"order_date": [f"d{n % 2}"], "n": [n]}, schema=partitioned),
                                mode="append", storage_options=options)
                if n % 3 == 0:
                    for _ in range(20):  # what write_once + task retries do for the pipeline's writers
                        try:
                            DeltaTable(gold_uri, storage_options=options).delete(f"n = {n - 3}")
                            break
                        except CommitFailedError:
                            time.sleep(0.05)
                    else:
                        raise AssertionError(f"delete of {n - 3} never committed")
                    deleted.append(n - 3)
                time.sleep(0.03)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=appender), threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    runs = 0
    while runs < 1 or any(t.is_alive() for t in threads):
        # retention 1 h: deleting just-removed files would pull them from under the writers' reads
        maintain(tables=["bronze.orders_raw", "gold.daily_sales"], retention_hours=1, margin_hours=0)
        runs += 1
    for t in threads:
        t.join()
    assert not failures, failures
    table = DeltaTable(uri, storage_options=options)
    ids = read("bronze", "orders_raw").get_column("_batch_id").to_list()
    expected = [f"orders_raw:{n}" for n in range(10)] + [f"orders_raw:{n}" for n in appended]
    assert sorted(ids) == sorted(b for b in expected for _ in range(3))  # every batch, exactly once
    assert len(table.file_uris()) < 10 + len(appended)
    assert deleted
    kept = sorted(read("gold", "daily_sales").get_column("n").to_list())
    assert kept == sorted(set(range(40)) - set(deleted))  # every append and every delete, once


def test_a_step_that_conflicts_is_retried(local_warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = maintenance.optimize

    def conflicting_once(*args: object, **kwargs: object) -> maintenance.Optimized:
        calls.append("optimize")
        if len(calls) == 1:
            raise CommitConflict("quality.scan_results: a concurrent transaction deleted data this operation read")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(maintenance, "optimize", conflicting_once)
    maintain(tables=["quality.scan_results"])
    assert calls == ["optimize", "optimize"]


def test_on_s3_vacuum_deletes_only_what_no_consumer_needs(warehouse: str) -> None:
    settings = Settings()
    options = storage_options(settings)
    uri, reader = settings.table_uri("bronze", "t_raw"), settings.table_uri("silver", "t")
    app = "lakehouse:silver/t<-bronze/t_raw"
    schema = pa.schema([pa.field("id", pa.int64())])
    ensure_table(uri, schema, options)
    for i in range(3):
        write_deltalake(uri, pa.table({"id": [i]}, schema=schema), mode="append", storage_options=options)
    ensure_table(reader, schema, options)
    write_deltalake(reader, pa.table({"id": []}, schema=schema), mode="append", storage_options=options,
                    commit_properties=commit_properties({app: 1}))  # read version 1; 2 and 3 not yet
    target = maintenance.Target("bronze.t_raw", uri, consumers=(maintenance.Consumer("silver.t", reader, app),))
    now = maintenance.Options(retention_hours=0, margin_hours=0)

    assert maintenance.maintain(settings, target, now).vacuumed.files == ()
    changes = DeltaTable(uri, storage_options=options).load_cdf(starting_version=2)
    assert sorted(pa.table(changes.read_all()).column("id").to_pylist()) == [1, 2]

    write_deltalake(reader, pa.table({"id": []}, schema=schema), mode="append", storage_options=options,
                    commit_properties=commit_properties({app: DeltaTable(uri, storage_options=options).version()}))
    assert len(maintenance.vacuum(settings, target, now).files) == 3  # caught up: the compacted files go
    assert sorted(read("bronze", "t_raw").get_column("id").to_list()) == [0, 1, 2]
