from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.dev.shop import DAILY_SALES, ORDER_ITEMS, ORDERS
from lakehouse.layers.gold.models import run_model, touched_partitions
from lakehouse.layers.silver.transform import collapse, parse_records, unknown_field_counts
from lakehouse.specs import Column, TableSpec

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
    reasons = out.get_column("_reject_reason").to_list()
    assert reasons[0] == "quantity -1 out of range [1, 1000]"
    # a JSON string is not an int64 (the shop does not declare strings_as_numbers) …
    assert reasons[1].startswith("wrong type: line_no '2' is a JSON string, not int64")
    # … but a decimal may be a JSON number or a string holding it (exact money)
    assert out.get_column("unit_price").to_list() == [Decimal("1.50"), Decimal("19.99")]
    assert out.get_column("line_no").to_list() == [1, None]


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


VERSIONS = pl.DataFrame(
    {"product_id": ["P1", "P2"], "category": ["toys", "toys"], "valid_from": [datetime(2025, 12, 1, tzinfo=UTC)] * 2,
     "valid_to": [None, None]},
    schema={"product_id": pl.String, "category": pl.String, "valid_from": pl.Datetime("us", "UTC"), "valid_to": pl.Datetime("us", "UTC")},
).to_arrow()
"""``silver.product_history``: one version of each product, valid since before the orders (none changes here)."""


def _orders(frame: pl.DataFrame) -> pl.DataFrame:
    """Orders as the model reads them: a customer and an order time besides the test's columns."""
    return frame.with_columns(pl.lit("C-1").alias("customer_id"), pl.lit(T0).alias("ordered_at"))


def _items(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.lit(Decimal("0.00")).cast(pl.Decimal(12, 2)).alias("discount")) if "discount" not in frame.columns else frame


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
    out = pl.from_arrow(run_model(DAILY_SALES.sql, {"orders": _orders(orders).to_arrow(), "order_items": _items(items).to_arrow(),
                                                    "product_history": VERSIONS}))
    row = out.row(0, named=True)
    assert out.height == 1
    assert row["quantity"] == 6  # O1 (3 + 1) and O3 (2); O2 cancelled, O4 has no order yet
    assert row["revenue"] == Decimal("0.50")  # 0.30 + 0.10 + 0.10, exact
    assert row["orders"] == 2


