"""Real Soda v4 scans over small in-memory batches."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import yaml

from lakehouse.gates import build_contract, run_gate
from lakehouse.shop import ORDER_ITEMS, ORDERS
from lakehouse.specs import Check, Column, TableSpec

T = datetime(2026, 1, 1, tzinfo=UTC)


def orders(n: int = 20, *, missing: int = 0, bad_status: int = 0) -> pl.DataFrame:
    ids = [None if i < missing else f"O{i}" for i in range(n)]
    status = ["lost" if i < bad_status else "paid" for i in range(n)]
    return pl.DataFrame(
        {"order_id": ids, "customer_id": "C1", "status": status, "ordered_at": T, "updated_at": T,
         "order_date": date(2026, 1, 1)},
        schema=ORDERS.polars_schema(),
    )


def items(keys: list[tuple[str, int]], quantity: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {"order_id": [k[0] for k in keys], "line_no": [k[1] for k in keys], "product_id": "P1",
         "category": "toys", "quantity": quantity, "unit_price": Decimal("1.50"), "updated_at": T},
        schema=ORDER_ITEMS.polars_schema(),
    )


def test_a_clean_batch_passes_both_gates() -> None:
    for strict in (False, True):
        result = run_gate(orders(), ORDERS, stage="s", strict=strict)
        assert result.passed, result.summary()
        assert result.rows == 20


def test_most_keys_missing_blocks_and_names_the_check_with_its_value() -> None:
    result = run_gate(orders(missing=12), ORDERS, stage="bronze_to_silver", strict=False)
    assert not result.passed
    assert result.failed_checks() == ["missing(order_id)"]
    check = next(c for c in result.checks if c.name == "missing(order_id)")
    assert check.value == 60.0 and check.threshold == "<= 10%"
    assert "missing(order_id) (60 vs <= 10%)" in result.summary()


def test_a_few_missing_keys_pass_the_batch_gate_but_not_the_strict_one() -> None:
    assert run_gate(orders(missing=1), ORDERS, stage="s", strict=False).passed
    assert not run_gate(orders(missing=1), ORDERS, stage="s", strict=True).passed


def test_invalid_values_and_ranges() -> None:
    assert run_gate(orders(bad_status=5), ORDERS, stage="s", strict=False).failed_checks() == ["valid_values(status)"]
    bad = run_gate(items([("O1", 1), ("O2", 1)], quantity=-1), ORDER_ITEMS, stage="s", strict=False)
    assert bad.failed_checks() == ["range(quantity)"]


def test_duplicates_fail_strict_and_are_skipped_in_a_raw_batch() -> None:
    batch = items([("O1", 1), ("O1", 2), ("O1", 2)])
    assert run_gate(batch, ORDER_ITEMS, stage="s", strict=False).passed
    strict = run_gate(batch, ORDER_ITEMS, stage="s", strict=True)
    assert strict.failed_checks() == ["duplicate(order_id,line_no)"]
    assert run_gate(items([("O1", 1), ("O1", 2)]), ORDER_ITEMS, stage="s", strict=True).passed


def test_an_empty_batch_fails_row_count_without_crashing() -> None:
    result = run_gate(orders().clear(), ORDERS, stage="s", strict=False)
    assert result.failed_checks() == ["row_count"]


def test_schema_fails_on_a_missing_column_or_a_wrong_type() -> None:
    assert "schema" in run_gate(orders().drop("customer_id"), ORDERS, stage="s", strict=False).failed_checks()
    retyped = items([("O1", 1)]).with_columns(pl.col("unit_price").cast(pl.Float64))
    assert run_gate(retyped, ORDER_ITEMS, stage="s", strict=False).failed_checks() == ["schema"]
    lineage = orders().with_columns(pl.lit("b1").alias("_batch_id"))
    assert run_gate(lineage, ORDERS, stage="s", strict=True).passed


def test_a_warn_level_failure_does_not_block() -> None:
    spec = TableSpec(
        name="t", layer="silver", columns=(Column("k", "string"), Column("v", "int64")), keys=("k",),
        checks=(Check("range", column="v", min=0, level="warn"), Check("missing", column="k")),
    )
    result = run_gate(pl.DataFrame({"k": ["a", "b"], "v": [-1, 1]}), spec, stage="s", strict=True)
    assert result.passed
    assert result.warnings() == ["range(v)"]


def test_the_contract_is_derived_from_the_spec() -> None:
    contract = yaml.safe_load(build_contract(ORDER_ITEMS, dataset="lake/main/batch", strict=False))
    assert contract["dataset"] == "lake/main/batch"
    assert [c["name"] for c in contract["columns"]] == ORDER_ITEMS.column_names
    price = next(c for c in contract["columns"] if c["name"] == "unit_price")
    assert price["numeric_precision"] == 12 and price["numeric_scale"] == 2
    assert not any("duplicate" in c for c in contract["checks"])  # raw batches hold versions
