"""The daily sales report a shop manager reads, from a gold table of sales per day and product.

``lakehouse report daily-sales --date D`` prints it; the gold run that refreshes the table
publishes the same report, for the newest day it recomputed, as the markdown artifact
``daily-sales-report`` (with a chart of the last 14 days' revenue).

The table needs the columns of the shop's ``gold.daily_sales``: ``order_date`` (its
partition), ``product_id``, ``category``, ``quantity``, ``revenue`` and ``orders``. Only
the partitions of the days shown are read (partition pushdown), never the table's history.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.storage import storage_options

if TYPE_CHECKING:
    from deltalake import DeltaTable

DAILY_SALES = "daily_sales"
"""The gold table the report reads by default (``--table`` names another of the same shape)."""
REQUIRED = ("order_date", "product_id", "category", "quantity", "revenue", "orders")
TREND_DAYS = 14
TOP = 5


@dataclass(frozen=True)
class Line:
    """One product's or one category's figures on the day."""

    name: str
    category: str | None
    quantity: int
    revenue: Decimal
    orders: int | None
    """Orders with the product (per product only: an order with several categories counts in each)."""


@dataclass(frozen=True)
class DailySales:
    """The report of one day."""

    table: str
    day: date
    revenue: Decimal
    quantity: int
    products: int
    """Products sold that day."""
    previous: date | None
    """The latest earlier day with sales within the trend's 14 days, None without one."""
    previous_revenue: Decimal | None
    top_products: tuple[Line, ...]
    categories: tuple[Line, ...]
    trend: tuple[tuple[date, Decimal], ...]
    """Revenue of each of the 14 days ending at ``day`` (0 on a day without sales)."""

    @property
    def change(self) -> Decimal | None:
        """Revenue against the previous day, as a fraction (``0.25`` is 25 % more)."""
        if self.previous_revenue is None or self.previous_revenue == 0:
            return None
        return (self.revenue - self.previous_revenue) / self.previous_revenue


def fits(columns: Any, partition_by: str | None) -> bool:
    """Whether a table of these columns, partitioned so, is a daily sales table."""
    return partition_by == "order_date" and all(c in columns for c in REQUIRED)


def _open(settings: Settings, table: str) -> DeltaTable:
    """``gold.<table>``, checked to have the report's columns and partitioning."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(settings.table_uri("gold", table), storage_options=storage_options(settings))
    except TableNotFoundError:
        msg = f"gold.{table} does not exist yet: run a window first (lakehouse run)"
        raise ConfigError(msg) from None
    names = [f.name for f in dt.schema().fields]
    partitioned = dt.metadata().partition_columns
    if fits(names, partitioned[0] if partitioned == ["order_date"] else None):
        return dt
    if missing := [c for c in REQUIRED if c not in names]:
        msg = (f"gold.{table} is not a daily sales table: it lacks {', '.join(missing)} "
               f"(a daily sales report needs {', '.join(REQUIRED)})")
        raise ConfigError(msg)
    msg = f"gold.{table} must be partitioned by order_date for a daily report (it is partitioned by {partitioned or 'nothing'})"
    raise ConfigError(msg)


def _read(settings: Settings, table: str, first: date, last: date) -> pl.DataFrame:
    dt = _open(settings, table)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    # the partitions of the days shown, and nothing else of the table
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("order_date", "in", days)])
    frame = pl.from_arrow(dataset.to_table(columns=list(REQUIRED)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def latest_day(settings: Settings, table: str = DAILY_SALES) -> date | None:
    """The newest ``order_date`` of the table (from its partition values in the log)."""
    dt = _open(settings, table)
    actions = pl.from_arrow(pa.table(dt.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    column = "partition.order_date"
    if actions.is_empty() or column not in actions.columns:
        return None
    newest = actions[column].drop_nulls().cast(pl.Utf8).max()
    return None if newest is None else date.fromisoformat(str(newest))


def daily_sales(settings: Settings, day: date, table: str = DAILY_SALES) -> DailySales:
    """The report of ``day`` from ``gold.<table>``; raises ConfigError for an unusable table."""
    first = day - timedelta(days=TREND_DAYS - 1)
    frame = _read(settings, table, first, day)
    by_day = frame.group_by("order_date").agg(pl.col("revenue").sum()).sort("order_date")
    revenue_of = dict(zip(by_day["order_date"].to_list(), by_day["revenue"].to_list(), strict=True))
    trend = tuple((d, Decimal(revenue_of.get(d) or 0)) for d in (first + timedelta(days=i) for i in range(TREND_DAYS)))
    earlier = [d for d in revenue_of if d < day]
    previous = max(earlier) if earlier else None
    today = frame.filter(pl.col("order_date") == day)
    # a product recategorised during the day has a row per category: one line, in its category of most revenue
    per_product = today.group_by("product_id").agg(
        pl.col("category").sort_by("revenue", descending=True).first(),
        pl.col("quantity").sum(), pl.col("revenue").sum(), pl.col("orders").sum(),
    )
    top = per_product.sort(["revenue", "quantity", "product_id"], descending=[True, True, False]).head(TOP)
    categories = (
        today.group_by("category")
        .agg(pl.col("quantity").sum(), pl.col("revenue").sum())
        .sort(["revenue", "category"], descending=[True, False], nulls_last=True)
    )
    return DailySales(
        table=f"gold.{table}",
        day=day,
        revenue=Decimal(today["revenue"].sum() or 0),
        quantity=int(today["quantity"].sum() or 0),
        products=today["product_id"].n_unique(),
        previous=previous,
        previous_revenue=None if previous is None else Decimal(revenue_of[previous]),
        top_products=tuple(
            Line(r["product_id"], r["category"], int(r["quantity"]), Decimal(r["revenue"]), int(r["orders"]))
            for r in top.iter_rows(named=True)
        ),
        categories=tuple(
            Line(r["category"] or "(none)", None, int(r["quantity"]), Decimal(r["revenue"]), None)
            for r in categories.iter_rows(named=True)
        ),
        trend=trend,
    )


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _change(report: DailySales) -> str:
    if report.previous is None:
        return "no earlier day with sales in the last 14 days"
    change = report.change
    if change is None:
        return f"{_money(report.previous_revenue or Decimal(0))} on {report.previous}"
    return f"{change:+.1%} against {_money(report.previous_revenue or Decimal(0))} on {report.previous}"


def summary_line(report: DailySales) -> str:
    """Revenue (and its change), units and products sold, on one line."""
    return (f"revenue {_money(report.revenue)} ({_change(report)}) · {report.quantity:,} units · "
            f"{report.products:,} products sold")


def cells(report: DailySales, line: Line) -> tuple[str, ...]:
    """A top product's (it has a category) or a category's row of the printed report."""
    if line.category is not None or line.orders is not None:
        return (line.name, line.category or "", f"{line.quantity:,}", _money(line.revenue), f"{line.orders or 0:,}")
    share = line.revenue / report.revenue if report.revenue else Decimal(0)
    return (line.name, f"{line.quantity:,}", _money(line.revenue), f"{share:.1%}")


def svg_chart(trend: tuple[tuple[date, Decimal], ...], width: int = 420, height: int = 120) -> str:
    """A bar chart of the trend's revenue per day, as an SVG document."""
    top = max((v for _, v in trend), default=Decimal(0)) or Decimal(1)
    bar = width / max(len(trend), 1)
    bars = []
    for i, (d, v) in enumerate(trend):
        h = float(v / top) * (height - 20)
        bars.append(
            f'<rect x="{i * bar + 2:.1f}" y="{height - 14 - h:.1f}" width="{bar - 4:.1f}" height="{h:.1f}" fill="#2563eb">'
            f"<title>{d}: {_money(v)}</title></rect>"
            f'<text x="{i * bar + bar / 2:.1f}" y="{height - 2}" font-size="9" text-anchor="middle">{d:%d}</text>'
        )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(bars)}</svg>')


