"""Pipelines declared in one YAML file: sources, datasets, checks and gold SQL models.

The file is validated when it is loaded, by typed models and then by cross-references
(a key must name a column, a check a column, a model an existing silver table …). Every
problem is reported with the file, the path inside it and what was expected::

    lakehouse.yaml: pipelines.shop.datasets.orders.key: 'order_idd' is not a column of
    orders (columns: order_id, customer_id, …)

Everything else — bronze and silver schemas, merge predicates, Soda contracts, row-level
rules, gold recomputation, the CLI's table names — is derived from what is loaded here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lakehouse.errors import ConfigError
from lakehouse.specs import SIMPLE_TYPES, Check, Column, TableSpec
from lakehouse.storage import unsafe_reason

DEFAULT_FILE = "lakehouse.yaml"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_INTERVAL = re.compile(r"^(\d+)(s|m|h)$")


def _interval(value: Any) -> Any:
    if isinstance(value, str):
        m = _INTERVAL.match(value.strip())
        if not m or int(m.group(1)) == 0:
            raise ValueError(f"expected an interval such as 5m, 15m or 1h, got {value!r}")
        n, unit = int(m.group(1)), m.group(2)
        return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600}[unit])
    return value


Interval = Annotated[timedelta, BeforeValidator(_interval)]


def _confined_prefix(value: str) -> str:
    """A landing prefix stays under the landing root: no ``..``, no absolute path."""
    reason = unsafe_reason(value.strip("/") if not value.startswith("/") else value)
    if reason is not None:
        raise ValueError(f"{value!r}: {reason}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceDecl(_Model):
    """Files landing under a prefix of the landing area."""

    kind: Literal["landing_files"] = "landing_files"
    prefix: str = ""
    format: Literal["jsonl", "csv", "parquet"] = "jsonl"
    compression: Literal["none", "gzip"] = "none"
    landing_time: Literal["key", "last_modified"] = "key"
    interval: Interval = timedelta(minutes=15)
    lookback: Interval = timedelta(hours=1)
    """Files that landed within this of the newest one ingested are compared by key and version."""
    listing: Literal["full", "from_lookback"] = "full"
    """``from_lookback``: list from the look-back's horizon on (S3 StartAfter; late old keys unseen)."""
    max_batch_files: int = Field(default=1000, ge=1)
    """At most this many files per bronze commit; a larger backlog takes several commits."""
    max_batch_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    """At most this many bytes of files per bronze commit (a larger single file is its own batch)."""
    max_batch_rows: int = Field(default=1_000_000, ge=1)
    """At most about this many bronze rows per silver promotion (whole bronze commits are taken)."""

    @field_validator("prefix")
    @classmethod
    def _confined(cls, value: str) -> str:
        return _confined_prefix(value)

    @model_validator(mode="after")
    def _interval_range(self) -> SourceDecl:
        if not timedelta(minutes=1) <= self.interval <= timedelta(hours=24):
            raise ValueError("interval must be between 1m and 24h (5m–15m is typical)")
        return self


class ColumnDecl(_Model):
    type: str
    nullable: bool = True
    """``false``: a record whose value is null or absent is quarantined."""
    derive: str | None = None
    strings_as_numbers: bool | None = None
    """``true``: this int64/float64 column also accepts a JSON string holding the number."""


_KINDS = ("missing", "valid_values", "range", "duplicate", "reference", "freshness", "row_count")


