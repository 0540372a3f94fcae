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
from dataclasses import dataclass
from typing import Any, TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakehouse.duck import pinned
from lakehouse.specs import quote
from lakehouse.sql import in_list

_SILVER_REF = re.compile(r'\bsilver\s*\.\s*"?([A-Za-z_][A-Za-z0-9_]*)"?', re.IGNORECASE)

ArrowData: TypeAlias = pa.Table | pa.RecordBatchReader | pads.Dataset
"""A ``pyarrow.Table``, ``RecordBatchReader`` or ``pyarrow.dataset.Dataset``."""


@dataclass(frozen=True)
class DeltaSnapshot:
    """A version of a Delta table, read by DuckDB's ``delta`` extension with pushdown.

    Filters on partition columns skip partitions, other filters (and the dynamic filters a
    join derives from its smaller side) skip files and row groups by their statistics, so
    a model restricted to a few partitions reads those and not the table's history.
    """

    uri: str
    version: int
    columns: tuple[str, ...]

    def scan(self, con: duckdb.DuckDBPyConnection) -> str:
        """``SELECT <columns> FROM`` the snapshot, attached to ``con``'s database once.

        Attached as a pinned snapshot (:func:`lakehouse.duck.pinned`): its log is read once
        however many queries of one gold batch scan it (each ``delta_scan`` reads it again).
        """
        return f"SELECT {', '.join(quote(c) for c in self.columns)} FROM {pinned(con, self.uri, self.version)}"


Source: TypeAlias = ArrowData | DeltaSnapshot


def referenced_tables(sql: str) -> list[str]:
    """The silver tables a model's SQL reads, in order of first mention.

    >>> referenced_tables("select * from silver.orders o join silver.order_items i using (order_id)")
    ['orders', 'order_items']
    """
    duckdb.extract_statements(sql)  # raises a ParserException on SQL that does not parse
    return list(dict.fromkeys(m.group(1) for m in _SILVER_REF.finditer(sql)))


def _select(con: duckdb.DuckDBPyConnection, name: str, i: int, part: Source, columns: list[str] | None) -> str:
    cols = ", ".join(quote(c) for c in columns) if columns else "*"
    if isinstance(part, DeltaSnapshot):
        return part.scan(con)
    hidden = f"__{name}_{i}"
    # copied into DuckDB (the parts given as Arrow are small: changes, pre-images, tests):
    # a registered Arrow scan cannot take the bloom and string_view filters DuckDB pushes
    con.register(f"{hidden}_arrow", part)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(hidden)} AS SELECT * FROM {quote(hidden + '_arrow')}")
    con.unregister(f"{hidden}_arrow")
    return f"SELECT {cols} FROM {quote(hidden)}"


def _connect(
    tables: Mapping[str, Source | list[Source]], con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection with a view ``silver.<name>`` per input (parts are UNIONed ALL)."""
    if con is None:
        con = duckdb.connect()
    con.execute("CREATE SCHEMA IF NOT EXISTS silver")
    for name, data in tables.items():
        parts = data if isinstance(data, list) else [data]
        columns = next((list(p.columns) for p in parts if isinstance(p, DeltaSnapshot)), None)
        selects = [_select(con, name, i, part, columns) for i, part in enumerate(parts)]
        con.execute(f"CREATE OR REPLACE VIEW silver.{quote(name)} AS {' UNION ALL '.join(selects)}")
    return con


def run_model(
    sql: str,
    tables: Mapping[str, Source],
    *,
    partition_by: str | None = None,
    partitions: list[Any] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """The model's result over ``tables``; only ``partitions`` of it when given.

    The partitions are written as literals (NULL included) so that DuckDB pushes them
    through the model into the scans of its inputs.
    """
    con = _connect(tables, con)
    query = f"SELECT * FROM ({sql}) AS model"
    if partition_by is not None and partitions is not None:
        query += f" WHERE {in_list(partition_by, partitions, alias='model')}"
    return con.execute(query).to_arrow_table()


def touched_partitions(
    sql: str,
    partition_by: str,
    *,
    changes: Mapping[str, ArrowData],
    old: Mapping[str, ArrowData | None],
    current: Mapping[str, Source],
    con: duckdb.DuckDBPyConnection | None = None,
    looked_up: frozenset[str] = frozenset(),
) -> list[Any]:
    """Partition values of the result that the ``changes`` of the inputs can move.

    ``changes`` holds, per changed input, its changed rows (old and new versions);
    ``old`` the rows of the snapshot the previous result was computed from that may differ
    from ``current`` (the whole old snapshot, or just its pre-images from the change data
    feed: together with ``current`` both give the same rows); ``current`` the snapshot now.

    An input named in ``looked_up`` is a table the model looks rows up in (an SCD2 table's
    version valid at a time, :mod:`lakehouse.layers.gold.versions`), perhaps with a left join
    that keeps the rows it finds nothing for: its changes touch the partitions whose result
    rows differ between the model over them and over none of its rows. (A left join over the
    changed rows alone yields every row of the other side; only those that found a changed
    row differ.)
    """
    found: set[Any] = set()
    column = quote(partition_by)
    for changed, rows in changes.items():
        if changed in looked_up and isinstance(rows, pa.Table) and rows.num_rows == 0:
            continue  # nothing a lookup sees changed (a record absorbed into its version)
        tables: dict[str, Source | list[Source]] = {}
        for name in current:
            if name == changed:
                tables[name] = rows
            else:
                before = old.get(name)
                tables[name] = [current[name]] if before is None else [current[name], before]
        connection = _connect(tables, con)
        if changed not in looked_up:
            result = connection.execute(f"SELECT DISTINCT {column} FROM ({sql}) AS model").fetchall()
            found.update(r[0] for r in result)
            continue
        connection.execute(f"CREATE OR REPLACE TEMP TABLE __with_changes AS SELECT * FROM ({sql}) AS model")
        _connect({**tables, changed: rows.schema.empty_table()}, connection)
        connection.execute(f"CREATE OR REPLACE TEMP TABLE __without AS SELECT * FROM ({sql}) AS model")
        result = connection.execute(
            f"SELECT DISTINCT {column} FROM ((SELECT * FROM __with_changes EXCEPT ALL SELECT * FROM __without) "
            f"UNION ALL (SELECT * FROM __without EXCEPT ALL SELECT * FROM __with_changes))"
        ).fetchall()
        found.update(r[0] for r in result)
    return sorted(found, key=lambda v: (v is None, v))
