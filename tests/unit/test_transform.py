from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.models import run_model, touched_partitions
from lakehouse.shop import DAILY_SALES, ORDER_ITEMS, ORDERS
from lakehouse.transform import collapse, parse_records

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def lines(*raw: str, position: str = "orders/2026/01/01/00/01/part-0.jsonl") -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "_raw": list(raw),
            "_batch_id": "b1",
            "_source_position": position,
            "_line": list(range(1, len(raw) + 1)),
            "_landed_at": T0,
        }
    ).lazy()


def order(oid: str | None, status: str = "placed", updated: str = "00:01", ordered: str = "00:01") -> str:
    key = "" if oid is None else f'"order_id": "{oid}", '
    return (
        "{" + key + f'"customer_id": "C1", "status": "{status}", '
        f'"ordered_at": "2026-01-01T{ordered}:00Z", "updated_at": "2026-01-01T{updated}:00Z"' + "}"
    )


def test_parse_types_fields_and_derives_the_partition() -> None:
    out = parse_records(lines(order("O1")), ORDERS).collect()
    assert out.schema["ordered_at"] == pl.Datetime("us", "UTC")
    assert out.row(0, named=True)["order_date"] == date(2026, 1, 1)
    assert out.row(0, named=True)["_reject_reason"] is None


def test_parse_rejects_with_reasons_and_keeps_the_raw_text() -> None:
    raw = [
        "{truncated",
        order(None),
        order("O2", status="lost"),
        '{"order_id": "O3", "customer_id": "C1", "status": "paid", "ordered_at": "2026-01-01T00:00:00", "updated_at": "2026-01-01T00:00:00Z"}',
    ]
    out = parse_records(lines(*raw), ORDERS).collect()
    reasons = out.get_column("_reject_reason").to_list()
    assert reasons[0].startswith("malformed")
    assert "missing order_id" in reasons[1]
    assert "invalid status: 'lost'" in reasons[2]
    assert "wrong type: ordered_at" in reasons[3]
    assert out.get_column("_raw").to_list() == raw


def test_parse_item_checks_ranges_and_decimals() -> None:
    raw = [
        '{"order_id": "O1", "line_no": 1, "product_id": "P1", "category": "toys", "quantity": -1, "unit_price": "1.50", "updated_at": "2026-01-01T00:00:00Z"}',
        '{"order_id": "O1", "line_no": "2", "product_id": "P1", "category": "toys", "quantity": 3, "unit_price": 19.99, "updated_at": "2026-01-01T00:00:00Z"}',
    ]
    out = parse_records(lines(*raw), ORDER_ITEMS, {"reference(product_id)": pl.Series(["P1"])}).collect()
    assert out.get_column("_reject_reason").to_list() == ["quantity -1 out of range [1, 1000]", None]
    assert out.get_column("unit_price").to_list()[1] == Decimal("19.99")
    assert out.get_column("line_no").to_list() == [1, 2]


def test_collapse_keeps_latest_update_then_latest_ingestion() -> None:
    raw = [
        order("O1", "paid", updated="00:05"),
        order("O1", "placed", updated="00:01"),  # older version arriving later: loses
        order("O2", "paid", updated="00:03"),
        order("O2", "shipped", updated="00:03"),  # tie on updated_at: later line wins
    ]
    parsed = parse_records(lines(*raw), ORDERS)
    out = collapse(parsed, ORDERS).collect().sort("order_id")
    assert out.get_column("status").to_list() == ["paid", "shipped"]


def test_collapse_does_not_depend_on_input_order() -> None:
    raw = [order("O1", s, updated=u) for s, u in [("placed", "00:01"), ("paid", "00:02"), ("shipped", "00:03")]]
    parsed = parse_records(lines(*raw), ORDERS).collect()
    forward = collapse(parsed.lazy(), ORDERS).collect()
    backward = collapse(parsed.reverse().lazy(), ORDERS).collect()
    assert_frame_equal(forward, backward)


