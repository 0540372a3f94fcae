"""Table specifications: one declaration per table, everything else is derived from it.

A :class:`TableSpec` names a table's layer, columns, business key, ordering column,
partition column and quality checks. Paths, Arrow/Polars/DuckDB schemas, merge predicates,
Soda contracts and row-level rules are all computed from it (DESIGN.md, invariant 5).

Example::

    orders = TableSpec(
        "orders", "silver", (Column("order_id", "string"), Column("updated_at", "timestamp")),
        keys=("order_id",), order_by="updated_at", checks=(Check("missing", column="order_id"),),
    )
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import polars as pl
import pyarrow as pa

Layer = Literal["bronze", "silver", "gold"]
Level = Literal["fail", "warn"]
UnknownFields = Literal["warn", "fail", "evolve"]
RecordValues = Literal["json", "text"]
FileFormat = Literal["jsonl", "csv", "parquet"]
Compression = Literal["none", "gzip"]
LandingTime = Literal["key", "last_modified"]
"""Where a landed file's time comes from: its key's date path, or the object's last-modified time."""
Listing = Literal["full", "from_lookback"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")

SIMPLE_TYPES = ("string", "int64", "float64", "bool", "date", "timestamp")
"""The declared type names besides ``decimal(p,s)`` (the keys of :data:`TYPES`)."""
HISTORY = ("valid_from", "valid_to", "is_current", "_absorbed")  # what history: scd2 adds to silver: reserved names


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a safe SQL identifier: letters, digits and _, not starting with a digit."""
    return bool(_IDENTIFIER.match(name))


def identifier(name: str) -> str:
    """Return ``name`` if it is a safe SQL identifier, else raise ``ValueError``."""
    if not _IDENTIFIER.match(name):
        msg = f"{name!r} is not a valid identifier: use letters, digits and _"
        raise ValueError(msg)
    return name


def quote(name: str) -> str:
    """Quote a validated identifier for SQL (DuckDB and delta-rs predicates)."""
    return f'"{identifier(name)}"'


@dataclass(frozen=True)
class Column:
    """A typed column.

    ``dtype`` is one of ``string``, ``int64``, ``float64``, ``bool``, ``date``, ``timestamp``
    (microseconds, UTC) or ``decimal(p,s)``. ``derive`` names a transform of another column
    instead of a field of the raw record: ``date(ordered_at)`` is the UTC date of ``ordered_at``.
    ``nullable=False`` rejects a row whose value is null or absent. ``strings_as_numbers`` lets
    an ``int64``/``float64`` field arrive as a JSON string holding the number (``"42"``).
    """

    name: str
    dtype: str
    nullable: bool = True
    derive: str | None = None
    strings_as_numbers: bool = False

    def __post_init__(self) -> None:
        identifier(self.name)
        if self.dtype not in TYPES and not _DECIMAL.match(self.dtype):
            msg = f"column {self.name}: unknown type {self.dtype!r}"
            raise ValueError(msg)

    @property
    def decimal(self) -> tuple[int, int] | None:
        """``(precision, scale)`` of a ``decimal(p,s)`` column, else None."""
        m = _DECIMAL.match(self.dtype)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def polars_dtype(self) -> pl.DataType:
        """The column's Polars type."""
        return type_of(self.dtype).polars

    def arrow_type(self) -> pa.DataType:
        """The column's Arrow type."""
        return type_of(self.dtype).arrow

    def sql_type(self) -> str:
        """The DuckDB type name (also what Soda's schema check compares against)."""
        return type_of(self.dtype).duckdb

    def soda_type(self) -> dict[str, str | int]:
        """The column's type as a Soda contract writes it (``data_type`` and its size)."""
        return type_of(self.dtype).soda


# ----------------------------------------------------------------------------- the type table


@dataclass(frozen=True)
class ColumnType:
    """One declared type under each engine's name: Arrow, Polars, DuckDB, Soda and the Delta log."""

    arrow: pa.DataType
    polars: pl.DataType
    duckdb: str
    soda: dict[str, str | int]
    delta: str
    """The name in a Delta table's schema (``long``, ``decimal(12,2)``)."""


TYPES: dict[str, ColumnType] = {
    "string": ColumnType(pa.large_string(), pl.String(), "VARCHAR", {"data_type": "varchar"}, "string"),
    "int64": ColumnType(pa.int64(), pl.Int64(), "BIGINT", {"data_type": "bigint"}, "long"),
    "float64": ColumnType(pa.float64(), pl.Float64(), "DOUBLE", {"data_type": "double"}, "double"),
    "bool": ColumnType(pa.bool_(), pl.Boolean(), "BOOLEAN", {"data_type": "boolean"}, "boolean"),
    "date": ColumnType(pa.date32(), pl.Date(), "DATE", {"data_type": "date"}, "date"),
    "timestamp": ColumnType(
        pa.timestamp("us", tz="UTC"), pl.Datetime("us", "UTC"), "TIMESTAMP WITH TIME ZONE",
        {"data_type": "timestamp with time zone"}, "timestamp",
    ),
}
"""The declared types (besides ``decimal(p,s)``, :func:`type_of`) under every engine's name."""

DUCKDB_ALIASES = {"INTEGER": "int64", "SMALLINT": "int64", "FLOAT": "float64"}
"""DuckDB result types that widen to a declared type when a gold model's result is typed."""

NUMERIC = frozenset({"int64", "float64"})
"""Declared types that accept a JSON string holding a number (``strings_as_numbers``)."""

SILVER_FILE_SIZE = 4 * 1024 * 1024
"""The default ``target_file_size`` of a silver table: 4 MiB.

A merge rewrites every file that may hold one of its batch's keys (delta-rs has no deletion
vectors), so the file holding the newest keys is rewritten by every window until it reaches
the target size: at 100 MiB a merge copied 0.09M more rows every window, at 4 MiB a bounded
0.5–0.9M rows over 60 windows (the README's benchmark section)."""


def type_of(dtype: str) -> ColumnType:
    """The engines' names of a declared type: ``type_of("decimal(12,2)").duckdb`` is ``DECIMAL(12,2)``."""
    if m := _DECIMAL.match(dtype):
        p, s = int(m.group(1)), int(m.group(2))
        return ColumnType(
            pa.decimal128(p, s), pl.Decimal(p, s), f"DECIMAL({p},{s})",
            {"data_type": "decimal", "numeric_precision": p, "numeric_scale": s}, f"decimal({p},{s})",
        )
    return TYPES[dtype]


def from_delta(delta_type: str) -> str | None:
    """The declared type of a Delta schema's type name (``long`` → ``int64``), or None if it has none."""
    if m := re.match(r"^decimal\((\d+),\s*(\d+)\)$", delta_type):
        return f"decimal({m.group(1)},{m.group(2)})"
    return next((name for name, t in TYPES.items() if t.delta == delta_type), None)


def from_duckdb(sql_type: str) -> str | None:
    """The declared type of a DuckDB type name (``BIGINT`` → ``int64``), or None if it has none."""
    sql_type = sql_type.upper()
    if m := re.match(r"^DECIMAL\((\d+),(\d+)\)$", sql_type):
        return f"decimal({m.group(1)},{m.group(2)})"
    named = {t.duckdb: name for name, t in TYPES.items()}
    return named.get(sql_type) or DUCKDB_ALIASES.get(sql_type)


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

    ``kind`` names a kind of :mod:`lakehouse.checks` (its registry holds what each kind
    means: its declaration, row rule, Soda fragment and threshold text); ``options`` holds
    the options of a kind that the fields here do not name, as ``(name, value)`` pairs.
    """

    kind: str
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
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """The check's name in results and reasons: ``kind(columns)``."""
        cols = self.column_names
        return f"{self.kind}({','.join(cols)})" if cols else self.kind

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns the check reads (``columns``, else ``column``)."""
        return self.columns or ((self.column,) if self.column else ())

    @property
    def target(self) -> str:
        """The one column of a column check (a row-level kind's rule reads it)."""
        if self.column is None:
            msg = f"check {self.name} is on no single column"
            raise ValueError(msg)
        return self.column

    def option(self, name: str, default: Any = None) -> Any:
        """The value of a kind's own option (one of ``options``)."""
        return dict(self.options).get(name, default)


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
    :mod:`lakehouse.layers.silver.evolve`)."""
    record_values: RecordValues = "json"
    """``json``: values carry their JSON types; ``text``: every value is text (CSV) and is
    parsed by the column's strict text format."""
    target_file_size: int | None = None
    """Bytes: the size the table's writes and compaction aim at (``delta.targetFileSize``); ``None``: 100 MiB."""
    tracked: tuple[str, ...] | None = None
    """``history: scd2``: the columns whose change opens a version (:mod:`lakehouse.layers.silver.scd2`); None: SCD1."""
    _index: dict[str, Column] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        identifier(self.name)
        for col in self.columns:
            self._index[col.name] = col
        for name in (*self.keys, self.order_by, self.partition_by):
            if name is not None and name not in self._index:
                msg = f"table {self.name}: {name!r} is not one of its columns"
                raise ValueError(msg)
        for check in self.checks:
            for col in (check.column, *check.columns):
                if col is not None and col not in self._index:
                    msg = f"table {self.name}: check {check.name} names no column {col!r}"
                    raise ValueError(msg)

    @property
    def qualified_name(self) -> str:
        """``layer.name``, as the table is named in logs and results."""
        return f"{self.layer}.{self.name}"

    def column(self, name: str) -> Column:
        """The column ``name``."""
        return self._index[name]

    @property
    def column_names(self) -> list[str]:
        """The columns' names, in declared order."""
        return [c.name for c in self.columns]

    def history_columns(self) -> tuple[Column, ...]:
        """The columns an SCD2 table adds to the declared ones: ``valid_from``, ``valid_to``, ``is_current``."""
        dtype = self.column(self.order_by).dtype if self.tracked is not None and self.order_by else None
        return (Column(HISTORY[0], dtype), Column(HISTORY[1], dtype), Column(HISTORY[2], "bool")) if dtype else ()

    def polars_schema(self) -> pl.Schema:
        """The table's Polars schema."""
        return pl.Schema({c.name: c.polars_dtype() for c in self.columns})

    def arrow_schema(self) -> pa.Schema:
        """The table's Arrow schema, with each column's nullability."""
        return pa.schema(
            [pa.field(c.name, c.arrow_type(), nullable=c.nullable) for c in self.columns]
        )


# ----------------------------------------------------------------------------- a pipeline, loaded


@dataclass(frozen=True)
class Dataset:
    """A dataset ready to run: its silver spec and where its records come from (files under
    ``prefix`` for ``kind`` ``landing_files``; else ``resource`` read through ``connection``)."""

    spec: TableSpec
    source: str
    prefix: str
    format: FileFormat
    compression: Compression
    landing_time: LandingTime
    zorder: tuple[str, ...] = ()
    """Columns maintenance z-orders the silver table by (``zorder:`` in the declaration)."""
    lookback: timedelta = timedelta(hours=1)
    listing: Listing = "full"
    max_batch_files: int = 1000
    max_batch_bytes: int = 256 * 1024 * 1024
    max_batch_rows: int = 1_000_000
    kind: str = "landing_files"
    resource: str = ""
    connection: Any = None
    """A non-file source's validated declaration (a model of :mod:`lakehouse.sources.declared`)."""

    @property
    def upstream(self) -> tuple[str, ...]:
        """The datasets this one's reference checks look up (promoted before it)."""
        return tuple(dict.fromkeys(c.ref_dataset for c in self.spec.checks if c.ref_dataset))


@dataclass(frozen=True)
class Additive:
    """An additive gold model (``incremental:``): each result row sums what each ``by`` value's rows
    contribute; ``count`` counts them (0: the row is gone); ``measures``: the columns outside the key
    (:mod:`lakehouse.layers.gold.incremental`)."""

    by: str
    count: str
    measures: tuple[str, ...]


@dataclass(frozen=True)
class GoldModel:
    """A gold model ready to run: its SQL, inputs and derived result spec."""

    spec: TableSpec
    sql: str
    inputs: tuple[str, ...]
    zorder: tuple[str, ...] = ()
    """Columns maintenance z-orders the gold table by (``zorder:`` in the declaration)."""
    additive: Additive | None = None
    """Set by ``incremental:``: maintained from changes; otherwise touched partitions are recomputed."""
    touched_by_inputs: bool = False
    """``touched: inputs``: the partition values of the inputs' changed rows are touched too."""
    event: str | None = None
    """``event.name``: a Prefect event for each row a commit inserts (sent by the flow, not the engine)."""
    event_resource: str | None = None
    """``event.resource_name``: the result column naming the event's resource (None: the key)."""