def test_touched_partitions_include_the_old_and_the_new_day() -> None:
    day1, day2 = date(2026, 1, 1), date(2026, 1, 2)
    orders_old = _orders(pl.DataFrame({"order_id": ["O1", "O2"], "status": ["paid", "paid"], "order_date": [day2, day2]}))
    orders_new = _orders(pl.DataFrame({"order_id": ["O1", "O2"], "status": ["paid", "paid"], "order_date": [day1, day2]}))
    items = pl.DataFrame({"order_id": ["O1", "O2"], "line_no": [1, 1], "product_id": ["P1", "P2"],
                          "category": ["toys", "toys"], "quantity": [1, 1],
                          "unit_price": pl.Series([Decimal("1.00")] * 2, dtype=pl.Decimal(12, 2))}).pipe(_items)
    # O1 moved from day 2 to day 1: its pre-image and post-image are the change
    changes = _orders(pl.DataFrame({"order_id": ["O1", "O1"], "status": ["paid", "paid"], "order_date": [day2, day1]}))
    touched = touched_partitions(
        DAILY_SALES.sql, "order_date",
        changes={"orders": changes.to_arrow()},
        old={"orders": orders_old.to_arrow(), "order_items": items.to_arrow()},
        current={"orders": orders_new.to_arrow(), "order_items": items.to_arrow(), "product_history": VERSIONS},
    )
    assert touched == [day1, day2]
    # a late line of O2 touches O2's day only
    late = items.filter(pl.col("order_id") == "O2").with_columns(pl.lit(2).cast(pl.Int64).alias("line_no"))
    touched = touched_partitions(
        DAILY_SALES.sql, "order_date",
        changes={"order_items": late.to_arrow()},
        old={"orders": orders_new.to_arrow(), "order_items": items.to_arrow()},
        current={"orders": orders_new.to_arrow(), "order_items": pl.concat([items, late]).to_arrow(), "product_history": VERSIONS},
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


# ------------------------------------------------------------------ bad input, typed strictly (issue 11)

PAYMENTS = TableSpec(
    name="payments",
    layer="silver",
    columns=(
        Column("payment_id", "int64", nullable=False),
        Column("note", "string"),
        Column("amount", "decimal(12,2)", nullable=False),
        Column("captured", "bool"),
        Column("rate", "float64"),
        Column("paid_on", "date"),
        Column("paid_at", "timestamp"),
    ),
    keys=("payment_id",),
)


def payment(**override: object) -> str:
    rec: dict[str, object] = {"payment_id": 1, "note": "n", "amount": "9.99", "captured": True, "rate": 0.5,
                              "paid_on": "2026-01-01", "paid_at": "2026-01-01T00:00:00Z"}
    rec.update(override)
    return json.dumps({k: v for k, v in rec.items() if v is not ...})


def reasons(spec: TableSpec, *raw: str) -> list[str | None]:
    return parse_records(lines(*raw), spec).collect().get_column("_reject_reason").to_list()


def test_a_null_in_a_column_declared_not_nullable_is_rejected() -> None:
    got = reasons(PAYMENTS, payment(), payment(amount=None), payment(amount=...), payment(note=None))
    assert got == [None, "missing amount: declared nullable: false", "missing amount: declared nullable: false", None]


def test_json_types_are_checked_before_casting() -> None:
    got = reasons(
        PAYMENTS,
        payment(payment_id="9023000"),                 # a string is not a number
        payment(captured="true"),                      # nor a bool
        payment(rate="0.5"),
        payment(note={"a": 1}),                        # an object is not a string
        payment(note=[1]),
        payment(note=12),                              # a number is not a string
        payment(payment_id=2.0),                       # a fraction is not an integer
        payment(payment_id=18446744073709551615),      # beyond int64
        payment(amount=12345678901234567890.12),       # a double cannot hold it exactly
        payment(amount=19.5),                          # a JSON number is fine for a decimal
    )
    expected = [
        "wrong type: payment_id '9023000' is a JSON string, not int64 (declare strings_as_numbers",
        "wrong type: captured 'true' is a JSON string, not bool",
        "wrong type: rate '0.5' is a JSON string, not float64 (declare strings_as_numbers",
        "wrong type: note '{\"a\":1}' is a JSON object, not string",
        "wrong type: note '[1]' is a JSON array, not string",
        "wrong type: note '12' is a JSON number, not string",
        "wrong type: payment_id '2.0' is not an integer",
        "wrong type: payment_id '18446744073709551615' is not int64",
        "wrong type: amount '1.2345678901234567e+19' is a JSON number too large to be exact",
    ]
    for reason, prefix in zip(got, expected, strict=False):
        assert reason is not None and reason.startswith(prefix), (reason, prefix)
    assert got[9] is None


def test_strings_as_numbers_is_an_explicit_opt_in() -> None:
    lenient = replace(PAYMENTS, columns=tuple(
        replace(c, strings_as_numbers=c.dtype in ("int64", "float64")) for c in PAYMENTS.columns
    ))
    got = reasons(lenient, payment(payment_id="9023000", rate="0.5"), payment(payment_id=" 7"), payment(rate="1e3"),
                  payment(payment_id="0x10"), payment(captured="true"))
    assert got[0] is None and got[2] is None
    assert got[1].startswith("wrong type: payment_id ' 7' is not int64 text")
    assert got[3].startswith("wrong type: payment_id '0x10' is not int64 text")
    assert got[4].startswith("wrong type: captured 'true' is a JSON string, not bool")
    out = parse_records(lines(payment(payment_id="9023000", rate="0.5")), lenient).collect()
    assert out.row(0, named=True)["payment_id"] == 9023000 and out.row(0, named=True)["rate"] == 0.5


def test_dates_and_timestamps_are_strict() -> None:
    got = reasons(
        PAYMENTS,
        payment(paid_on="2026-1-1"),
        payment(paid_on="2026-01-01T00:00:00Z"),
        payment(paid_at="2026-01-01T23:59:60Z"),
        payment(paid_at="2026-01-01T00:00:00.123456789Z"),
        payment(paid_at="2026-01-01 00:00:00Z"),
        payment(paid_at="2026-01-01T00:00:00+0100"),
        payment(paid_at="2026-01-01T00:00:00.123456000Z"),   # nothing lost: accepted
        payment(paid_at="2026-01-01T01:00:00.5+01:00"),
    )
    assert got[0].startswith("wrong type: paid_on '2026-1-1' is not a date (YYYY-MM-DD)")
    assert got[1].startswith("wrong type: paid_on '2026-01-01T00:00:00Z' is not a date")
    assert got[2].startswith("wrong type: paid_at '2026-01-01T23:59:60Z' has second 60")
    assert got[3].startswith("wrong type: paid_at '2026-01-01T00:00:00.123456789Z' is more precise than microseconds")
    assert got[4].startswith("wrong type: paid_at '2026-01-01 00:00:00Z' is not an RFC 3339 timestamp")
    assert got[5].startswith("wrong type: paid_at '2026-01-01T00:00:00+0100' is not an RFC 3339 timestamp")
    assert got[6:] == [None, None]
    out = parse_records(lines(payment(paid_at="2026-01-01T01:00:00.5+01:00")), PAYMENTS).collect()
    assert out.row(0, named=True)["paid_at"] == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)


