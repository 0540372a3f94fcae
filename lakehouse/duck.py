"""DuckDB connections that read Delta tables in place, with pushdown, offline.

The ``delta`` extension (and ``httpfs``/``aws`` for S3) ship as wheels pinned beside
DuckDB (``duckdb-extension-*``, STACK.md), so nothing is downloaded at run time. A table
is read as ``delta_scan('<uri>', version => N)``: partition filters skip partitions, other
filters and the dynamic filters of joins skip files and row groups by their statistics.
"""

from __future__ import annotations

import threading
from urllib.parse import urlparse

import duckdb

from lakehouse.config import Settings
from lakehouse.storage import is_s3

_installed: set[str] = set()
_lock = threading.Lock()


def _load(con: duckdb.DuckDBPyConnection, name: str) -> None:
    with _lock:
        if name not in _installed:
            from duckdb_extensions import import_extension

            import_extension(name)  # copies the wheel's extension into DuckDB's directory
            _installed.add(name)
    con.load_extension(name)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can ``delta_scan`` the warehouse's tables."""
    con = duckdb.connect()
    _load(con, "delta")
    if is_s3(settings.warehouse):
        _load(con, "httpfs")
        _load(con, "aws")
        parts = [
            "TYPE S3",
            f"REGION {_quoted(settings.aws_region)}",
        ]
        if settings.aws_access_key_id and settings.aws_secret_access_key:
            parts += [
                f"KEY_ID {_quoted(settings.aws_access_key_id.get_secret_value())}",
                f"SECRET {_quoted(settings.aws_secret_access_key.get_secret_value())}",
            ]
        else:
            parts.append("PROVIDER credential_chain")
        if settings.aws_endpoint_url:
            endpoint = urlparse(settings.aws_endpoint_url)
            parts += [
                f"ENDPOINT {_quoted(endpoint.netloc)}",
                "URL_STYLE 'path'",
                f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}",
            ]
        con.execute(f"CREATE SECRET lakehouse_s3 ({', '.join(parts)})")
    return con
