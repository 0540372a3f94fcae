"""A kind of check is one module: a throwaway kind defined here, registered at test time,
works in the declaration, in quarantine and in the Soda gate without touching anything else.

Real declarations, real Delta tables in a local folder, real Soda scans (as in test_gates.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
import yaml

from lakehouse import checks
from lakehouse.checks import CheckKind, Contract, Declared, References
from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.errors import ConfigError
from lakehouse.layers import bronze, silver
from lakehouse.quality import build_contract, run_gate
from lakehouse.specs import Check
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at


class MaxLength(CheckKind):
    """``max_length: <column>`` with ``length: <n>``: a text value has at most ``n`` characters."""

    name = "max_length"
    options = {"length": (int | None, None)}
    row_level = True
    percent = True

    def validate(self, decl: Any) -> None:
        if decl.length is None or decl.length < 1:
            raise ValueError("a max_length check needs 'length: <characters>' of 1 or more")

    def build(self, decl: Any, declared: Declared) -> Check | None:
        column = declared.columns[self.value(decl)]
        if column.dtype != "string":
            declared.problem(f"a max_length check needs a string column; {column.name} is {column.dtype}")
            return None
        return super().build(decl, declared)

    def rule(self, check: Check, references: References) -> tuple[pl.Expr, pl.Expr]:
        col, length = pl.col(check.column), check.option("length")
        return (
            col.str.len_chars() > length,
            pl.format(f"{check.column} '{{}}' is longer than {length} characters", col),
        )

    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        body = {"name": check.name, "valid_max_length": check.option("length")}
        return [{"invalid": {**body, "threshold": contract.percent_threshold(check)}}]


@pytest.fixture
def max_length() -> Iterator[type[CheckKind]]:
    checks.register(MaxLength)
    yield MaxLength
    checks.unregister(MaxLength.name)


def declaration(*check_yaml: dict[str, Any]) -> str:
    return yaml.safe_dump({"pipelines": {"crm": {
        "sources": {"files": {"prefix": "crm"}},
        "datasets": {"customers": {
            "source": "files",
            "columns": {"customer_id": "string", "name": "string", "visits": "int64", "updated_at": "timestamp"},
            "key": "customer_id",
            "order_by": "updated_at",
            "checks": [{"missing": "customer_id"}, *check_yaml],
        }},
    }}})


def test_the_declaration_validates_and_builds_the_new_kind(max_length: type[CheckKind]) -> None:
    spec = parse(declaration({"max_length": "name", "length": 5, "max_percent": 60})).pipeline().dataset("customers").spec
    (check,) = [c for c in spec.checks if c.kind == "max_length"]
    assert (check.name, check.column, check.option("length"), check.max_percent) == ("max_length(name)", "name", 5, 60)

    with pytest.raises(ConfigError) as bad:
        parse(declaration({"max_length": "name"}))
    assert "pipelines.crm.datasets.customers.checks[1]: a max_length check needs 'length: <characters>'" in str(bad.value)
    with pytest.raises(ConfigError, match=r"checks\[1\]: a max_length check needs a string column; visits is int64"):
        parse(declaration({"max_length": "visits", "length": 3}))
    with pytest.raises(ConfigError, match=r"checks\[1\]\.lenght: unknown field"):
        parse(declaration({"max_length": "name", "length": 3, "lenght": 3}))
    with pytest.raises(ConfigError, match="exactly one of missing, valid_values, range, duplicate, reference, "
                                          "freshness, row_count, schema, max_length; found missing, max_length"):
        parse(declaration({"max_length": "name", "length": 3, "missing": "name"}))


def test_without_its_module_the_kind_is_unknown() -> None:
    with pytest.raises(ConfigError, match=r"checks\[1\]\.max_length: unknown field"):
        parse(declaration({"max_length": "name", "length": 5}))


START = datetime(2026, 1, 1, tzinfo=UTC)


def test_quarantine_and_the_gate_use_the_new_kind(max_length: type[CheckKind], tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, landing = Settings(), LocalStore(tmp_path / "landing")
    dataset = parse(declaration({"max_length": "name", "length": 5, "max_percent": 60})).pipeline().dataset("customers")
    records = [
        {"customer_id": "C1", "name": "Ada", "visits": 1, "updated_at": "2026-01-01T00:01:00Z"},
        {"customer_id": "C2", "name": "Bartholomew", "visits": 2, "updated_at": "2026-01-01T00:01:00Z"},
    ]
    landing.put("crm/customers/2026/01/01/00/01/part-0.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())
    window = window_ending_at(START + timedelta(minutes=15), timedelta(minutes=15))
    bronze.ingest(settings, dataset, window, landing=landing)

    batch = silver.prepare(settings, dataset, now=window.end)
    assert batch is not None
    (gated,) = [c for c in batch.gate.checks if c.name == "max_length(name)"]
    assert (gated.passed, gated.value, gated.threshold) == (True, 50.0, "<= 60%")  # one of two rows, Soda measured
    assert batch.gate.passed, batch.gate.summary()
    result = silver.commit(settings, batch)
    assert (result.counts.merged, result.counts.rejected) == (1, 1)

    quarantined = pl.read_delta(settings.table_uri("quarantine", "customers"))
    assert quarantined.select("_rule", "_reject_reason").to_dicts() == [
        {"_rule": "name", "_reject_reason": "name 'Bartholomew' is longer than 5 characters"}
    ]
    assert pl.read_delta(settings.table_uri("silver", "customers")).get_column("customer_id").to_list() == ["C1"]

    # the strict gate (silver→gold): any failing row fails, and the summary says by how much
    contract = yaml.safe_load(build_contract(dataset.spec, dataset="lake/main/customers", strict=True))
    (name,) = [c for c in contract["columns"] if c["name"] == "name"]
    assert name["checks"] == [{"invalid": {"name": "max_length(name)", "valid_max_length": 5, "threshold": {
        "metric": "percent", "must_be_less_than_or_equal": 0}}}]
    rows = pl.DataFrame(
        {"customer_id": ["C1", "C2", "C3", "C4"], "name": ["Ada", "Bartholomew", "Cy", "Dee"], "visits": 1,
         "updated_at": START},
        schema=dataset.spec.polars_schema(),
    )
    strict = run_gate(rows, dataset.spec, stage="silver_to_gold", strict=True)
    assert not strict.passed and strict.failed_checks() == ["max_length(name)"]
    assert "max_length(name) (25% > 0%)" in strict.summary()
