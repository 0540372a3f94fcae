"""``unknown_fields: evolve``: members that are not columns become silver columns.

Pure functions, no I/O (the in-memory DuckDB of :mod:`lakehouse.sources.records` is used as a pure
function over the batch's raw text). Two things make up a dataset's effective spec:

- the columns an earlier batch already added to the silver table (:func:`table_columns`):
  from then on they are typed like declared columns, strictly, by the table's type (a
  ``"5"`` in an ``int64`` column is refused as a wrong type and quarantined);
- the members this batch brings (:func:`infer`), typed from their JSON values in the batch.

The rule for a new member's type, over its non-null values in the batch (DuckDB's JSON
types, read once per record):

==================================  ================================================
values                              column
==================================  ================================================
only JSON integers                  ``int64``
JSON numbers, some not integers     ``float64`` (refused if an integer is at or
                                    beyond 2^53: a double cannot hold it exactly)
only JSON strings                   ``string`` (never inferred as a date, timestamp
                                    or decimal: declare those)
only ``true`` / ``false``           ``bool``
only nulls                          not added; counted as an unknown member (``warn``)
objects or arrays                   refused: evolve adds scalar columns only
more than one of the above kinds    refused: no type is picked for mixed values
==================================  ================================================

CSV values carry no JSON type, so a CSV member always evolves as ``string``. A member that
is a case or whitespace variant of a column (``AMOUNT`` beside ``amount``: a rename?), that
is not a valid column name (``unit price``, ``_x``: ``_`` starts the lineage columns), or
that differs from another new member only by case, is never added. Every record carrying
a refused member is quarantined with the reason (``unknown field meta: unknown_fields:
evolve cannot add it: …``), so nothing is coerced and nothing is dropped without a word.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import polars as pl

from lakehouse.sources import records
from lakehouse.specs import Column, TableSpec, from_delta

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_EXACT_DOUBLE = 2.0**53
_KIND_WORDS = {
    "VARCHAR": "a JSON string",
    "BIGINT": "a JSON number",
    "DOUBLE": "a JSON number",
    "BOOLEAN": "a JSON boolean",
    "ARRAY": "a JSON array",
    "OBJECT": "a JSON object",
}


@dataclass(frozen=True)
class Evolution:
    """What a batch does to its dataset's columns under ``unknown_fields: evolve``."""

    spec: TableSpec
    """The declared spec plus every evolved column (the table's and this batch's)."""
    added: Mapping[str, str] = field(default_factory=dict)
    """Columns this batch adds: name → type."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Members this batch carries that cannot be added: name → why (their records are quarantined)."""


def dtype_of(delta_type: str) -> str | None:
    """Our type name of a Delta primitive type (``long`` → ``int64``), None if it has none."""
    return from_delta(delta_type)


def table_columns(spec: TableSpec, fields: Iterable[tuple[str, str]], *, lineage: Iterable[str]) -> tuple[Column, ...]:
    """The columns of an existing silver table (``(name, delta type)`` pairs) that ``spec``
    does not declare and that are not lineage: those an earlier batch evolved."""
    skip = {*spec.column_names, *lineage}
    out = []
    for name, delta_type in fields:
        dtype = dtype_of(delta_type)
        if name not in skip and dtype is not None:
            out.append(Column(name, dtype))
    return tuple(out)


def _refusal(name: str, spec: TableSpec, others: set[str]) -> str | None:
    """Why a new member cannot be a column whatever its values, or None."""
    declared = {c.name.lower(): c.name for c in spec.columns}
    base = name.strip().lower()
    if base in declared:
        return (f"it is a case or whitespace variant of column {declared[base]} (a rename?); "
                "fix the source or declare it")
    if not _NAME.match(name):
        return "it is not a valid column name (letters, digits and _, starting with a letter)"
    twins = sorted(o for o in others if o != name and o.lower() == name.lower())
    if twins:
        return f"it differs from member {twins[0]} only by case"
    return None


def _type_of(kinds: set[str], texts: pl.Series) -> tuple[str | None, str | None]:
    """(type, None), (None, why refused) or (None, None) for a member with only nulls."""
    if not kinds:
        return None, None
    if kinds & {"OBJECT", "ARRAY"}:
        shape = "a JSON object" if "OBJECT" in kinds else "a JSON array"
        return None, f"it holds {shape}: evolve adds scalar columns only (string, int64, float64, bool); declare it"
    if kinds == {"BIGINT"}:
        return "int64", None
    if kinds <= {"BIGINT", "DOUBLE"}:
        if (texts.cast(pl.Float64, strict=False).abs() >= _EXACT_DOUBLE).any():
            return None, "it mixes decimals with integers at or beyond 2^53, which float64 cannot hold exactly; declare it"
        return "float64", None
    if kinds == {"VARCHAR"}:
        return "string", None
    if kinds == {"BOOLEAN"}:
        return "bool", None
    words = sorted({_KIND_WORDS.get(k, k) for k in kinds})
    return None, f"its values are of mixed JSON types in this batch ({', '.join(words)}); declare the column"


def infer(raw: pl.Series, spec: TableSpec) -> Evolution:
    """The columns this batch's records add to ``spec`` (which holds the evolved ones already).

    ``raw`` is the batch's ``_raw`` column (JSON object text). See the module doc for the rule.
    """
    found = records.members(raw, list(records.RESERVED))  # (at least one member: DuckDB refuses an empty structure)
    known = {*(c.name for c in spec.columns), *records.RESERVED}
    names = sorted(set(found.get_column(records.KEYS).explode().drop_nulls().to_list()) - known)
    if not names:
        return Evolution(spec)
    refused = {n: why for n in names if (why := _refusal(n, spec, set(names))) is not None}
    candidates = [n for n in names if n not in refused]
    added: dict[str, str] = {}
    if candidates:
        typed = records.members(raw, candidates)
        for n in candidates:
            kinds = typed.get_column(records.type_name(n))
            present = kinds.is_not_null() & (kinds != "NULL")
            texts = typed.get_column(records.text_name(n)).filter(present)
            dtype, why = _type_of(set(kinds.filter(present).to_list()), texts)
            if why is not None:
                refused[n] = why
            elif dtype is not None:
                added[n] = "string" if spec.record_values == "text" else dtype
    columns = (*spec.columns, *(Column(n, t) for n, t in added.items()))
    return Evolution(dataclasses.replace(spec, columns=columns), added, refused)