def sparkline(trend: tuple[tuple[date, Decimal], ...]) -> str:
    """The trend as a line of block characters (one per day), for a terminal or plain text."""
    blocks = "▁▂▃▄▅▆▇█"
    top = max((v for _, v in trend), default=Decimal(0))
    if top == 0:
        return blocks[0] * len(trend)
    return "".join(blocks[min(len(blocks) - 1, int(v / top * (len(blocks) - 1)))] for _, v in trend)


def markdown(report: DailySales) -> str:
    """The report as markdown: what the ``daily-sales-report`` artifact shows."""
    chart = base64.b64encode(svg_chart(report.trend).encode()).decode()
    lines = [
        f"# Daily sales, {report.day:%A %d %B %Y}",
        "",
        f"**{summary_line(report)}** · from `{report.table}`",
        "",
        f"Revenue of the last {len(report.trend)} days: `{sparkline(report.trend)}`",
        "",
        f"![revenue, last {len(report.trend)} days](data:image/svg+xml;base64,{chart})",
        "",
        "## Top products",
        "",
        "| product | category | units | revenue | orders |",
        "|---|---|---:|---:|---:|",
        *("| " + " | ".join(cells(report, p)) + " |" for p in report.top_products),
        "",
        "## Categories",
        "",
        "| category | units | revenue | share |",
        "|---|---:|---:|---:|",
        *("| " + " | ".join(cells(report, c)) + " |" for c in report.categories),
    ]
    return "\n".join(lines) + "\n"


def rows(report: DailySales) -> dict[str, Any]:
    """The report as plain data (``--format json``)."""
    return {
        "table": report.table,
        "date": report.day.isoformat(),
        "revenue": str(report.revenue),
        "quantity": report.quantity,
        "products": report.products,
        "previous_date": None if report.previous is None else report.previous.isoformat(),
        "previous_revenue": None if report.previous_revenue is None else str(report.previous_revenue),
        "change": None if report.change is None else float(report.change),
        "top_products": [
            {"product_id": p.name, "category": p.category, "quantity": p.quantity, "revenue": str(p.revenue), "orders": p.orders}
            for p in report.top_products
        ],
        "categories": [{"category": c.name, "quantity": c.quantity, "revenue": str(c.revenue)} for c in report.categories],
        "trend": [{"date": d.isoformat(), "revenue": str(v)} for d, v in report.trend],
    }
