"""``lakehouse report daily-sales`` and the gold run's ``daily-sales-report`` artifact, checked
against the day's sales computed here from silver (order lines of orders not cancelled)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, datetime
from decimal import Decimal

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.integration.helpers import land, read, run
from tests.integration.test_pipeline import _artifacts

pytestmark = pytest.mark.in_order_shard  # the shards' balance (tests/shards.py)

DAY = 97
"""The first window of the second day (96 windows of 15 minutes a day)."""


def _sales() -> pl.DataFrame:
    """Net revenue and units per day, product and category from silver alone: order lines of orders not
    cancelled, each in the category of the product version valid at its order's time."""
    orders = read("silver", "orders").filter(pl.col("status") != "cancelled")
    versions = read("silver", "product_history").select("product_id", "category", "valid_from", "valid_to")
    lines = read("silver", "order_items").drop("category").join(
        orders.select("order_id", "order_date", "ordered_at"), on="order_id")
    lines = lines.join(versions, on="product_id", how="left").filter(
        (pl.col("valid_from") <= pl.col("ordered_at")) & (pl.col("valid_to").is_null() | (pl.col("ordered_at") < pl.col("valid_to"))))
    net = pl.col("quantity") * pl.col("unit_price") - pl.col("discount")
    return lines.group_by("order_date", "product_id", "category").agg(net.sum().alias("revenue"), pl.col("quantity").sum())


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


@pytest.mark.slow
def test_the_report_and_its_artifact_show_the_days_sales(warehouse: str) -> None:
    land(1, orders=120)
    land(1, first=DAY, orders=120)  # 00:00–00:15 of the next day
    assert run(1).is_completed()
    state = run(DAY)
    assert state.is_completed(), state.message
    sales = _sales()
    per_day = sales.group_by("order_date").agg(pl.col("revenue").sum(), pl.col("quantity").sum()).sort("order_date")
    assert per_day.height >= 2, per_day
    newest, before = per_day.row(-1, named=True), per_day.row(-2, named=True)

    # the artifact: the newest day the run recomputed, its revenue and its change
    artifacts = {a.key: a for a in asyncio.run(_artifacts(state.state_details.flow_run_id))}
    shown = artifacts["daily-sales-report"].data
    heading = re.search(r"^# Daily sales, \w+ (\d\d \w+ \d{4})$", shown, re.MULTILINE)
    assert heading is not None, shown
    assert datetime.strptime(heading.group(1), "%d %B %Y").date() == newest["order_date"]
    assert f"revenue {_money(newest['revenue'])} " in shown
    change = (newest["revenue"] - before["revenue"]) / before["revenue"]
    assert f"{change:+.1%} against {_money(before['revenue'])} on {before['order_date']}" in shown
    assert "data:image/svg+xml;base64," in shown

    # the command, for the day before: its figures as JSON
    out = CliRunner().invoke(app, ["report", "daily-sales", "--date", str(before["order_date"]), "--format", "json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert Decimal(got["revenue"]) == before["revenue"] and got["quantity"] == before["quantity"]
    day = sales.filter(pl.col("order_date") == before["order_date"])
    products = day.group_by("product_id").agg(pl.col("revenue").sum(), pl.col("quantity").sum())  # one line a product
    top = products.sort(["revenue", "quantity", "product_id"], descending=[True, True, False]).row(0, named=True)
    assert (got["top_products"][0]["product_id"], Decimal(got["top_products"][0]["revenue"])) == (top["product_id"], top["revenue"])
    categories = day.group_by("category").agg(pl.col("revenue").sum())
    assert {c["category"]: Decimal(c["revenue"]) for c in got["categories"]} == dict(categories.iter_rows())
    trend = {date.fromisoformat(t["date"]): Decimal(t["revenue"]) for t in got["trend"]}
    assert len(trend) == 14 and trend[before["order_date"]] == before["revenue"]
    assert newest["order_date"] not in trend  # the 14 days end at the day asked for

    # the default day is the table's newest; the printed report names it
    printed = CliRunner().invoke(app, ["report", "daily-sales"])
    assert printed.exit_code == 0, printed.output
    assert f"{newest['order_date']:%d %B %Y}" in printed.stdout and _money(newest["revenue"]) in printed.stdout


def test_the_report_of_a_table_that_is_not_a_sales_table_is_one_clear_line(warehouse: str) -> None:
    out = CliRunner().invoke(app, ["report", "daily-sales", "--table", "gold.daily_sales"])
    assert out.exit_code == 2
    assert "gold.daily_sales does not exist yet: run a window first" in out.output
    assert "Traceback" not in out.output
    bad = CliRunner().invoke(app, ["report", "daily-sales", "--date", "2026-02-30"])
    assert bad.exit_code == 2 and "expected YYYY-MM-DD" in bad.output
