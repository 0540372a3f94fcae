"""``lakehouse history TABLE``: each version's consumption and counts, read from the Delta log."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows import cli
from flows.cli import app
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.history import Commit, history
from tests.integration.conftest import WINDOWS, InOrder
from tests.integration.helpers import read

pytestmark = pytest.mark.usefixtures("prefect_api")


def _at(commits: list[Commit], moment: Commit) -> int:
    """The version a table had when ``moment`` was committed (its newest commit not after it)."""
    assert moment.timestamp is not None
    return max(c.version for c in commits if c.timestamp is not None and c.timestamp <= moment.timestamp)


def test_history_lists_each_windows_commit_with_what_it_consumed_and_its_counts(in_order: InOrder, monkeypatch) -> None:
    in_order.use(WINDOWS, monkeypatch)  # land(4), windows 1..4 in order (read only)
    settings, declaration = Settings(), load()
    bronze = history(settings, declaration, "bronze.orders_raw", limit=None)
    silver = history(settings, declaration, "silver.orders", limit=None)
    items = history(settings, declaration, "silver.order_items", limit=None)
    gold = history(settings, declaration, "gold.daily_sales", limit=None)
    assert [c.version for c in silver] == sorted((c.version for c in silver), reverse=True)  # newest first

    # bronze: one append per window (after the creation), each as many rows as the window ingested
    appends = sorted((c for c in bronze if c.operation == "WRITE"), key=lambda c: c.version)
    assert len(appends) == WINDOWS
    for k, commit in enumerate(appends, start=1):
        ingested = next(b for b in in_order.summary(k).bronze if b.table == "bronze.orders_raw")
        assert commit.inserted == ingested.rows and commit.files_added == 1
        assert next(iter(commit.consumed)).startswith("landing/")  # its batch of the landing prefix
    assert sum(c.inserted or 0 for c in appends) == read("bronze", "orders_raw").height

    # silver: one merge per window, consuming the bronze version that bronze had then
    merges = sorted((c for c in silver if c.operation == "MERGE"), key=lambda c: c.version)
    assert len(merges) == WINDOWS
    for k, commit in enumerate(merges, start=1):
        counts = next(t for t in in_order.summary(k).tables if t.table == "silver.orders")
        assert commit.consumed == {"bronze.orders_raw": _at(bronze, commit)}
        assert commit.consumed["bronze.orders_raw"] == appends[k - 1].version
        assert (commit.inserted, commit.updated) == (counts.inserted, counts.updated)
        assert commit.inserted > 0 and commit.files_added
    assert sum(c.inserted or 0 for c in merges) - sum(c.deleted or 0 for c in merges) == read("silver", "orders").height

    # gold: each window's overwrite consumed its silver inputs at their versions then
    overwrites = sorted((c for c in gold if c.consumed), key=lambda c: c.version)
    assert len(overwrites) == WINDOWS
    for commit in overwrites:
        assert {k: v for k, v in commit.consumed.items() if k != "silver.product_history"} == {
            "silver.order_items": _at(items, commit), "silver.orders": _at(silver, commit)}
        assert "silver.product_history" in commit.consumed
        assert "recomputed" in commit.note and commit.inserted

    monkeypatch.setattr(cli.console, "width", 200)  # one line per version
    result = CliRunner().invoke(app, ["history", "silver.orders", "--limit", "2"])
    assert result.exit_code == 0, result.output
    newest = silver[0]
    assert f"bronze.orders_raw v{newest.consumed['bronze.orders_raw']}" in result.output
    assert "MERGE" in result.output and str(newest.inserted) in result.output
    rows = [line for line in result.output.splitlines() if "MERGE" in line]
    assert len(rows) == 2 and rows[0].split("│")[1].strip() == str(newest.version)  # --limit 2, newest first


def test_history_of_an_unknown_table_is_one_line_and_exit_2(in_order: InOrder, monkeypatch) -> None:
    in_order.use(WINDOWS, monkeypatch)
    result = CliRunner().invoke(app, ["history", "silver.nope"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "no table 'silver.nope'; known tables:" in result.output
    assert "silver.orders" in result.output and "gold.daily_sales" in result.output