class CheckDecl(_Model):
    """One check: exactly one of the kind keys, plus its options."""

    missing: str | None = None
    valid_values: str | None = None
    range: str | None = None
    duplicate: list[str] | str | None = None
    reference: str | None = None
    freshness: str | None = None
    row_count: int | None = None
    schema_: bool | None = Field(default=None, alias="schema")
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    dataset: str | None = None
    column: str | None = None
    max_age: Interval | None = None
    max_percent: float = Field(default=0.0, ge=0, le=100)
    level: Literal["fail", "warn"] = "fail"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> CheckDecl:
        kinds = [k for k in (*_KINDS, "schema_") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a check has exactly one of missing, valid_values, range, duplicate, reference, "
                f"freshness, row_count, schema; found {', '.join(k.rstrip('_') for k in kinds) or 'none'}"
            )
        kind = kinds[0]
        if kind == "valid_values" and not self.values:
            raise ValueError("a valid_values check needs 'values: [...]'")
        if kind == "range" and self.min is None and self.max is None:
            raise ValueError("a range check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min:g} is above max {self.max:g}")
        if kind == "reference" and not self.dataset:
            raise ValueError("a reference check needs 'dataset: <dataset whose key it must match>'")
        if kind != "reference" and (self.dataset or self.column):
            raise ValueError("'dataset' and 'column' belong to a reference check")
        if kind == "freshness" and self.max_age is None:
            raise ValueError("a freshness check needs 'max_age' such as 1h or 30m")
        if kind != "freshness" and self.max_age is not None:
            raise ValueError("'max_age' belongs to a freshness check")
        if kind == "row_count" and self.row_count is not None and self.row_count < 0:
            raise ValueError("row_count must be 0 or more")
        return self

    @property
    def kind(self) -> str:
        for k in _KINDS:
            if getattr(self, k) is not None:
                return k
        return "schema"

    def columns(self) -> list[str]:
        if self.kind == "duplicate":
            return [self.duplicate] if isinstance(self.duplicate, str) else list(self.duplicate or [])
        if self.kind in ("row_count", "schema"):
            return []
        return [getattr(self, self.kind)]


