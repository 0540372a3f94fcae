"""``lakehouse rollback TABLE --to-version V``: the table restored, its consumption rewound,
and the next window giving what a run without the rolled-back batch's second application gives."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from flows.cli import app
from lakehouse.commit import silver_app
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.history import history
from lakehouse.storage import storage_options
from tests.integration.conftest import WINDOWS, InOrder
from tests.integration.helpers import contents, read, run, versions

pytestmark = pytest.mark.usefixtures("prefect_api")

COMPARED = (
    "silver.orders", "silver.order_items", "silver.products", "gold.daily_sales", "quarantine.orders", "quarantine.order_items",
)


def _silver_orders() -> DeltaTable:
    settings = Settings()
    return DeltaTable(settings.table_uri("silver", "orders"), storage_options=storage_options(settings))


@pytest.mark.slow
def test_rolling_silver_back_one_version_then_the_next_window_equals_a_run_without_rollback(
    in_order: InOrder, monkeypatch
) -> None:
    in_order.use(WINDOWS, monkeypatch)  # the reference: land(4), windows 1..4 in order, no rollback
    reference = {name: frame for name, frame in contents().items() if name in COMPARED}
    assert set(reference) == set(COMPARED)

    in_order.clone(3, monkeypatch, landed=4)  # windows 1..3 done, window 4 landed
    settings, declaration = Settings(), load()
    silver = _silver_orders()
    current = silver.version()
    app_id = silver_app("orders", "orders_raw")
    undone = silver.transaction_version(app_id)
    gold_before = history(settings, declaration, "gold.daily_sales", limit=1)[0]
    assert gold_before.consumed["silver.orders"] == current  # gold has read the version rolled back

    result = CliRunner().invoke(app, ["rollback", "silver.orders", "--to-version", str(current - 1), "--yes"])
    assert result.exit_code == 0, result.output
    assert f"gold.daily_sales has consumed v{current}" in result.output
    silver = _silver_orders()
    restored = DeltaTable(silver.table_uri, version=current - 1, storage_options=storage_options(settings))
    assert silver.version() == current + 1  # a new commit, not a rewrite of the log
    assert silver.transaction_version(app_id) == restored.transaction_version(app_id) < (undone or 0)
    assert_frame_equal(read("silver", "orders"), read_at(silver.table_uri, current - 1))
    newest = history(settings, declaration, "silver.orders", limit=1)[0]
    assert newest.operation == "RESTORE" and newest.consumed == {"bronze.orders_raw": restored.transaction_version(app_id)}

    state = run(4)  # silver reads window 3's bronze again with window 4's; gold sees the restore and the merge
    assert state.is_completed(), state.message
    after = contents()
    for name in COMPARED:
        assert_frame_equal(after[name], reference[name], check_row_order=True)
    gold_after = history(settings, declaration, "gold.daily_sales", limit=1)[0]
    assert gold_after.consumed["silver.orders"] == _silver_orders().version()


def test_rolling_gold_back_rewinds_its_inputs_and_a_rerun_recomputes_it(in_order: InOrder, monkeypatch) -> None:
    in_order.use(3, monkeypatch)
    reference = read("gold", "daily_sales")
    in_order.clone(3, monkeypatch, landed=3)
    settings, declaration = Settings(), load()
    newest, previous = history(settings, declaration, "gold.daily_sales", limit=2)
    assert newest.consumed != previous.consumed  # window 3 consumed later silver versions

    result = CliRunner().invoke(app, ["rollback", "gold.daily_sales", "--to-version", str(previous.version), "--yes"])
    assert result.exit_code == 0, result.output
    restore = history(settings, declaration, "gold.daily_sales", limit=1)[0]
    assert restore.operation == "RESTORE" and restore.consumed == previous.consumed
    assert_frame_equal(read("gold", "daily_sales"), read_at(settings.table_uri("gold", "daily_sales"), previous.version))
    assert read("gold", "daily_sales").height != reference.height or not read("gold", "daily_sales").equals(reference)

    state = run(3)  # bronze and silver have nothing new; gold reads silver's changes since what it consumed at that version
    assert state.is_completed(), state.message
    assert_frame_equal(read("gold", "daily_sales"), reference)
    assert history(settings, declaration, "gold.daily_sales", limit=1)[0].consumed == newest.consumed


def read_at(uri: str, version: int):  # type: ignore[no-untyped-def]
    import polars as pl

    frame = pl.read_delta(uri, version=version, storage_options=storage_options(Settings()))
    return frame.sort(frame.columns)


def test_a_rollback_to_the_current_or_a_missing_version_is_refused_and_changes_nothing(
    in_order: InOrder, monkeypatch
) -> None:
    in_order.clone(3, monkeypatch, landed=3)
    before_versions, before = versions(), contents()
    current = _silver_orders().version()
    for target, says in ((current, "must be an older version"), (current + 5, "must be an older version"),
                         (-1, "must be an older version")):
        result = CliRunner().invoke(app, ["rollback", "silver.orders", "--to-version", str(target), "--yes"])
        assert result.exit_code == 2, result.output
        assert says in result.output and result.output.count("\n") == 1, result.output
    refused = CliRunner().invoke(app, ["rollback", "bronze.orders_raw", "--to-version", "1", "--yes"])
    assert refused.exit_code == 2 and "only silver and gold tables" in refused.output
    unknown = CliRunner().invoke(app, ["rollback", "silver.nope", "--to-version", "1", "--yes"])
    assert unknown.exit_code == 2 and "known tables:" in unknown.output
    declined = CliRunner().invoke(app, ["rollback", "silver.orders", "--to-version", str(current - 1)], input="n\n")
    assert declined.exit_code == 1 and "nothing changed" in declined.output
    assert versions() == before_versions
    after = contents()
    for name in before:
        assert_frame_equal(after[name], before[name])


def test_a_rollback_to_a_version_whose_files_are_vacuumed_is_refused(in_order: InOrder, monkeypatch) -> None:
    in_order.clone(3, monkeypatch, landed=3)
    gone = _silver_orders().vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert gone  # the merges rewrote files: version 1's are removed, now deleted
    vacuumed = _silver_orders().version()  # (the vacuum's own commits)
    result = CliRunner().invoke(app, ["rollback", "silver.orders", "--to-version", "1", "--yes"])
    assert result.exit_code == 2, result.output
    assert "older than what vacuum kept" in result.output and result.output.count("\n") == 1
    assert _silver_orders().version() == vacuumed
