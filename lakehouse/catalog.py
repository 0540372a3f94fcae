"""The tables of the warehouse, queryable with DuckDB as ``layer.table``."""

from __future__ import annotations

import duckdb

from lakehouse import segments, sql
from lakehouse.commit import open_table
from lakehouse.config import Settings
from lakehouse.duck import open_database
from lakehouse.layers.bronze import bronze_name
from lakehouse.pipeline import Declaration
from lakehouse.storage import storage_options


def table_names(declaration: Declaration) -> list[tuple[str, str]]:
    """Every ``(layer, table)`` the declaration's pipelines have."""
    names = []
    for pipeline in declaration.pipelines.values():
        for ds in pipeline.datasets:
            names += [("bronze", bronze_name(ds.spec)), ("silver", ds.spec.name), ("quarantine", ds.spec.name)]
        names += [("gold", m.spec.name) for m in pipeline.models]
        if {ds.spec.name for ds in pipeline.datasets} >= segments.READS:
            names.append(("gold", segments.TABLE))  # written by the monthly flow, not by a window
    return list(dict.fromkeys(names))


def connect(settings: Settings, declaration: Declaration) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per existing table, named ``layer.table``.

    Each view is a ``delta_scan`` of the table's current version (the DuckDB ``delta``
    extension): a query's filters skip partitions, files and row groups, so nothing is
    downloaded that the query does not need, and nothing needs the network beyond the store.
    """
    con = open_database(settings, confine=False)
    options = storage_options(settings)
    from lakehouse.quality.scan_log import scan_results_uri

    uris = [(layer, name, settings.table_uri(layer, name)) for layer, name in table_names(declaration)]
    uris.append(("quality", "scan_results", scan_results_uri(settings)))
    for layer, name, uri in uris:
        table = open_table(uri, options)
        if table is None:
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        # the table's own URI, as gold's delta_scan reads it (an absolute file:// one for a local path)
        con.execute(f'CREATE VIEW "{layer}"."{name}" AS SELECT * FROM delta_scan({sql.literal(table.table_uri)})')
    return con
