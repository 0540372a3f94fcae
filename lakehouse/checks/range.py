"""``range: <column>`` with ``min``, ``max`` or both: a number within bounds.

Row-level; Soda's ``invalid`` check with ``valid_min`` / ``valid_max``.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, Declared, References, number, register
from lakehouse.specs import Check


@register
class Range(CheckKind):
    """``range: col``: a value outside ``[min, max]`` rejects the row."""

    name = "range"
    order = 30
    options = {"min": (float | None, None), "max": (float | None, None)}
    row_level = True
    percent = True

    @override
    def validate(self, decl: Any) -> None:
        if decl.min is None and decl.max is None:
            msg = "a range check needs 'min', 'max' or both"
            raise ValueError(msg)
        if decl.min is not None and decl.max is not None and decl.min > decl.max:
            msg = f"range min {decl.min:g} is above max {decl.max:g}"
            raise ValueError(msg)

    @override
    def build(self, decl: Any, declared: Declared) -> Check | None:
        col = declared.columns[self.value(decl)]
        if col.dtype not in ("int64", "float64") and not col.decimal:
            declared.problem(f"a range check needs a numeric column; {col.name} is {col.dtype}")
            return None
        return Check(
            self.name, column=col.name, min=decl.min, max=decl.max,
            max_percent=decl.max_percent, level=decl.level,
        )

    @override
    def rule(self, check: Check, references: References) -> tuple[pl.Expr, pl.Expr]:
        col = pl.col(check.target)
        bad = pl.lit(False)
        if check.min is not None:
            bad = bad | (col.cast(pl.Float64) < check.min)
        if check.max is not None:
            bad = bad | (col.cast(pl.Float64) > check.max)
        lo = "" if check.min is None else f"{check.min:g}"
        hi = "" if check.max is None else f"{check.max:g}"
        return (
            col.is_not_null() & bad,
            pl.format(f"{check.column} {{}} out of range [{lo}, {hi}]", col.cast(pl.String)),
        )

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"name": check.name}
        if check.min is not None:
            body["valid_min"] = number(check.min)
        if check.max is not None:
            body["valid_max"] = number(check.max)
        return [{"invalid": {**body, "threshold": contract.percent_threshold(check)}}]
