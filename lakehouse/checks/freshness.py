"""``freshness: <column>`` with ``max_age``: the newest value is at most ``max_age`` older
than the window's end (Soda's data timestamp, not the clock). Batch-level, datasets only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, Declared, number, register, threshold
from lakehouse.specs import Check
from lakehouse.window import OptionalInterval


def _minutes(check: Check) -> float:
    return (check.max_age or timedelta(0)).total_seconds() / 60


@register
class Freshness(CheckKind):
    """``freshness: col``: the newest value is at most ``max_age`` older than the window's end."""

    name = "freshness"
    order = 60
    options = {"max_age": (OptionalInterval, None)}
    exclusive = ("max_age",)
    exclusive_message = "'max_age' belongs to a freshness check"
    strict_gate = False  # true of every promoted row when it entered silver
    datasets_only = True

    @override
    def validate(self, decl: Any) -> None:
        if decl.max_age is None:
            msg = "a freshness check needs 'max_age' such as 1h or 30m"
            raise ValueError(msg)

    @override
    def build(self, decl: Any, declared: Declared) -> Check | None:
        col = declared.columns[self.value(decl)]
        if col.dtype not in ("timestamp", "date"):
            declared.problem(f"a freshness check needs a timestamp or date column; {col.name} is {col.dtype}")
            return None
        return Check(self.name, column=col.name, max_age=decl.max_age, level=decl.level)

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        limit = threshold(check, unit="minute", must_be_less_than_or_equal=number(_minutes(check)))
        return [{"freshness": {"name": check.name, "column": check.column, "threshold": limit}}]

    @override
    def threshold_text(self, check: Check, strict: bool) -> str:
        return f"<= {_minutes(check):g} min"
