"""``row_count: <n>``: the batch has at least ``n`` rows. Batch-level."""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, Declared, register, threshold
from lakehouse.specs import Check


@register
class RowCount(CheckKind):
    """``row_count: n``: the batch holds at least ``n`` rows."""

    name = "row_count"
    order = 70
    value_type = int

    @override
    def validate(self, decl: Any) -> None:
        if self.value(decl) < 0:
            msg = "row_count must be 0 or more"
            raise ValueError(msg)

    @override
    def columns(self, decl: Any) -> list[str]:
        return []

    @override
    def build(self, decl: Any, declared: Declared) -> Check:
        return Check(self.name, min_rows=self.value(decl) or 0, level=decl.level)

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        limit = threshold(check, must_be_greater_than_or_equal=check.min_rows)
        return [{"row_count": {"name": check.name, "threshold": limit}}]

    @override
    def threshold_text(self, check: Check, strict: bool) -> str:
        return f">= {check.min_rows} rows"
