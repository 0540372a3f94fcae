"""``valid_values: <column>`` with ``values: [...]``: the value is one of a list.

Row-level; Soda's ``invalid`` check with ``valid_values`` (Soda counts NULLs as missing,
never as invalid, and so does the row rule).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, Declared, References, register
from lakehouse.specs import Check


@register
class ValidValues(CheckKind):
    """``valid_values: col``: a value outside ``values`` rejects the row."""

    name = "valid_values"
    order = 20
    options = {"values": (list[str] | None, None)}
    row_level = True
    percent = True

    @override
    def validate(self, decl: Any) -> None:
        if not decl.values:
            msg = "a valid_values check needs 'values: [...]'"
            raise ValueError(msg)

    @override
    def build(self, decl: Any, declared: Declared) -> Check:
        return Check(
            self.name, column=self.value(decl), values=tuple(decl.values or ()),
            max_percent=decl.max_percent, level=decl.level,
        )

    @override
    def rule(self, check: Check, references: References) -> tuple[pl.Expr, pl.Expr]:
        col = pl.col(check.target)
        allowed = ", ".join(check.values)
        return (
            col.is_not_null() & ~col.cast(pl.String).is_in(list(check.values)),
            pl.format(f"invalid {check.column}: '{{}}' is not one of [{allowed}]", col),
        )

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        body = {"name": check.name, "valid_values": list(check.values)}
        return [{"invalid": {**body, "threshold": contract.percent_threshold(check)}}]
