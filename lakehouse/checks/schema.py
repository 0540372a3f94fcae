"""``schema: true``: the batch has the declared columns with their exact types. Batch-level.

Soda's ``schema`` check (names and types of every declared column, extra columns fail,
column order free) plus a ``failed_rows`` check named :data:`TYPES_CHECK`: soda-duckdb treats
every integer and decimal type name as synonyms (and float/double/real), so a BIGINT column
arriving as INTEGER or DECIMAL(18,3) would pass its schema check. The query compares the
DuckDB type of each declared column in ``information_schema.columns`` with
:meth:`~lakehouse.specs.Column.sql_type` (case and spaces ignored). Both are reported as the
one ``schema`` outcome, whose value is the number of differences. Soda's schema check
reports FAILED whatever its level; the check's level is applied when the results are mapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typing_extensions import override

from lakehouse.checks.base import CheckKind, Contract, Declared, measured, register, threshold
from lakehouse.specs import Check, TableSpec

TYPES_CHECK = "schema(data_types)"
"""Name of the Soda check that compares exact data types; reported as part of ``schema``."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def types_query(spec: TableSpec, schema: str, table: str) -> str:
    """Declared columns whose DuckDB type differs from the declared one (case and spaces aside)."""
    expected = ",\n".join(f"  ({_literal(c.name)}, {_literal(c.sql_type())})" for c in spec.columns)
    return (
        "SELECT c.column_name, c.data_type AS actual, e.data_type AS expected\n"
        "FROM information_schema.columns AS c\n"
        f"JOIN (VALUES\n{expected}\n) AS e(column_name, data_type) USING (column_name)\n"
        f"WHERE c.table_schema = {_literal(schema)} AND c.table_name = {_literal(table)}\n"
        "  AND upper(replace(c.data_type, ' ', '')) <> upper(replace(e.data_type, ' ', ''))\n"
    )


@register
class Schema(CheckKind):
    """``schema: true``: the batch's columns and types are the declared ones."""

    name = "schema"
    order = 80
    value_type = bool

    @override
    def columns(self, decl: Any) -> list[str]:
        return []

    @override
    def build(self, decl: Any, declared: Declared) -> Check:
        return Check(self.name, level=decl.level)

    @override
    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        parts = contract.dataset.split("/")
        if len(parts) < 3:
            msg = f"dataset {contract.dataset!r} is not <data source>/<schema>/<table>"
            raise ValueError(msg)
        return [
            {"schema": {"name": check.name, "allow_other_column_order": True}},
            {
                "failed_rows": {
                    "name": TYPES_CHECK,
                    "query": types_query(contract.spec, parts[-2], parts[-1]),
                    "threshold": threshold(check, must_be=0),
                }
            },
        ]

    @override
    def measure(self, check: Check, results: Mapping[str, Any], *, empty: bool) -> tuple[bool, float | None]:
        schema, types = results.get(check.name), results.get(TYPES_CHECK)
        passed = all(r is not None and r.is_passed for r in (schema, types))
        return passed, _schema_value(schema, types)

    @override
    def threshold_text(self, check: Check, strict: bool) -> str:
        return "= 0 differences"


def _schema_value(schema: Any, types: Any) -> float | None:
    """Missing plus undeclared columns (Soda's schema check) plus exact type differences."""
    type_differences = measured(types)
    if type_differences is None:
        return None
    missing = getattr(schema, "expected_column_names_not_actual", None)
    extra = getattr(schema, "actual_column_names_not_expected", None)
    if missing is None or extra is None:
        return None
    return float(len(missing) + len(extra)) + type_differences
