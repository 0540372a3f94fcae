"""The tables of the warehouse, queryable with DuckDB as ``layer.table``."""

from __future__ import annotations

import duckdb

from lakehouse.bronze import bronze_name
from lakehouse.commit import open_table
from lakehouse.config import Settings
from lakehouse.declaration import Declaration
from lakehouse.storage import storage_options


def table_names(declaration: Declaration) -> list[tuple[str, str]]:
    """Every ``(layer, table)`` the declaration's pipelines have."""
    names = []
    for pipeline in declaration.pipelines.values():
        for ds in pipeline.datasets:
            names += [("bronze", bronze_name(ds.spec)), ("silver", ds.spec.name), ("quarantine", ds.spec.name)]
        names += [("gold", m.spec.name) for m in pipeline.models]
    return names


def connect(settings: Settings, declaration: Declaration) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per existing table, named ``layer.table``.

    Tables are read through Arrow datasets of their current Delta snapshot, so nothing is
    downloaded that a query does not read, and nothing needs the network.
    """
    con = duckdb.connect()
    con.execute("SET disabled_optimizers = 'filter_pushdown,join_filter_pushdown'")  # see lakehouse.models._connect
    options = storage_options(settings)
    from lakehouse.quality import scan_results_uri

    uris = [(layer, name, settings.table_uri(layer, name)) for layer, name in table_names(declaration)]
    uris.append(("quality", "scan_results", scan_results_uri(settings)))
    for layer, name, uri in uris:
        table = open_table(uri, options)
        if table is None:
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        hidden = f"__{layer}__{name}"
        con.register(hidden, table.to_pyarrow_dataset(as_large_types=True))
        con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT * FROM "{hidden}"')
    return con
