"""Cross-references of a declaration: from its validated models to table specs.

A key must name a column, a check a column of its table, a reference check a dataset, a
model an existing silver table …; every problem is reported with its path
(:class:`~lakehouse.declaration.errors.Problems`). What comes out is the loaded form of
:mod:`lakehouse.specs` (``Declaration``, ``Pipeline``, ``Dataset``), which is all the
engine sees of the YAML.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import yaml
from pydantic import ValidationError

from lakehouse.declaration.errors import Problems, format_pydantic
from lakehouse.declaration.gold import gold_model
from lakehouse.declaration.parts import check, column, tracked_columns, z_order
from lakehouse.declaration.schema import file_model
from lakehouse.declaration.variables import substitute
from lakehouse.errors import ConfigError
from lakehouse.pipeline import Declaration, Pipeline
from lakehouse.specs import Column, Dataset, TableSpec, is_identifier

DEFAULT_FILE = "lakehouse.yaml"


def _dataset(name: str, decl: Any, pipe: Any, where: str, problems: Problems) -> Dataset | None:
    before = len(problems.items)
    if not is_identifier(name):
        problems.add(where, f"{name!r} is not a valid dataset name (letters, digits and _)")
    if decl.source not in pipe.sources:
        problems.add(where + ".source", f"no source {decl.source!r} (sources: {', '.join(pipe.sources) or 'none'})")
    columns: dict[str, Column] = {}
    for col_name, col_decl in decl.columns.items():
        col = column(col_name, col_decl, f"{where}.columns.{col_name}", problems, strings_as_numbers=decl.strings_as_numbers)
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
        if (made := check(c, columns, f"{where}.checks[{i}]", problems, pipe.datasets)) is not None
    ]
    zorder = z_order(decl.zorder, decl.columns, decl.partition_by, name, where + ".zorder", problems)
    tracked = tracked_columns(decl, columns, name, where, problems)
    if len(problems.items) > before or decl.source not in pipe.sources:
        return None
    source = pipe.sources[decl.source]
    files = source.kind == "landing_files"
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
        record_values="text" if files and source.format == "csv" else "json",
        target_file_size=decl.target_file_size,
        tracked=tracked,
    )
    if not files:
        return _record_dataset(name, decl, source, spec, zorder, where, problems)
    if decl.resource is not None:
        problems.add(where + ".resource", f"a landing_files source reads files under a prefix: use prefix, not resource, for {name}")
        return None
    prefix = "/".join(p.strip("/") for p in (source.prefix, decl.prefix if decl.prefix is not None else name) if p.strip("/"))
    return Dataset(
        spec, decl.source, prefix, source.format, source.compression, source.landing_time, zorder,
        lookback=source.lookback, listing=source.listing, max_batch_files=source.max_batch_files,
        max_batch_bytes=source.max_batch_bytes, max_batch_rows=source.max_batch_rows,
    )


def _record_dataset(
    name: str, decl: Any, source: Any, spec: TableSpec, zorder: tuple[str, ...], where: str, problems: Problems,
) -> Dataset | None:
    """A dataset of a source read from a cursor (an API, a database, a stream): records arrive as JSON."""
    if decl.prefix is not None:
        problems.add(where + ".prefix", f"a {source.kind} source has no landing prefix: name what {name} reads with resource")
        return None
    if (wrong := source.resource_problem(decl.resource, dataset=name)) is not None:
        problems.add(where + ".resource", wrong)
        return None
    return Dataset(
        spec, decl.source, "", "jsonl", "none", "key", zorder, max_batch_rows=source.max_batch_rows,
        max_batch_bytes=source.max_batch_bytes, kind=source.kind, resource=decl.resource if decl.resource is not None else name, connection=source,
    )


def _promotion_order(datasets: dict[str, Dataset], where: str, problems: Problems) -> dict[str, Dataset]:
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


def parse(text: str, *, path: str = DEFAULT_FILE) -> Declaration:
    """Validate a YAML declaration; raises ``ConfigError`` naming the file, path and expectation.

    ``${VAR}`` and ``${VAR:-default}`` in string values are taken from the environment first
    (:mod:`lakehouse.declaration.variables`).
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"invalid configuration:\n  {path}: not valid YAML: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"invalid configuration:\n  {path}: expected a mapping with 'pipelines:' at the top"
        raise ConfigError(msg)
    unset = Problems(path)
    raw = substitute(raw, unset)
    unset.raise_if_any()
    try:
        decl: Any = file_model().model_validate(raw)  # a model built at run time: its fields are not declared
    except ValidationError as exc:
        raise ConfigError(format_pydantic(path, exc)) from None
    problems = Problems(path)
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
            model = gold_model(mname, mdecl, datasets, f"{where}.gold.{mname}", problems, frozenset(pipe.datasets))
            if model is not None:
                models.append(model)
        intervals = {s.interval for s in pipe.sources.values()}
        interval = min(intervals) if intervals else timedelta(minutes=15)
        pipelines[pname] = Pipeline(pname, interval, tuple(datasets.values()), tuple(models), dict(pipe.sources))
    problems.raise_if_any()
    return Declaration(path, pipelines)


