"""Gold models: pure functions from silver frames to business aggregates (no I/O)."""

from __future__ import annotations

import polars as pl

from lakehouse.shop import DAILY_SALES


def daily_sales(orders: pl.LazyFrame, items: pl.LazyFrame) -> pl.LazyFrame:
    """Sales per order date and product: quantity, revenue and distinct orders.

    Cancelled orders and lines whose order has not arrived yet are left out. Revenue is
    summed exactly in decimals (quantity × unit price has the price's scale, so no line
    is rounded).
    """
    live = orders.filter(pl.col("status") != "cancelled").select("order_id", "order_date")
    return (
        items.join(live, on="order_id", how="inner")
        .group_by("order_date", "product_id")
        .agg(
            pl.col("category").max(),
            pl.col("quantity").sum(),
            (pl.col("quantity").cast(pl.Decimal(18, 0)) * pl.col("unit_price"))
            .sum()
            .cast(pl.Decimal(18, 2))
            .alias("revenue"),
            pl.col("order_id").n_unique().cast(pl.Int64).alias("orders"),
        )
        .select(DAILY_SALES.column_names)
        .cast(dict(DAILY_SALES.polars_schema()))  # type: ignore[arg-type]
        .sort("order_date", "product_id")
    )
