"""``lakehouse segments --month``: a month's RFM segments, checked against the same definition
computed here with polars from silver; a month computed again writes the same rows."""

from __future__ import annotations

import os
from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.integration.conftest import InOrder
from tests.integration.helpers import read


def _score(values: pl.Expr, *, descending: bool = False) -> pl.Expr:
    """1 + floor(5 × (rank − 1) ÷ n), ties sharing the lowest rank ("min")."""
    rank = values.rank(method="min", descending=descending)
    return (1 + (5 * (rank - 1)) // pl.len()).cast(pl.Int64)


def _expected(month: date) -> pl.DataFrame:
    def shift(months: int) -> date:
        index = month.year * 12 + month.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)

    end, since = shift(1), shift(-11)  # the 12 months up to and including ``month``
    last_day = date.fromordinal(end.toordinal() - 1)
    orders = read("silver", "orders").filter(
        (pl.col("status") != "cancelled") & pl.col("customer_id").is_not_null()
        & (pl.col("order_date") >= since) & (pl.col("order_date") < end)
    )
    lines = read("silver", "order_items").group_by("order_id").agg((pl.col("quantity") * pl.col("unit_price")).sum().alias("amount"))
    spent = orders.join(lines, on="order_id", how="left").with_columns(pl.col("amount").fill_null(0))
    customers = spent.group_by("customer_id").agg(
        (pl.lit(last_day) - pl.col("ordered_at").max().dt.date()).dt.total_days().alias("recency_days"),
        pl.len().cast(pl.Int64).alias("frequency"),
        pl.col("amount").sum().alias("monetary"),
    )
    return customers.with_columns(
        _score(pl.col("recency_days"), descending=True).alias("r_score"),
        _score(pl.col("frequency")).alias("f_score"),
        _score(pl.col("monetary")).alias("m_score"),
    ).sort("customer_id")


@pytest.mark.slow
def test_a_months_segments_equal_their_definition_and_a_second_run_writes_the_same(
    in_order: InOrder, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_order.clone(4, monkeypatch, landed=4)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", os.environ["LAKEHOUSE_CONFIG"])
    out = CliRunner().invoke(app, ["segments", "--month", "2026-01"])
    assert out.exit_code == 0, out.output
    written = read("gold", "customer_segments").sort("customer_id")
    expected = _expected(date(2026, 1, 1))
    assert written.height == expected.height > 0
    assert set(written["month"].to_list()) == {date(2026, 1, 1)}
    columns = ["customer_id", "recency_days", "frequency", "r_score", "f_score", "m_score"]
    assert written.select(columns).equals(expected.select(columns))
    assert written["monetary"].cast(pl.Float64).round(2).to_list() == expected["monetary"].cast(pl.Float64).round(2).to_list()
    assert written.select((pl.col("rfm") == pl.concat_str("r_score", "f_score", "m_score")).all()).item()
    champions = written.filter(pl.col("segment") == "champions")
    assert champions.filter((pl.col("r_score") < 4) | (pl.col("f_score") < 4)).is_empty()
    assert f"{written.height:,} customers" in out.stdout

    again = CliRunner().invoke(app, ["segments", "--month", "2026-01"])
    assert again.exit_code == 0, again.output
    assert read("gold", "customer_segments").sort("customer_id").equals(written)  # replaced, not appended

    empty = CliRunner().invoke(app, ["segments", "--month", "2024-06"])
    assert empty.exit_code == 0 and "nothing written" in empty.stdout
    assert read("gold", "customer_segments").height == written.height


def test_a_month_that_is_not_one_is_refused_in_one_line() -> None:
    out = CliRunner().invoke(app, ["segments", "--month", "2026-1"])
    assert out.exit_code == 2
    assert "'2026-1' is not a month: expected YYYY-MM" in out.output and "Traceback" not in out.output