def test_daily_sales_sums_money_exactly_and_skips_cancelled() -> None:
    orders = pl.DataFrame(
        {"order_id": ["O1", "O2", "O3"], "status": ["paid", "cancelled", "placed"],
         "order_date": [date(2026, 1, 1)] * 3}
    )
    items = pl.DataFrame(
        {
            "order_id": ["O1", "O1", "O2", "O3", "O4"],
            "line_no": [1, 2, 1, 1, 1],
            "product_id": ["P1"] * 5,
            "category": ["toys"] * 5,
            "quantity": [3, 1, 5, 2, 9],
            "unit_price": pl.Series([Decimal("0.10"), Decimal("0.10"), Decimal("9.99"), Decimal("0.05"), Decimal("1")], dtype=pl.Decimal(12, 2)),
        }
    )
    out = pl.from_arrow(run_model(DAILY_SALES.sql, {"orders": orders.to_arrow(), "order_items": items.to_arrow()}))
    row = out.row(0, named=True)
    assert out.height == 1
    assert row["quantity"] == 6  # O1 (3 + 1) and O3 (2); O2 cancelled, O4 has no order yet
    assert row["revenue"] == Decimal("0.50")  # 0.30 + 0.10 + 0.10, exact
    assert row["orders"] == 2


def test_touched_partitions_include_the_old_and_the_new_day() -> None:
    day1, day2 = date(2026, 1, 1), date(2026, 1, 2)
    orders_old = pl.DataFrame({"order_id": ["O1", "O2"], "status": ["paid", "paid"], "order_date": [day2, day2]})
    orders_new = pl.DataFrame({"order_id": ["O1", "O2"], "status": ["paid", "paid"], "order_date": [day1, day2]})
    items = pl.DataFrame({"order_id": ["O1", "O2"], "line_no": [1, 1], "product_id": ["P1", "P2"],
                          "category": ["toys", "toys"], "quantity": [1, 1],
                          "unit_price": pl.Series([Decimal("1.00")] * 2, dtype=pl.Decimal(12, 2))})
    # O1 moved from day 2 to day 1: its pre-image and post-image are the change
    changes = pl.DataFrame({"order_id": ["O1", "O1"], "status": ["paid", "paid"], "order_date": [day2, day1]})
    touched = touched_partitions(
        DAILY_SALES.sql, "order_date",
        changes={"orders": changes.to_arrow()},
        old={"orders": orders_old.to_arrow(), "order_items": items.to_arrow()},
        current={"orders": orders_new.to_arrow(), "order_items": items.to_arrow()},
    )
    assert touched == [day1, day2]
    # a late line of O2 touches O2's day only
    late = items.filter(pl.col("order_id") == "O2").with_columns(pl.lit(2).cast(pl.Int64).alias("line_no"))
    touched = touched_partitions(
        DAILY_SALES.sql, "order_date",
        changes={"order_items": late.to_arrow()},
        old={"orders": orders_new.to_arrow(), "order_items": items.to_arrow()},
        current={"orders": orders_new.to_arrow(), "order_items": pl.concat([items, late]).to_arrow()},
    )
    assert touched == [day2]


def test_a_reference_rule_quarantines_unknown_keys_and_lets_nulls_to_the_missing_rule() -> None:
    raw = [
        '{"order_id": "O1", "line_no": 1, "product_id": "P1", "quantity": 1, "unit_price": "1.50", "updated_at": "2026-01-01T00:00:00Z"}',
        '{"order_id": "O1", "line_no": 2, "product_id": "P404", "quantity": 1, "unit_price": "1.50", "updated_at": "2026-01-01T00:00:00Z"}',
        '{"order_id": "O1", "line_no": 3, "product_id": null, "quantity": 1, "unit_price": "1.50", "updated_at": "2026-01-01T00:00:00Z"}',
    ]
    out = parse_records(lines(*raw), ORDER_ITEMS, {"reference(product_id)": pl.Series(["P1", "P2"])}).collect()
    assert out.get_column("_reject_reason").to_list() == [
        None, "unknown product_id: 'P404' is not in silver.products", "missing product_id",
    ]
    with pytest.raises(ValueError, match="keys of products were not given"):
        parse_records(lines(*raw), ORDER_ITEMS).collect()
