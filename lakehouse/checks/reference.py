"""``reference: <column>`` with ``dataset`` (and ``column``): the value is a key of another
dataset's silver table, as committed or promoted in the same run.

Row-level. The keys are looked up by silver (only the values the batch holds) and given to
both the row rule and the gate, where Soda's ``invalid`` check reads them with
``valid_reference_data`` from a view of their own. Checked where rows enter silver only.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
from typing_extensions import override

from lakehouse.checks.base import (
    DATA_SOURCE,
    SCHEMA,
    CheckKind,
    Contract,
    Declared,
    References,
    register,
)
from lakehouse.specs import Check


def view_name(check: Check) -> str:
    """The DuckDB view that holds the keys a ``reference`` check looks up."""
    return f"ref_{check.ref_dataset}_{check.ref_column}"


@register
class Reference(CheckKind):
    """``reference: col``: a value that is not a key of another dataset's silver table rejects the row."""

    name = "reference"
    order = 50
    options = {"dataset": (str | None, None), "column": (str | None, None)}
    exclusive = ("dataset", "column")
    exclusive_message = "'dataset' and 'column' belong to a reference check"
    row_level = True
    percent = True
    strict_gate = False  # true of every promoted row when it entered silver; keys are never deleted
    datasets_only = True

    @override
    def validate(self, decl: Any) -> None:
        if not decl.dataset:
            msg = "a reference check needs 'dataset: <dataset whose key it must match>'"
            raise ValueError(msg)

    @override
    def build(self, decl: Any, declared: Declared) -> Check | None:
        datasets = declared.datasets or {}
        target = datasets.get(decl.dataset or "")
        if target is None:
            declared.problem(f"no dataset {decl.dataset!r} (datasets: {', '.join(datasets)})", at=".dataset")
            return None
        keys = target.key_columns()
        ref_column = decl.column or (keys[0] if len(keys) == 1 else None)
        if ref_column is None:
            declared.problem(
                f"{decl.dataset} has a key of several columns {keys}: name the one to match with 'column'",
                at=".column",
            )
            return None
        if ref_column not in target.columns:
            declared.problem(
                f"{ref_column!r} is not a column of {decl.dataset} (columns: {', '.join(target.columns)})",
                at=".column",
            )
            return None
        return Check(
            self.name, column=self.value(decl), ref_dataset=decl.dataset, ref_column=ref_column,
            max_percent=decl.max_percent, level=decl.level,
        )

    @override
    def rule(self, check: Check, references: References) -> tuple[pl.Expr, pl.Expr]:
        if check.name not in references:
            msg = f"{check.name}: the keys of {check.ref_dataset} were not given"
            raise ValueError(msg)
        col, known = pl.col(check.target), references[check.name]
        return (
            col.is_not_null() & ~col.cast(pl.String).is_in(known.cast(pl.String).implode()),
            pl.format(f"unknown {check.column}: '{{}}' is not in silver.{check.ref_dataset}", col.cast(pl.String)),
        )

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        body = {
            "name": check.name,
            "valid_reference_data": {
                "dataset": f"{DATA_SOURCE}/{SCHEMA}/{view_name(check)}",
                "column": check.ref_column,
            },
        }
        return [{"invalid": {**body, "threshold": contract.percent_threshold(check)}}]

    @override
    def lookups(self, check: Check, references: References) -> dict[str, pa.Table]:
        if check.name not in references:
            msg = f"no reference keys given for {check.name}"
            raise ValueError(msg)
        return {view_name(check): pa.table({check.ref_column: references[check.name].cast(pl.String).to_arrow()})}