class DatasetDecl(_Model):
    """A kind of record in a source: its bronze table and its silver table."""

    source: str
    prefix: str | None = None
    columns: dict[str, str | ColumnDecl]
    key: list[str] | str
    order_by: str | None = None
    partition_by: str | None = None
    checks: list[CheckDecl] = []
    zorder: list[str] | str = []
    """Columns to z-order the silver table's files by (maintenance), not the partition column."""
    description: str = ""
    strings_as_numbers: bool = False
    """``true``: every int64/float64 column also accepts a JSON string holding the number."""
    unknown_fields: Literal["warn", "fail", "evolve"] = "warn"
    """Members of a record that are not columns: ``warn`` counts them, ``fail`` quarantines the
    record, ``evolve`` adds them to the silver table as columns (:mod:`lakehouse.evolve`)."""

    @field_validator("prefix")
    @classmethod
    def _confined(cls, value: str | None) -> str | None:
        return None if value is None else _confined_prefix(value)

    def key_columns(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


class ModelDecl(_Model):
    """A gold model: SQL over silver tables, partitioned by a column of its result."""

    sql: str
    partition_by: str
    key: list[str] | str | None = None
    checks: list[CheckDecl] = []
    zorder: list[str] | str = []
    """Columns to z-order the gold table's files by (maintenance), not the partition column."""
    description: str = ""

    def key_columns(self) -> list[str]:
        if self.key is None:
            return []
        return [self.key] if isinstance(self.key, str) else list(self.key)


class PipelineDecl(_Model):
    sources: dict[str, SourceDecl]
    datasets: dict[str, DatasetDecl]
    gold: dict[str, ModelDecl] = {}


class FileDecl(_Model):
    pipelines: dict[str, PipelineDecl]


# ----------------------------------------------------------------------------- loaded form


@dataclass(frozen=True)
class Dataset:
    """A dataset ready to run: its silver spec and where its files land."""

    spec: TableSpec
    source: str
    prefix: str
    format: str
    compression: str
    landing_time: str
    zorder: tuple[str, ...] = ()
    """Columns maintenance z-orders the silver table by (``zorder:`` in the declaration)."""
    lookback: timedelta = timedelta(hours=1)
    listing: str = "full"
    max_batch_files: int = 1000
    max_batch_bytes: int = 256 * 1024 * 1024
    max_batch_rows: int = 1_000_000

    @property
    def upstream(self) -> tuple[str, ...]:
        """The datasets this one's reference checks look up (promoted before it)."""
        return tuple(dict.fromkeys(c.ref_dataset for c in self.spec.checks if c.ref_dataset))


@dataclass(frozen=True)
class GoldModel:
    """A gold model ready to run: its SQL, inputs and derived result spec."""

    spec: TableSpec
    sql: str
    inputs: tuple[str, ...]
    zorder: tuple[str, ...] = ()
    """Columns maintenance z-orders the gold table by (``zorder:`` in the declaration)."""


@dataclass(frozen=True)
class Pipeline:
    name: str
    interval: timedelta
    datasets: tuple[Dataset, ...]
    models: tuple[GoldModel, ...]
    sources: dict[str, SourceDecl] = field(default_factory=dict)

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets:
            if d.spec.name == name:
                return d
        raise KeyError(name)


@dataclass(frozen=True)
class Declaration:
    path: str
    pipelines: dict[str, Pipeline]

    def pipeline(self, name: str | None = None) -> Pipeline:
        """The pipeline called ``name``; without a name, the only one."""
        if name is None:
            if len(self.pipelines) != 1:
                raise ConfigError(
                    f"{self.path} declares {len(self.pipelines)} pipelines "
                    f"({', '.join(self.pipelines)}): choose one with --pipeline NAME"
                )
            return next(iter(self.pipelines.values()))
        if name not in self.pipelines:
            raise ConfigError(f"{self.path}: no pipeline {name!r} (declared: {', '.join(self.pipelines)})")
        return self.pipelines[name]


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{self.path}: {where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(self.items))


def _column(
    name: str, decl: str | ColumnDecl, where: str, problems: _Problems, *, strings_as_numbers: bool = False
) -> Column | None:
    if not _NAME.match(name):
        problems.add(where, f"{name!r} is not a valid column name (letters, digits and _, not starting with a digit)")
        return None
    d = decl if isinstance(decl, ColumnDecl) else ColumnDecl(type=decl)
    dtype = d.type.strip().lower().replace(" ", "")
    m = _DECIMAL.match(dtype)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        if not 1 <= p <= 38 or s > p:
            problems.add(where + ".type", f"decimal({p},{s}) is out of range: precision 1–38, scale ≤ precision")
            return None
        dtype = f"decimal({p},{s})"
    elif dtype not in SIMPLE_TYPES:
        problems.add(where + ".type", f"unknown type {d.type!r}: expected one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)")
        return None
    as_numbers = strings_as_numbers if d.strings_as_numbers is None else d.strings_as_numbers
    if d.strings_as_numbers and dtype not in ("int64", "float64"):
        problems.add(where + ".strings_as_numbers", f"applies to int64 and float64 columns; {name} is {dtype}")
        return None
    return Column(
        name, dtype, nullable=d.nullable, derive=d.derive,
        strings_as_numbers=as_numbers and dtype in ("int64", "float64"),
    )


def _check(
    decl: CheckDecl, columns: dict[str, Column], where: str, problems: _Problems,
    datasets: dict[str, DatasetDecl] | None = None,
) -> Check | None:
    for col in decl.columns():
        if col not in columns:
            problems.add(where, f"{col!r} is not a column (columns: {', '.join(columns)})")
            return None
    kind = decl.kind
    if kind == "range":
        col = columns[decl.columns()[0]]
        if col.dtype not in ("int64", "float64") and not col.decimal:
            problems.add(where, f"a range check needs a numeric column; {col.name} is {col.dtype}")
            return None
    if kind == "missing":
        return Check("missing", column=decl.missing, max_percent=decl.max_percent, level=decl.level)
    if kind == "valid_values":
        return Check("valid_values", column=decl.valid_values, values=tuple(decl.values or ()), max_percent=decl.max_percent, level=decl.level)
    if kind == "range":
        return Check("range", column=decl.range, min=decl.min, max=decl.max, max_percent=decl.max_percent, level=decl.level)
    if kind == "duplicate":
        return Check("duplicate", columns=tuple(decl.columns()), level=decl.level)
    if kind == "row_count":
        return Check("row_count", min_rows=decl.row_count or 0, level=decl.level)
    if kind in ("freshness", "reference") and datasets is None:
        problems.add(where, f"{kind} checks belong to datasets: they are checked where rows enter silver")
        return None
    if kind == "freshness":
        if columns[decl.freshness or ""].dtype not in ("timestamp", "date"):
            problems.add(where, f"a freshness check needs a timestamp or date column; {decl.freshness} is {columns[decl.freshness or ''].dtype}")
            return None
        return Check("freshness", column=decl.freshness, max_age=decl.max_age, level=decl.level)
    if kind == "reference":
        target = (datasets or {}).get(decl.dataset or "")
        if target is None:
            problems.add(where + ".dataset", f"no dataset {decl.dataset!r} (datasets: {', '.join(datasets)})")
            return None
        ref_column = decl.column or (target.key_columns()[0] if len(target.key_columns()) == 1 else None)
        if ref_column is None:
            problems.add(where + ".column", f"{decl.dataset} has a key of several columns {target.key_columns()}: name the one to match with 'column'")
            return None
        if ref_column not in target.columns:
            problems.add(where + ".column", f"{ref_column!r} is not a column of {decl.dataset} (columns: {', '.join(target.columns)})")
            return None
        return Check("reference", column=decl.reference, ref_dataset=decl.dataset, ref_column=ref_column, max_percent=decl.max_percent, level=decl.level)
    return Check("schema", level=decl.level)


def _dataset(name: str, decl: DatasetDecl, pipe: PipelineDecl, where: str, problems: _Problems) -> Dataset | None:
    before = len(problems.items)
    if not _NAME.match(name):
        problems.add(where, f"{name!r} is not a valid dataset name (letters, digits and _)")
    if decl.source not in pipe.sources:
        problems.add(where + ".source", f"no source {decl.source!r} (sources: {', '.join(pipe.sources) or 'none'})")
    columns: dict[str, Column] = {}
    for col_name, col_decl in decl.columns.items():
        col = _column(col_name, col_decl, f"{where}.columns.{col_name}", problems, strings_as_numbers=decl.strings_as_numbers)
        if col is not None:
            columns[col_name] = col
    for col in columns.values():
        if col.derive is not None:
            m = re.match(r"^date\((\w+)\)$", col.derive.strip())
            if not m:
                problems.add(f"{where}.columns.{col.name}.derive", f"unknown derivation {col.derive!r}: expected date(<timestamp column>)")
            elif m.group(1) not in columns or columns[m.group(1)].dtype != "timestamp":
                problems.add(f"{where}.columns.{col.name}.derive", f"date(...) needs a timestamp column of {name}; {m.group(1)!r} is not one")
            elif col.dtype != "date":
                problems.add(f"{where}.columns.{col.name}.type", "a column derived with date(...) has type date")
    keys = decl.key_columns()
    if not keys:
        problems.add(where + ".key", "a dataset needs a business key: one column or a list of columns")
    for k in keys:
        if k not in columns:
            problems.add(where + ".key", f"{k!r} is not a column of {name} (columns: {', '.join(decl.columns)})")
    for attr in ("order_by", "partition_by"):
        value = getattr(decl, attr)
        if value is not None and value not in columns:
            problems.add(f"{where}.{attr}", f"{value!r} is not a column of {name} (columns: {', '.join(decl.columns)})")
    if decl.order_by and decl.order_by in columns and columns[decl.order_by].dtype not in ("timestamp", "date", "int64"):
        problems.add(f"{where}.order_by", f"the ordering column must be a timestamp, date or int64; {decl.order_by} is {columns[decl.order_by].dtype}")
    checks = [
        made for i, c in enumerate(decl.checks)
        if (made := _check(c, columns, f"{where}.checks[{i}]", problems, pipe.datasets)) is not None
    ]
    zorder = _zorder(decl.zorder, decl.columns, decl.partition_by, name, where + ".zorder", problems)
    if len(problems.items) > before or decl.source not in pipe.sources:
        return None
    source = pipe.sources[decl.source]
    prefix = "/".join(p.strip("/") for p in (source.prefix, decl.prefix if decl.prefix is not None else name) if p.strip("/"))
    spec = TableSpec(
        name=name,
        layer="silver",
        columns=tuple(columns.values()),
        keys=tuple(keys),
        order_by=decl.order_by,
        partition_by=decl.partition_by,
        checks=tuple(checks),
        description=decl.description,
        unknown_fields=decl.unknown_fields,
        record_values="text" if source.format == "csv" else "json",
    )
    return Dataset(
        spec, decl.source, prefix, source.format, source.compression, source.landing_time, zorder,
        lookback=source.lookback, listing=source.listing, max_batch_files=source.max_batch_files,
        max_batch_bytes=source.max_batch_bytes, max_batch_rows=source.max_batch_rows,
    )


def _zorder(
    zorder: list[str] | str, columns: Any, partition_by: str | None, table: str, where: str, problems: _Problems
) -> tuple[str, ...]:
    """The declared z-order columns, each a column of ``table`` other than its partition column."""
    zorder = [zorder] if isinstance(zorder, str) else zorder
    for col in zorder:
        if col not in columns:
            problems.add(where, f"{col!r} is not a column of {table} (columns: {', '.join(columns)})")
        elif col == partition_by:
            problems.add(where, f"{col!r} is the partition column: z-order by columns inside a partition")
    if len(set(zorder)) != len(zorder):
        problems.add(where, f"lists a column twice: {', '.join(zorder)}")
    return tuple(zorder)


def _promotion_order(datasets: dict[str, Dataset], where: str, problems: _Problems) -> dict[str, Dataset]:
    """Datasets in declaration order, except that a referenced dataset comes before its users."""
    ordered: dict[str, Dataset] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered or name not in datasets:
            return
        if name in visiting:
            cycle = " → ".join([*visiting[visiting.index(name):], name])
            problems.add(where, f"reference checks form a cycle ({cycle}): one dataset must be promoted first")
            return
        visiting.append(name)
        for upstream in datasets[name].upstream:
            visit(upstream)
        visiting.pop()
        ordered[name] = datasets[name]

    for name in datasets:
        visit(name)
    return ordered


_DUCKDB_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "int64",
    "INTEGER": "int64",
    "SMALLINT": "int64",
    "DOUBLE": "float64",
    "FLOAT": "float64",
    "BOOLEAN": "bool",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}


