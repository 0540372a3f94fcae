"""Table specifications: one declaration per table, everything else is derived from it.

A :class:`TableSpec` names a table's layer, columns, business key, ordering column,
partition column and quality checks. Paths, Arrow/Polars/DuckDB schemas, merge predicates,
Soda contracts and row-level rules are all computed from it (DESIGN.md, invariant 5).

Example::

    orders = TableSpec(
        name="orders",
        layer="silver",
        columns=(Column("order_id", "string"), Column("updated_at", "timestamp")),
        keys=("order_id",),
        order_by="updated_at",
        checks=(Check("missing", column="order_id"),),
    )
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import polars as pl
import pyarrow as pa

Layer = Literal["bronze", "silver", "gold"]
CheckKind = Literal[
    "missing", "duplicate", "valid_values", "range", "reference", "freshness", "row_count", "schema"
]
Level = Literal["fail", "warn"]
UnknownFields = Literal["warn", "fail", "evolve"]
RecordValues = Literal["json", "text"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
SIMPLE_TYPES = ("string", "int64", "float64", "bool", "date", "timestamp")


def identifier(name: str) -> str:
    """Return ``name`` if it is a safe SQL identifier, else raise ``ValueError``."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid identifier: use letters, digits and _")
    return name


def quote(name: str) -> str:
    """Quote a validated identifier for SQL (DuckDB and delta-rs predicates)."""
    return f'"{identifier(name)}"'


@dataclass(frozen=True)
class Column:
    """A typed column.

    ``dtype`` is one of ``string``, ``int64``, ``float64``, ``bool``, ``date``,
    ``timestamp`` (microseconds, UTC) or ``decimal(p,s)``. ``derive`` names a transform of
    another column instead of a field of the raw record: ``date(ordered_at)`` is the UTC
    calendar date of ``ordered_at``. ``nullable=False`` rejects a row whose value is null
    or absent. ``strings_as_numbers`` lets an ``int64`` or ``float64`` field arrive as a
    JSON string holding the number (``"42"``); without it such a row is rejected.
    """

    name: str
    dtype: str
    nullable: bool = True
    derive: str | None = None
    strings_as_numbers: bool = False

    def __post_init__(self) -> None:
        identifier(self.name)
        if self.dtype not in SIMPLE_TYPES and not _DECIMAL.match(self.dtype):
            raise ValueError(f"column {self.name}: unknown type {self.dtype!r}")

    @property
    def decimal(self) -> tuple[int, int] | None:
        m = _DECIMAL.match(self.dtype)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def polars_dtype(self) -> pl.DataType:
        if dec := self.decimal:
            return pl.Decimal(dec[0], dec[1])
        return {
            "string": pl.String(),
            "int64": pl.Int64(),
            "float64": pl.Float64(),
            "bool": pl.Boolean(),
            "date": pl.Date(),
            "timestamp": pl.Datetime("us", "UTC"),
        }[self.dtype]

    def arrow_type(self) -> pa.DataType:
        if dec := self.decimal:
            return pa.decimal128(dec[0], dec[1])
        return {
            "string": pa.large_string(),
            "int64": pa.int64(),
            "float64": pa.float64(),
            "bool": pa.bool_(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us", tz="UTC"),
        }[self.dtype]

    def sql_type(self) -> str:
        """The DuckDB type name (also what Soda's schema check compares against)."""
        if dec := self.decimal:
            return f"DECIMAL({dec[0]},{dec[1]})"
        return {
            "string": "VARCHAR",
            "int64": "BIGINT",
            "float64": "DOUBLE",
            "bool": "BOOLEAN",
            "date": "DATE",
            "timestamp": "TIMESTAMP WITH TIME ZONE",
        }[self.dtype]


@dataclass(frozen=True)
class Check:
    """A quality check on a table.

    Row-level kinds (``missing``, ``valid_values``, ``range``, ``reference``) reject the
    offending rows at the bronze→silver promotion; the batch is blocked only when more than
    ``max_percent`` of its rows fail (0 means any failing row blocks the batch at the
    silver→gold gate, where rejected rows are already gone). A ``reference`` check needs
    the value of ``column`` to be a key (``ref_column``) of the silver table of dataset
    ``ref_dataset``, as committed or promoted in the same run. ``duplicate`` (over
    ``columns``), ``row_count``, ``freshness`` (the newest ``column`` value is at most
    ``max_age`` older than the window's end) and ``schema`` are batch-level only.
    """

    kind: CheckKind
    column: str | None = None
    columns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_percent: float = 0.0
    min_rows: int = 1
    level: Level = "fail"
    ref_dataset: str | None = None
    ref_column: str | None = None
    max_age: timedelta | None = None

    @property
    def name(self) -> str:
        cols = self.columns or ((self.column,) if self.column else ())
        return f"{self.kind}({','.join(cols)})" if cols else self.kind

    @property
    def row_level(self) -> bool:
        return self.kind in ("missing", "valid_values", "range", "reference")


@dataclass(frozen=True)
class TableSpec:
    """The one declaration of a table: schema, keys, ordering, partitioning and checks."""

    name: str
    layer: Layer
    columns: tuple[Column, ...]
    keys: tuple[str, ...] = ()
    order_by: str | None = None
    partition_by: str | None = None
    checks: tuple[Check, ...] = ()
    description: str = ""
    unknown_fields: UnknownFields = "warn"
    """A raw record's members that are not columns: counted and reported (``warn``), the
    record is rejected (``fail``), or the silver table gains them as columns (``evolve``,
    :mod:`lakehouse.evolve`)."""
    record_values: RecordValues = "json"
    """``json``: values carry their JSON types; ``text``: every value is text (CSV) and is
    parsed by the column's strict text format."""
    _index: dict[str, Column] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        identifier(self.name)
        for col in self.columns:
            self._index[col.name] = col
        for name in (*self.keys, self.order_by, self.partition_by):
            if name is not None and name not in self._index:
                raise ValueError(f"table {self.name}: {name!r} is not one of its columns")
        for check in self.checks:
            for col in (check.column, *check.columns):
                if col is not None and col not in self._index:
                    raise ValueError(f"table {self.name}: check {check.name} names no column {col!r}")

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    def column(self, name: str) -> Column:
        return self._index[name]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.polars_dtype() for c in self.columns})

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type(), nullable=c.nullable) for c in self.columns]
        )
