"""DuckDB connections that read Delta tables in place, with pushdown, offline.

The ``delta`` extension (and ``httpfs``/``aws`` for S3) ship as wheels pinned beside
DuckDB (``duckdb-extension-*``, STACK.md), so nothing is downloaded at run time. A table
is read as ``delta_scan('<uri>', version => N)``: partition filters skip partitions, other
filters and the dynamic filters of joins skip files and row groups by their statistics.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from urllib.parse import urlparse

import duckdb

from lakehouse.config import Settings
from lakehouse.storage import is_s3, join, plain_http

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


_local = threading.local()


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can ``delta_scan`` the warehouse's tables.

    Loading the extensions costs about 0.4 s, so each thread keeps one database per
    warehouse configuration and every call gets a fresh connection to it (its own views,
    the extensions and the S3 secret shared). Give it back with :func:`release` (or close
    it); the database stays. Snapshots an earlier connection pinned are let go here too.
    """
    key = (settings.warehouse, settings.aws_endpoint_url, settings.aws_region, settings.s3_verify_tls,
           settings.aws_access_key_id.get_secret_value() if settings.aws_access_key_id else None)
    cache: dict[object, duckdb.DuckDBPyConnection] = getattr(_local, "databases", None) or {}
    _local.databases = cache
    if key not in cache:
        cache[key] = _database(settings)
    con = cache[key].cursor()
    con.execute("DROP SCHEMA IF EXISTS silver CASCADE")
    _unpin(con)
    return con


PINNED = "__pinned_"
"""The prefix of the databases :func:`pinned` attaches."""


def pinned(con: duckdb.DuckDBPyConnection, uri: str, version: int) -> str:
    """The name of version ``version`` of the Delta table at ``uri``, attached to ``con``'s database.

    Attached with ``PIN_SNAPSHOT``: the table's log is read once, when it is attached, and
    every later scan of it (with the same partition and statistics pushdown as
    ``delta_scan``) reuses that snapshot; a ``delta_scan`` reads the log again each time a
    query binds it. A version is immutable, so the same name serves every query until
    :func:`release` (or the thread's next :func:`connect`) detaches it.
    """
    name = PINNED + hashlib.sha256(f"{uri}@{int(version)}".encode()).hexdigest()[:16]
    con.execute(f"ATTACH IF NOT EXISTS {_quoted(uri)} AS {name} (TYPE delta, PIN_SNAPSHOT, VERSION {int(version)})")
    return name


def _unpin(con: duckdb.DuckDBPyConnection) -> None:
    names = con.execute(
        "SELECT database_name FROM duckdb_databases() WHERE starts_with(database_name, ?)", [PINNED]
    ).fetchall()
    for (name,) in names:
        con.execute(f"DETACH DATABASE IF EXISTS {name}")


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Detach the snapshots ``con`` pinned (:func:`pinned`) and close it."""
    try:
        _unpin(con)
    finally:
        con.close()


def open_database(settings: Settings, *, confine: bool = True) -> duckdb.DuckDBPyConnection:
    """A new DuckDB database that can ``delta_scan`` the warehouse (S3 secret included).

    ``confine``: gold SQL's confinement (:func:`_confine`); ``lakehouse query``, which runs
    the operator's own SQL over every layer, opens one without it.
    """
    return _database(settings, confine=confine)


def _database(settings: Settings, *, confine: bool = True) -> duckdb.DuckDBPyConnection:
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
                f"USE_SSL {'false' if plain_http(settings) else 'true'}",
            ]
        con.execute(f"CREATE SECRET lakehouse_s3 ({', '.join(parts)})")
        # httpfs does not verify certificates unless told to (its default is off)
        verify = "true" if settings.s3_verify_tls else "false"
        con.execute(f"SET enable_server_cert_verification = {verify}")
        con.execute(f"SET enable_curl_server_cert_verification = {verify}")
    if confine:
        _confine(con, settings)
    return con


def _confine(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Gold SQL reads silver and nothing else: no other file, URL, extension or setting.

    DuckDB's external access is turned off except for the warehouse's ``silver/`` folder
    (where ``delta_scan`` reads the inputs) and a private spill folder, and the
    configuration is locked so that a model's SQL cannot turn it back on:
    ``read_text('/etc/hostname')`` or ``read_csv('/etc/passwd')`` fail with a permission error.
    """
    silver = join(settings.warehouse if is_s3(settings.warehouse) else os.path.abspath(settings.warehouse), "silver") + "/"
    spill = tempfile.mkdtemp(prefix="lakehouse-duckdb-")
    con.execute(f"SET temp_directory = {_quoted(spill)}")
    con.execute(f"SET allowed_directories = [{_quoted(silver)}, {_quoted(spill + '/')}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
