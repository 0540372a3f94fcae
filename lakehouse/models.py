"""Gold models: SQL over silver tables, run by DuckDB over Arrow data (no I/O here).

A model reads silver tables by name (``silver.orders``); the caller hands in the Arrow
data of each. :func:`touched_partitions` finds which partitions of the result a change of
the inputs can move, :func:`run_model` computes the result (all of it, or only some
partitions).

How the touched partitions are found: for each input that changed, the model runs with
that input replaced by its changed rows (pre- and post-images from the change data feed:
the old and the new version of every changed row) and every other input replaced by its
old and its current snapshot together. The partition values of that result are the
partitions whose rows can differ. This holds for joins, filters and aggregates grouped by
the partition column; a model whose partition depends on rows outside its own group
(window functions over all partitions, ``NOT EXISTS`` across partitions) is not
partition-local and should be rebuilt instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse.specs import quote

_SILVER_REF = re.compile(r'\bsilver\s*\.\s*"?([A-Za-z_][A-Za-z0-9_]*)"?', re.IGNORECASE)

ArrowData = Any
"""A ``pyarrow.Table``, ``RecordBatchReader`` or ``pyarrow.dataset.Dataset``."""


def referenced_tables(sql: str) -> list[str]:
    """The silver tables a model's SQL reads, in order of first mention.

    >>> referenced_tables("select * from silver.orders o join silver.order_items i using (order_id)")
    ['orders', 'order_items']
    """
    duckdb.extract_statements(sql)  # raises a ParserException on SQL that does not parse
    return list(dict.fromkeys(m.group(1) for m in _SILVER_REF.finditer(sql)))


def _connect(tables: Mapping[str, ArrowData | list[ArrowData]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # DuckDB 1.5 pushes some filters into pyarrow dataset scans as string_view scalars,
    # which pyarrow cannot compare with the tables' string columns (measured on the shop
    # model: "no kernel matching (large_string, string_view)"). DuckDB filters instead.
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    con.execute("CREATE SCHEMA silver")
    for name, data in tables.items():
        parts = data if isinstance(data, list) else [data]
        selects = []
        for i, part in enumerate(parts):
            hidden = f"__{name}_{i}"
            con.register(hidden, part)
            selects.append(f"SELECT * FROM {quote(hidden)}")
        con.execute(f"CREATE VIEW silver.{quote(name)} AS {' UNION ALL '.join(selects)}")
    return con


def run_model(
    sql: str,
    tables: Mapping[str, ArrowData],
    *,
    partition_by: str | None = None,
    partitions: list[Any] | None = None,
) -> pa.Table:
    """The model's result over ``tables``; only ``partitions`` of it when given."""
    con = _connect(tables)
    query = f"SELECT * FROM ({sql}) AS model"
    if partition_by is not None and partitions is not None:
        con.register("__partitions", pa.table({"p": pa.array(partitions)}) if partitions else pa.table({"p": pa.array([], pa.null())}))
        query += f" WHERE model.{quote(partition_by)} IN (SELECT p FROM __partitions)"
    return con.execute(query).to_arrow_table()


def touched_partitions(
    sql: str,
    partition_by: str,
    *,
    changes: Mapping[str, ArrowData],
    old: Mapping[str, ArrowData | None],
    current: Mapping[str, ArrowData],
) -> list[Any]:
    """Partition values of the result that the ``changes`` of the inputs can move.

    ``changes`` holds, per changed input, its changed rows (old and new versions);
    ``old`` the snapshot the previous result was computed from (None: there was none);
    ``current`` the snapshot now.
    """
    found: set[Any] = set()
    for changed, rows in changes.items():
        tables: dict[str, ArrowData | list[ArrowData]] = {}
        for name in current:
            if name == changed:
                tables[name] = rows
            else:
                before = old.get(name)
                tables[name] = [current[name]] if before is None else [current[name], before]
        con = _connect(tables)
        result = con.execute(f"SELECT DISTINCT {quote(partition_by)} FROM ({sql}) AS model").fetchall()
        found.update(r[0] for r in result)
    return sorted(found, key=lambda v: (v is None, v))
