"""Real Soda v4 scans over small in-memory batches (no mocks)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest
import yaml

from lakehouse.dev.shop import ORDER_ITEMS, ORDERS
from lakehouse.quality import TYPES_CHECK, CheckOutcome, GateResult, build_contract, run_gate
from lakehouse.specs import Check, Column, TableSpec

T = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCT_KEYS = {"reference(product_id)": pl.Series(["P1", "P2"])}


def gate(batch, spec: TableSpec, **kwargs):  # type: ignore[no-untyped-def]
    """``run_gate`` with the products the items refer to, ten minutes after ``T``."""
    kwargs.setdefault("references", PRODUCT_KEYS)
    kwargs.setdefault("now", T + timedelta(minutes=10))
    return run_gate(batch, spec, **kwargs)


def orders(n: int = 20, *, missing: int = 0, bad_status: int = 0) -> pl.DataFrame:
    ids = [None if i < missing else f"O{i}" for i in range(n)]
    status = ["lost" if i < bad_status else "paid" for i in range(n)]
    return pl.DataFrame(
        {"order_id": ids, "customer_id": "C1", "status": status, "ordered_at": T, "updated_at": T,
         "order_date": date(2026, 1, 1)},
        schema=ORDERS.polars_schema(),
    )


def items(keys: list[tuple[str, int]], quantity: int | None = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {"order_id": [k[0] for k in keys], "line_no": [k[1] for k in keys], "product_id": "P1",
         "category": "toys", "quantity": quantity, "unit_price": Decimal("1.50"), "discount": Decimal("0.00"), "updated_at": T},
        schema=ORDER_ITEMS.polars_schema(),
    )


def outcome(result: GateResult, name: str) -> CheckOutcome:
    return next(c for c in result.checks if c.name == name)


def test_a_clean_batch_passes_both_gates() -> None:
    for strict in (False, True):
        result = gate(orders(), ORDERS, stage="bronze_to_silver", strict=strict)
        assert result.passed, result.summary()
        assert result.rows == 20 and result.table == "silver.orders"
        assert all(c.passed for c in result.checks)
        assert result.failed_checks() == [] and result.summary().endswith(f"passed {len(result.checks)} checks")
        gated = [c.name for c in ORDERS.checks if (c.kind not in ("reference", "freshness") if strict else c.kind != "duplicate")]
        assert [c.name for c in result.checks] == gated
        clean_items = gate(items([("O1", 1), ("O1", 2)]), ORDER_ITEMS, stage="silver_to_gold", strict=strict)
        assert clean_items.passed, clean_items.summary()


def test_most_keys_missing_blocks_and_names_the_check_with_its_value() -> None:
    result = gate(orders(missing=12), ORDERS, stage="bronze_to_silver", strict=False)
    assert not result.passed
    assert result.failed_checks() == ["missing(order_id)"]
    check = outcome(result, "missing(order_id)")
    assert check.value == pytest.approx(60.0) and check.threshold == "<= 10%" and check.level == "fail"
    assert result.summary() == "silver.orders bronze_to_silver: FAILED missing(order_id) (60% > 10%)"


def test_a_few_missing_keys_pass_the_batch_gate_but_not_the_strict_one() -> None:
    batch = orders(missing=1)  # 1 of 20: 5%
    lenient = gate(batch, ORDERS, stage="bronze_to_silver", strict=False)
    assert lenient.passed, lenient.summary()
    assert outcome(lenient, "missing(order_id)").value == pytest.approx(5.0)
    strict = gate(batch, ORDERS, stage="silver_to_gold", strict=True)
    assert strict.failed_checks() == ["missing(order_id)"]
    assert outcome(strict, "missing(order_id)").threshold == "<= 0%"


def test_invalid_status_values() -> None:
    many = gate(orders(bad_status=5), ORDERS, stage="bronze_to_silver", strict=False)
    assert many.failed_checks() == ["valid_values(status)"]
    assert outcome(many, "valid_values(status)").value == pytest.approx(25.0)
    few = orders(bad_status=1)
    assert gate(few, ORDERS, stage="bronze_to_silver", strict=False).passed
    assert gate(few, ORDERS, stage="silver_to_gold", strict=True).failed_checks() == ["valid_values(status)"]
    # a missing status is not an invalid one
    nulls = orders().with_columns(pl.lit(None, pl.String).alias("status"))
    assert gate(nulls, ORDERS, stage="silver_to_gold", strict=True).passed


def test_range_violations_on_quantity() -> None:
    keys = [("O1", 1), ("O2", 1)]
    for quantity in (-1, 0, 1001):
        bad = gate(items(keys, quantity=quantity), ORDER_ITEMS, stage="bronze_to_silver", strict=False)
        assert bad.failed_checks() == ["range(quantity)"], quantity
        assert outcome(bad, "range(quantity)").value == pytest.approx(100.0)
    for quantity in (1, 1000, None):
        assert gate(items(keys, quantity=quantity), ORDER_ITEMS, stage="s", strict=True).passed, quantity
    one_bad = pl.concat([items([("O1", 1)], quantity=5000), items([(f"O{i}", 1) for i in range(2, 21)])])
    assert gate(one_bad, ORDER_ITEMS, stage="bronze_to_silver", strict=False).passed  # 5% <= 10%
    assert gate(one_bad, ORDER_ITEMS, stage="silver_to_gold", strict=True).failed_checks() == ["range(quantity)"]


def test_duplicate_keys_fail_strict_and_are_skipped_in_a_raw_batch() -> None:
    batch = pl.concat([orders(3), orders(3).head(1)])
    lenient = gate(batch, ORDERS, stage="bronze_to_silver", strict=False)
    assert lenient.passed and "duplicate(order_id)" not in [c.name for c in lenient.checks]
    strict = gate(batch, ORDERS, stage="silver_to_gold", strict=True)
    assert strict.failed_checks() == ["duplicate(order_id)"]
    check = outcome(strict, "duplicate(order_id)")
    assert check.value == 1.0 and check.threshold == "= 0 duplicate rows"
    assert "duplicate(order_id) (1 != 0 duplicate rows)" in strict.summary()


def test_a_composite_key_is_duplicate_only_when_every_part_repeats() -> None:
    distinct = items([("O1", 1), ("O1", 2), ("O2", 1)])
    assert gate(distinct, ORDER_ITEMS, stage="silver_to_gold", strict=True).passed
    repeated = items([("O1", 1), ("O1", 2), ("O1", 2)])
    assert gate(repeated, ORDER_ITEMS, stage="bronze_to_silver", strict=False).passed
    strict = gate(repeated, ORDER_ITEMS, stage="silver_to_gold", strict=True)
    assert strict.failed_checks() == ["duplicate(order_id,line_no)"]
    assert outcome(strict, "duplicate(order_id,line_no)").value == 1.0


def test_an_empty_batch_fails_row_count_without_crashing() -> None:
    for strict in (False, True):
        result = gate(orders().clear(), ORDERS, stage="bronze_to_silver", strict=strict)
        assert result.rows == 0 and not result.passed
        assert result.failed_checks() == ["row_count"]
        assert outcome(result, "row_count").value == 0.0
        assert outcome(result, "missing(order_id)").passed and outcome(result, "missing(order_id)").value is None
        assert "row_count (0 < 1 rows)" in result.summary()


def test_schema_fails_on_a_missing_column() -> None:
    result = gate(orders().drop("customer_id"), ORDERS, stage="bronze_to_silver", strict=False)
    assert result.failed_checks() == ["schema"]
    assert outcome(result, "schema").value == 1.0
    # a missing column that other checks need: they cannot be measured, so they fail too
    keyless = gate(orders().drop("order_id"), ORDERS, stage="silver_to_gold", strict=True)
    assert keyless.failed_checks() == ["missing(order_id)", "duplicate(order_id)", "schema"]
    assert outcome(keyless, "missing(order_id)").value is None
    assert outcome(keyless, "row_count").passed  # the rest of the contract still ran
    nothing = gate(pl.DataFrame({"_batch_id": ["b1"]}), ORDERS, stage="bronze_to_silver", strict=False)
    assert not nothing.passed and nothing.rows == 1 and "schema" in nothing.failed_checks()


def test_schema_fails_on_a_wrong_type_even_one_soda_calls_a_synonym() -> None:
    base = items([("O1", 1)])
    for column, dtype in [("unit_price", pl.Float64), ("unit_price", pl.Decimal(18, 3)),
                          ("line_no", pl.Int32), ("quantity", pl.Decimal(12, 0)),
                          ("unit_price", pl.Int64), ("updated_at", pl.Datetime("us"))]:
        retyped = base.with_columns(pl.col(column).cast(dtype))
        result = gate(retyped, ORDER_ITEMS, stage="bronze_to_silver", strict=False)
        assert result.failed_checks() == ["schema"], (column, dtype, result.summary())
        assert outcome(result, "schema").value == 1.0


def test_schema_ignores_lineage_columns_and_column_order_but_not_undeclared_columns() -> None:
    lineage = orders().with_columns(pl.lit("b1").alias("_batch_id"), pl.lit("f").alias("_source_file"))
    assert gate(lineage, ORDERS, stage="silver_to_gold", strict=True).passed
    reordered = orders().select(list(reversed(ORDERS.column_names)))
    assert gate(reordered, ORDERS, stage="silver_to_gold", strict=True).passed
    extra = orders().with_columns(pl.lit("x").alias("note"))
    assert gate(extra, ORDERS, stage="bronze_to_silver", strict=False).failed_checks() == ["schema"]


def test_an_arrow_table_is_gated_like_a_polars_frame() -> None:
    typed = orders().to_arrow().cast(ORDERS.arrow_schema())  # large_string, timestamp[us, UTC], date32
    assert gate(typed.append_column("_batch_id", pa.array(["b1"] * 20)), ORDERS, stage="s", strict=True).passed
    missing = orders(missing=12).to_arrow().append_column("_row", pa.array(range(20)))
    result = gate(missing, ORDERS, stage="bronze_to_silver", strict=False)
    assert result.failed_checks() == ["missing(order_id)"] and result.rows == 20


def test_a_warn_level_failure_does_not_block() -> None:
    spec = TableSpec(
        name="t", layer="silver", columns=(Column("k", "string"), Column("v", "int64")), keys=("k",),
        checks=(Check("range", column="v", min=0, level="warn"), Check("missing", column="k"),
                Check("schema", level="warn")),
    )
    frame = pl.DataFrame({"k": ["a", "b"], "v": [-1, 1]}, schema={"k": pl.String, "v": pl.Int64})
    result = gate(frame, spec, stage="silver_to_gold", strict=True)
    assert result.passed and result.failed_checks() == []
    assert result.warnings() == ["range(v)"]
    warned = outcome(result, "range(v)")
    assert not warned.passed and warned.level == "warn" and warned.value == pytest.approx(50.0)
    assert "warnings: range(v) (50% > 0%)" in result.summary()
    # a warn-level schema check does not block either (Soda's schema check has no level)
    retyped = gate(frame.with_columns(pl.col("v").cast(pl.Int32)), spec, stage="s", strict=False)
    assert retyped.passed and retyped.warnings() == ["range(v)", "schema"]


def test_the_contract_is_derived_from_the_spec() -> None:
    lenient = yaml.safe_load(build_contract(ORDER_ITEMS, dataset="lake/main/batch", strict=False))
    assert lenient["dataset"] == "lake/main/batch"
    assert [c["name"] for c in lenient["columns"]] == ORDER_ITEMS.column_names
    price = next(c for c in lenient["columns"] if c["name"] == "unit_price")
    assert (price["data_type"], price["numeric_precision"], price["numeric_scale"]) == ("decimal", 12, 2)
    assert price["checks"] == [{"invalid": {"name": "range(unit_price)", "valid_min": 0, "valid_max": 100000,
                                            "threshold": {"metric": "percent", "must_be_less_than_or_equal": 10}}}]
    kinds = [next(iter(c)) for c in lenient["checks"]]
    assert kinds == ["row_count", "schema", "failed_rows"]  # raw batches hold versions: no duplicate
    types = lenient["checks"][2]["failed_rows"]
    assert types["name"] == TYPES_CHECK and "'TIMESTAMP WITH TIME ZONE'" in types["query"]

    strict = yaml.safe_load(build_contract(ORDER_ITEMS, dataset="lake/main/batch", strict=True))
    assert strict["checks"][0] == {"duplicate": {"name": "duplicate(order_id,line_no)",
                                                 "columns": ["order_id", "line_no"], "threshold": {"must_be": 0}}}
    thresholds = [c[k]["threshold"] for col in strict["columns"] for c in col.get("checks", []) for k in c]
    assert thresholds and all(t["must_be_less_than_or_equal"] == 0 for t in thresholds)

    status = next(c for c in yaml.safe_load(build_contract(ORDERS, dataset="lake/main/o", strict=False))["columns"]
                  if c["name"] == "status")
    assert status["checks"][0]["invalid"]["valid_values"] == ["placed", "paid", "shipped", "delivered", "cancelled"]


def test_soda_chatter_stays_off_the_console(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    gate(orders(missing=12), ORDERS, stage="bronze_to_silver", strict=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [r for r in caplog.records if r.name.startswith("soda")] == []
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="lakehouse.quality.soda")
    gate(orders(), ORDERS, stage="bronze_to_silver", strict=False)
    routed = [r for r in caplog.records if r.name == "lakehouse.quality.soda"]
    assert routed and all(r.levelno == logging.DEBUG for r in routed)


def test_unknown_references_are_measured_against_the_given_keys() -> None:
    batch = items([(f"O{i}", 1) for i in range(10)]).with_columns(
        pl.when(pl.int_range(pl.len()) < 2).then(pl.lit("P404")).otherwise(pl.col("product_id")).alias("product_id")
    )
    result = gate(batch, ORDER_ITEMS, stage="bronze_to_silver", strict=False)
    check = outcome(result, "reference(product_id)")
    assert (check.passed, check.value, check.threshold) == (False, 20.0, "<= 10%")
    assert result.failed_checks() == ["reference(product_id)"]
    allowed = gate(batch, ORDER_ITEMS, stage="bronze_to_silver", strict=False,
                   references={"reference(product_id)": pl.Series(["P1", "P404"])})
    assert outcome(allowed, "reference(product_id)").value == 0.0 and allowed.passed
    assert "reference(product_id)" not in [c.name for c in gate(batch, ORDER_ITEMS, stage="silver_to_gold", strict=True).checks]
    with pytest.raises(ValueError, match="no reference keys"):
        run_gate(batch, ORDER_ITEMS, stage="bronze_to_silver", strict=False)


def test_freshness_is_measured_from_the_given_time_not_the_clock() -> None:
    fresh = gate(orders(), ORDERS, stage="bronze_to_silver", strict=False, now=T + timedelta(minutes=45))
    assert outcome(fresh, "freshness(updated_at)").value == 45.0 and fresh.passed
    stale = gate(orders(), ORDERS, stage="bronze_to_silver", strict=False, now=T + timedelta(hours=3))
    check = outcome(stale, "freshness(updated_at)")
    assert (check.passed, check.value, check.level) == (False, 180.0, "warn")
    assert stale.passed and stale.warnings() == ["freshness(updated_at)"]
    assert "freshness(updated_at) (180 min > 60 min)" in stale.summary()


def test_a_long_lived_worker_keeps_nothing_of_its_earlier_scans() -> None:
    """Soda makes each scan's log collector active in the thread and links it to the one
    before: kept active, every scan stayed reachable (its log records and parsed contract),
    1.4–2 MB a window in a worker that runs hundreds (the soak's RSS slope)."""
    import gc

    gate(orders(), ORDERS, stage="bronze_to_silver", strict=False)  # imports soda (lakehouse.quality.soda quiets its warnings)
    from soda_core.common.logs import Logs

    def live_collectors() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, Logs))

    before = live_collectors()
    for _ in range(5):
        assert gate(orders(missing=3), ORDERS, stage="bronze_to_silver", strict=False).rows == 20
    assert live_collectors() == before
