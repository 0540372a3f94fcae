"""A gate's result: one :class:`CheckOutcome` per check, and whether the gate passed.

The caller decides whether to raise, publish or alert (STYLE.md, shape 10).
"""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.errors import GateFailed
from lakehouse.specs import Level

_NEGATED = {"<=": ">", ">=": "<", "=": "!="}


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a gate as Soda measured it.

    ``value`` is a percent for ``missing``/``valid_values``/``range`` (None for an empty
    batch), the duplicate row count, the row count, or the number of schema differences;
    None when the check could not be measured.
    """

    name: str
    level: Level
    passed: bool
    value: float | None
    threshold: str


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate: it passed unless a fail-level check failed."""

    table: str
    stage: str
    passed: bool
    checks: tuple[CheckOutcome, ...]
    rows: int

    def failed_checks(self) -> list[str]:
        """Names of the fail-level checks that failed, in the order of the spec."""
        return [c.name for c in self.checks if not c.passed and c.level == "fail"]

    def warnings(self) -> list[str]:
        """Names of the warn-level checks that failed (they never block)."""
        return [c.name for c in self.checks if not c.passed and c.level == "warn"]

    def summary(self) -> str:
        """One line: table, stage and what failed with its measured value.

        Example: ``silver.orders bronze_to_silver: FAILED missing(order_id) (60% > 10%)``.
        """
        warned = [f"{c.name} ({_violation(c)})" for c in self.checks if not c.passed and c.level == "warn"]
        tail = f"; warnings: {', '.join(warned)}" if warned else ""
        if self.passed:
            return f"{self.table} {self.stage}: passed {len(self.checks)} checks{tail}"
        failed = [f"{c.name} ({_violation(c)})" for c in self.checks if not c.passed and c.level == "fail"]
        return f"{self.table} {self.stage}: FAILED {', '.join(failed)}{tail}"


def blocking_error(results: list[GateResult]) -> GateFailed | None:
    """The error that blocks a promotion, naming every failing check, or None if all passed."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return None
    return GateFailed(
        "promotion blocked: " + "; ".join(r.summary() for r in failed),
        table=", ".join(r.table for r in failed),
        failed_checks=[c for r in failed for c in r.failed_checks()],
    )


def _violation(outcome: CheckOutcome) -> str:
    """``60% > 10%`` from value 60 and threshold ``<= 10%``."""
    op, _, bound = outcome.threshold.partition(" ")
    if outcome.value is None:
        return f"not measured, expected {outcome.threshold}"
    unit = "%" if bound.endswith("%") else " min" if bound.endswith(" min") else ""
    return f"{outcome.value:g}{unit} {_NEGATED.get(op, 'vs')} {bound}"