def _model(
    name: str, decl: ModelDecl, datasets: dict[str, Dataset], where: str, problems: _Problems,
    declared: frozenset[str] = frozenset(),
) -> GoldModel | None:
    import duckdb

    from lakehouse.models import referenced_tables

    if not _NAME.match(name):
        problems.add(where, f"{name!r} is not a valid model name (letters, digits and _)")
        return None
    try:
        inputs = referenced_tables(decl.sql)
    except Exception as exc:  # duckdb raises its own parser errors
        problems.add(where + ".sql", f"does not parse: {exc}")
        return None
    if any(t in declared and t not in datasets for t in inputs):
        return None  # an input is declared but invalid: its own problem is reported, not a follow-on
    unknown = [t for t in inputs if t not in datasets]
    if unknown or not inputs:
        problems.add(
            where + ".sql",
            f"reads {', '.join('silver.' + t for t in unknown) or 'no silver table'}; "
            f"a model reads silver tables by name: {', '.join('silver.' + d for d in datasets)}",
        )
        return None
    con = duckdb.connect()
    con.execute("CREATE SCHEMA silver")
    for t in inputs:
        cols = ", ".join(f'"{c.name}" {c.sql_type()}' for c in datasets[t].spec.columns)
        con.execute(f'CREATE TABLE silver."{t}" ({cols})')
    con.execute("SET enable_external_access = false")  # a model reads silver, never a file (not even here)
    con.execute("SET lock_configuration = true")
    try:
        described = con.execute(f"DESCRIBE ({decl.sql})").fetchall()
    except duckdb.Error as exc:
        problems.add(where + ".sql", f"does not run against the declared silver schemas: {str(exc).splitlines()[0]}")
        return None
    columns: dict[str, Column] = {}
    for row in described:
        col_name, sql_type = row[0], str(row[1]).upper()
        m = re.match(r"^DECIMAL\((\d+),(\d+)\)$", sql_type)
        dtype = f"decimal({m.group(1)},{m.group(2)})" if m else _DUCKDB_TYPES.get(sql_type)
        if dtype is None or not _NAME.match(col_name):
            problems.add(where + ".sql", f"result column {col_name!r} has type {sql_type}: cast it in the SQL to BIGINT, DOUBLE, DECIMAL(p,s), VARCHAR, DATE, BOOLEAN or TIMESTAMPTZ, and name it with letters, digits and _")
            continue
        columns[col_name] = Column(col_name, dtype)
    if decl.partition_by not in columns:
        problems.add(where + ".partition_by", f"{decl.partition_by!r} is not a column of the model's result (columns: {', '.join(columns)})")
        return None
    for k in decl.key_columns():
        if k not in columns:
            problems.add(where + ".key", f"{k!r} is not a column of the model's result (columns: {', '.join(columns)})")
            return None
    checks = [c for i, d in enumerate(decl.checks) if (c := _check(d, columns, f"{where}.checks[{i}]", problems)) is not None]
    before = len(problems.items)
    zorder = _zorder(decl.zorder, columns, decl.partition_by, "the model's result", where + ".zorder", problems)
    if len(problems.items) > before:
        return None
    spec = TableSpec(
        name=name, layer="gold", columns=tuple(columns.values()), keys=tuple(decl.key_columns()),
        partition_by=decl.partition_by, checks=tuple(checks), description=decl.description,
    )
    return GoldModel(spec, decl.sql, tuple(inputs), zorder)