def test_text_records_from_csv_are_parsed_by_strict_text_formats() -> None:
    text = replace(PAYMENTS, record_values="text")
    row = {"payment_id": "1", "note": "12", "amount": "9.99", "captured": "true", "rate": "0.5",
           "paid_on": "2026-01-01", "paid_at": "2026-01-01T00:00:00Z"}
    got = reasons(
        text, json.dumps(row), json.dumps({**row, "payment_id": "1.0"}), json.dumps({**row, "captured": "yes"}),
        json.dumps({**row, "captured": "TRUE"}), json.dumps({**row, "paid_on": "2026-1-1"}),
    )
    assert got[0] is None
    assert got[1].startswith("wrong type: payment_id '1.0' is not int64 text")
    assert got[2].startswith("wrong type: captured 'yes' is not bool text (true or false)")
    assert got[3].startswith("wrong type: captured 'TRUE' is not bool text")
    assert got[4].startswith("wrong type: paid_on '2026-1-1' is not a date")
    out = parse_records(lines(json.dumps(row)), text).collect().row(0, named=True)
    assert (out["payment_id"], out["note"], out["captured"]) == (1, "12", True)


def test_duplicate_members_nan_and_deep_nesting_are_not_records() -> None:
    got = reasons(PAYMENTS, payment()[:-1] + ', "amount": "1.00"}', payment(rate=float("nan")),
                  payment(meta=json.loads("[" * 200 + "]" * 200)), payment(meta=json.loads("[" * 20 + "]" * 20)))
    assert got == ["malformed: member amount appears twice", "malformed: not a parseable JSON object",
                   "malformed: not a parseable JSON object", None]


def test_unknown_and_renamed_members_are_reported_and_can_fail_the_record() -> None:
    raw = [payment(coupon="X"), payment(amount=..., AMOUNT="1.00"), payment(**{" amount": "1.00", "amount": "1.00"}), payment()]
    out = parse_records(lines(*raw), PAYMENTS).collect()
    assert out.get_column("_unknown_fields").to_list() == [["coupon"], ["AMOUNT (looks like amount)"], [" amount (looks like amount)"], []]
    assert unknown_field_counts(out) == {" amount (looks like amount)": 1, "AMOUNT (looks like amount)": 1, "coupon": 1}
    # warn: reported, the record stands or falls by its columns (amount is declared nullable: false)
    assert out.get_column("_reject_reason").to_list() == [None, "missing amount: declared nullable: false", None, None]
    strict = parse_records(lines(*raw), replace(PAYMENTS, unknown_fields="fail")).collect()
    assert strict.get_column("_reject_reason").to_list() == [
        "unknown field coupon: unknown_fields: fail",
        "missing amount: declared nullable: false; unknown field AMOUNT (looks like amount): unknown_fields: fail",
        "unknown field  amount (looks like amount): unknown_fields: fail",
        None,
    ]
