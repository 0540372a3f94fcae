"""``duplicate: <column or columns>``: no two rows share these values. Batch-level.

Soda's dataset check ``duplicate`` (``must_be: 0`` duplicate rows; it hashes the tuple with
NULL as a sentinel, so two rows whose key is NULL are duplicates). Only in the silver→gold
gate: a raw batch legitimately holds several versions of one key.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, Declared, register, threshold
from lakehouse.specs import Check


@register
class Duplicate(CheckKind):
    """``duplicate: [col, ...]``: no two rows of the batch share those columns' values."""

    name = "duplicate"
    order = 40
    value_type = list[str] | str
    loose_gate = False

    @override
    def columns(self, decl: Any) -> list[str]:
        value = self.value(decl)
        return [value] if isinstance(value, str) else list(value or [])

    @override
    def build(self, decl: Any, declared: Declared) -> Check:
        return Check(self.name, columns=tuple(self.columns(decl)), level=decl.level)

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        return [{"duplicate": {"name": check.name, "columns": list(check.columns), "threshold": threshold(check, must_be=0)}}]

    @override
    def threshold_text(self, check: Check, strict: bool) -> str:
        return "= 0 duplicate rows"