def _format_pydantic(path: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        # drop pydantic's union-branch markers such as "str" / "ColumnDecl" from the path
        loc = re.sub(r"\.(str|int|float|bool|list\[str\]|ColumnDecl|function-after\[[^\]]*\]|function-before\[[^\]]*\])(?=\.|\[|$)", "", loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the README's configuration reference)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {loc}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(dict.fromkeys(lines))


def parse(text: str, *, path: str = DEFAULT_FILE) -> Declaration:
    """Validate a YAML declaration; raises ``ConfigError`` naming the file, path and expectation."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid configuration:\n  {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid configuration:\n  {path}: expected a mapping with 'pipelines:' at the top")
    try:
        decl = FileDecl.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_pydantic(path, exc)) from None
    problems = _Problems(path)
    pipelines: dict[str, Pipeline] = {}
    if not decl.pipelines:
        problems.add("pipelines", "declare at least one pipeline")
    for pname, pipe in decl.pipelines.items():
        where = f"pipelines.{pname}"
        if not pipe.datasets:
            problems.add(where + ".datasets", "declare at least one dataset")
        datasets = {}
        for dname, ddecl in pipe.datasets.items():
            ds = _dataset(dname, ddecl, pipe, f"{where}.datasets.{dname}", problems)
            if ds is not None:
                datasets[dname] = ds
        datasets = _promotion_order(datasets, f"{where}.datasets", problems)
        models = []
        for mname, mdecl in pipe.gold.items():
            if mname in pipe.datasets:
                problems.add(f"{where}.gold.{mname}", f"{mname!r} is also a dataset: give the model another name")
                continue
            model = _model(mname, mdecl, datasets, f"{where}.gold.{mname}", problems, frozenset(pipe.datasets))
            if model is not None:
                models.append(model)
        intervals = {s.interval for s in pipe.sources.values()}
        interval = min(intervals) if intervals else timedelta(minutes=15)
        pipelines[pname] = Pipeline(pname, interval, tuple(datasets.values()), tuple(models), dict(pipe.sources))
    problems.raise_if_any()
    return Declaration(path, pipelines)


@functools.lru_cache(maxsize=16)
def _parse_once(text: str, path: str) -> Declaration:
    """:func:`parse`, remembered by text: a flow run loads its declaration several times
    (run name, window, tasks), and the gold models' DuckDB type inference is not free."""
    return parse(text, path=path)


def load(path: str | Path | None = None) -> Declaration:
    """Load ``path``, else ``$LAKEHOUSE_CONFIG``, else ``./lakehouse.yaml``, else the shop."""
    import os

    chosen = path or os.environ.get("LAKEHOUSE_CONFIG")
    if chosen is None and Path(DEFAULT_FILE).exists():
        chosen = DEFAULT_FILE
    if chosen is None:
        text = resources.files("lakehouse").joinpath("pipelines/shop.yaml").read_text()
        return _parse_once(text, "<built-in shop pipeline>")
    file = Path(chosen)
    if not file.exists():
        raise ConfigError(f"configuration file {file} does not exist")
    return _parse_once(file.read_text(), str(file))
