"""The Soda v4 contract that gates a batch, derived from its table spec.

The columns (and their types, :meth:`~lakehouse.specs.Column.soda_type`) come from the
spec; each check contributes its kind's fragment (:meth:`lakehouse.checks.CheckKind.soda`):
a row-level kind a check under its column, any other kind dataset-level checks.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import yaml

from lakehouse import checks
from lakehouse.specs import Check, TableSpec


def gated(check: Check, strict: bool) -> bool:
    """Whether a check is part of this gate (its kind says: duplicates are checked only in
    strict, deduplicated batches; references and freshness where rows enter silver)."""
    return checks.kind_of(check).gated(strict)


def build_contract(spec: TableSpec, *, dataset: str, strict: bool) -> str:
    """The Soda v4 contract YAML that gates a batch of ``spec``'s table.

    Args:
        spec: the table whose ``checks`` (and columns, for the schema check) are written.
        dataset: the Soda dataset, ``<data source>/<schema>/<table>`` such as
            ``lake/main/batch``.
        strict: True for the silver→gold gate (every percent threshold is 0 and the
            duplicate check is included), False for the bronze→silver gate.

    Example: ``build_contract(ORDERS, dataset="lake/main/orders", strict=False)``.
    """
    return contract_yaml(spec, dataset=dataset, strict=strict, present=spec.column_names)


def contract_yaml(spec: TableSpec, *, dataset: str, strict: bool, present: Collection[str]) -> str:
    """The contract, leaving out the checks on columns that are not ``present``."""
    chosen = [c for c in spec.checks if gated(c, strict) and set(c.column_names) <= set(present)]
    context = checks.Contract(spec, dataset, strict)
    columns: list[dict[str, Any]] = []
    for col in spec.columns:
        entry: dict[str, Any] = {"name": col.name, **col.soda_type()}
        own = [
            fragment for c in chosen if checks.kind_of(c).row_level and c.column == col.name
            for fragment in checks.kind_of(c).soda(c, context)
        ]
        if own:
            entry["checks"] = own
        columns.append(entry)
    contract: dict[str, Any] = {"dataset": dataset, "columns": columns}
    dataset_checks = [d for c in chosen if not checks.kind_of(c).row_level for d in checks.kind_of(c).soda(c, context)]
    if dataset_checks:  # Soda rejects an empty 'checks' list
        contract["checks"] = dataset_checks
    return yaml.dump(contract, Dumper=_ContractDumper, sort_keys=False, width=100)


class _ContractDumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (the types query) written as literal blocks."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_ContractDumper.add_representer(str, _str_presenter)
