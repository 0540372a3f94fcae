"""The tables of the warehouse, queryable with DuckDB as ``layer.table``."""

from __future__ import annotations

import duckdb

from lakehouse.bronze import bronze_name
from lakehouse.commit import open_table
from lakehouse.config import Settings
from lakehouse.shop import DATASETS, GOLD
from lakehouse.storage import storage_options


def table_names() -> list[tuple[str, str]]:
    """Every ``(layer, table)`` the pipeline declares."""
    names = []
    for spec in DATASETS:
        names += [("bronze", bronze_name(spec)), ("silver", spec.name), ("quarantine", spec.name)]
    names += [("gold", spec.name) for spec in GOLD]
    return names


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per existing table, named ``layer.table``.

    Tables are read through Arrow datasets of their current Delta snapshot, so nothing is
    downloaded that a query does not read, and nothing needs the network.
    """
    con = duckdb.connect()
    options = storage_options(settings)
    for layer, name in table_names():
        table = open_table(settings.table_uri(layer, name), options)
        if table is None:
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        hidden = f"__{layer}__{name}"
        con.register(hidden, table.to_pyarrow_dataset())
        con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT * FROM "{hidden}"')
    return con
