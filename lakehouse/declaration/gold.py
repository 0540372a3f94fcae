"""A gold model's result spec, inferred by DuckDB from its SQL over the declared silver schemas."""

from __future__ import annotations

from typing import Any

from lakehouse.declaration.parts import check, z_order
from lakehouse.specs import (
    Additive,
    Column,
    Dataset,
    GoldModel,
    TableSpec,
    from_duckdb,
    is_identifier,
)


def gold_model(
    name: str, decl: Any, datasets: dict[str, Dataset], where: str, problems: Any,
    declared: frozenset[str] = frozenset(),
) -> GoldModel | None:
    """The declared gold model ``name`` as a :class:`GoldModel`, or None after adding its problems."""
    import duckdb

    from lakehouse.layers.gold.models import referenced_tables

    if not is_identifier(name):
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
        cols = ", ".join(f'"{c.name}" {c.sql_type()}' for c in (*datasets[t].spec.columns, *datasets[t].spec.history_columns()))
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
        dtype = from_duckdb(sql_type)
        if dtype is None or not is_identifier(col_name):
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
    checks = [c for i, d in enumerate(decl.checks) if (c := check(d, columns, f"{where}.checks[{i}]", problems)) is not None]
    before = len(problems.items)
    zorder = z_order(decl.zorder, columns, decl.partition_by, "the model's result", where + ".zorder", problems)
    if len(problems.items) > before:
        return None
    additive = None
    if decl.incremental is not None:
        additive = _additive(decl, columns, {t: datasets[t] for t in inputs}, where + ".incremental", problems)
    if decl.touched == "inputs" and decl.incremental is not None:
        problems.add(where + ".touched", "touched: inputs chooses the partitions to recompute; an incremental model recomputes none: leave one out")
    elif decl.touched == "inputs":
        lacking = [t for t in inputs if decl.partition_by not in datasets[t].spec.column_names]
        if lacking:
            problems.add(where + ".touched", f"touched: inputs needs the partition column {decl.partition_by!r} in every input; {', '.join('silver.' + t for t in lacking)} {'has' if len(lacking) == 1 else 'have'} none")
    if decl.event is not None:
        if not decl.key_columns():
            problems.add(where + ".event", "a model with an event needs a key: an event is sent for each row new by key")
        elif decl.event.resource_name is not None and decl.event.resource_name not in columns:
            problems.add(where + ".event.resource_name", f"{decl.event.resource_name!r} is not a column of the model's result (columns: {', '.join(columns)})")
    if len(problems.items) > before:
        return None
    spec = TableSpec(
        name=name, layer="gold", columns=tuple(columns.values()), keys=tuple(decl.key_columns()),
        partition_by=decl.partition_by, checks=tuple(checks), description=decl.description,
    )
    return GoldModel(spec, decl.sql, tuple(inputs), zorder, additive, touched_by_inputs=decl.touched == "inputs",
                     event=decl.event and decl.event.name, event_resource=decl.event and decl.event.resource_name)


def _additive(decl: Any, columns: dict[str, Column], inputs: dict[str, Dataset], where: str, problems: Any) -> Additive | None:
    """The ``incremental:`` of a model, checked against its key, result and inputs."""
    inc, keys = decl.incremental, decl.key_columns()
    before = len(problems.items)
    if not keys or decl.partition_by not in keys:
        problems.add(where, f"an incremental model needs a key that includes its partition column {decl.partition_by!r}: each result row is found by it")
    lacking = [t for t, ds in inputs.items() if inc.by not in ds.spec.column_names]
    if lacking:
        problems.add(where + ".by", f"{inc.by!r} must be a column of every input; {', '.join('silver.' + t for t in lacking)} {'has' if len(lacking) == 1 else 'have'} none")
    versioned = [t for t, ds in inputs.items() if ds.spec.tracked is not None]
    if versioned:
        problems.add(where, f"an incremental model reads one row per key; {', '.join('silver.' + t for t in versioned)} keeps versions (history: scd2): leave incremental out")
    measures = tuple(c for c in columns if c not in keys)
    if inc.count not in measures:
        problems.add(where + ".count", f"{inc.count!r} is not a result column outside the key (measures: {', '.join(measures) or 'none'})")
    inexact = [c for c in measures if columns[c].dtype != "int64" and not columns[c].dtype.startswith("decimal")]
    if inexact:
        problems.add(where, f"every result column outside the key is summed, so it must be BIGINT or DECIMAL; {', '.join(f'{c} is {columns[c].dtype}' for c in inexact)} (a float's sum is not exact; a max or a text is not additive: leave incremental out)")
    if len(problems.items) > before:
        return None
    return Additive(inc.by, inc.count, measures)


