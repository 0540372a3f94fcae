"""``missing: <column>``: the value is null or absent. Row-level; Soda's ``missing`` check."""

from __future__ import annotations

from typing import Any

import polars as pl
from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, References, register
from lakehouse.specs import Check


@register
class Missing(CheckKind):
    """``missing: col``: a null value rejects the row."""

    name = "missing"
    order = 10
    row_level = True
    rejects_nulls = True
    percent = True

    @override
    def rule(self, check: Check, references: References) -> tuple[pl.Expr, pl.Expr]:
        return pl.col(check.target).is_null(), pl.lit(f"missing {check.column}")

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        return [{"missing": {"name": check.name, "threshold": contract.percent_threshold(check)}}]
