"""The default pipeline: an online shop's orders and order items, landing as JSONL files.

Landing layout (keys relative to the landing root)::

    orders/YYYY/MM/DD/HH/MM/part-N.jsonl        one JSON object per line
    order_items/YYYY/MM/DD/HH/MM/part-N.jsonl

The key carries the landing time (UTC, to the minute).
"""

from __future__ import annotations

from lakehouse.specs import Check, Column, TableSpec

ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")

ORDERS = TableSpec(
    name="orders",
    layer="silver",
    description="One row per order, latest version by updated_at.",
    source_prefix="orders",
    columns=(
        Column("order_id", "string", nullable=False),
        Column("customer_id", "string"),
        Column("status", "string"),
        Column("ordered_at", "timestamp"),
        Column("updated_at", "timestamp", nullable=False),
        Column("order_date", "date", derive="date(ordered_at)"),
    ),
    keys=("order_id",),
    order_by="updated_at",
    partition_by="order_date",
    checks=(
        Check("missing", column="order_id", max_percent=10),
        Check("missing", column="updated_at", max_percent=10),
        Check("missing", column="ordered_at", max_percent=10),
        Check("valid_values", column="status", values=ORDER_STATUSES, max_percent=10),
        Check("duplicate", columns=("order_id",)),
        Check("row_count", min_rows=1),
        Check("schema"),
    ),
)

ORDER_ITEMS = TableSpec(
    name="order_items",
    layer="silver",
    description="One row per order line (order_id, line_no), latest version by updated_at.",
    source_prefix="order_items",
    columns=(
        Column("order_id", "string", nullable=False),
        Column("line_no", "int64", nullable=False),
        Column("product_id", "string"),
        Column("category", "string"),
        Column("quantity", "int64"),
        Column("unit_price", "decimal(12,2)"),
        Column("updated_at", "timestamp", nullable=False),
    ),
    keys=("order_id", "line_no"),
    order_by="updated_at",
    checks=(
        Check("missing", column="order_id", max_percent=10),
        Check("missing", column="line_no", max_percent=10),
        Check("missing", column="updated_at", max_percent=10),
        Check("missing", column="product_id", max_percent=10),
        Check("range", column="quantity", min=1, max=1000, max_percent=10),
        Check("range", column="unit_price", min=0, max=100000, max_percent=10),
        Check("duplicate", columns=("order_id", "line_no")),
        Check("row_count", min_rows=1),
        Check("schema"),
    ),
)

DAILY_SALES = TableSpec(
    name="daily_sales",
    layer="gold",
    description="Sales per day and product: quantity, revenue, orders (cancelled excluded).",
    columns=(
        Column("order_date", "date", nullable=False),
        Column("product_id", "string", nullable=False),
        Column("category", "string"),
        Column("quantity", "int64"),
        Column("revenue", "decimal(18,2)"),
        Column("orders", "int64"),
    ),
    keys=("order_date", "product_id"),
    partition_by="order_date",
    checks=(
        Check("missing", column="order_date"),
        Check("missing", column="product_id"),
        Check("range", column="quantity", min=0),
        Check("range", column="revenue", min=0),
        Check("duplicate", columns=("order_date", "product_id")),
        Check("schema"),
    ),
)

DATASETS = (ORDERS, ORDER_ITEMS)
GOLD = (DAILY_SALES,)
