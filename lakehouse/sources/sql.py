"""The SQL database source (``kind: sql``): a table read after a watermark, deletes included.

A dataset reads one table (its ``resource``) in the order of its ``order_by`` column (the
watermark, such as ``updated_at``) and then its key: the cursor is the last row's
``(watermark, key…)``, and each batch is::

    SELECT <columns> FROM <table>
    WHERE wm >= :w AND (wm > :w OR (wm = :w AND key > :k))   -- after the cursor
      AND wm < :until                                        -- not past the window (less lag)
    ORDER BY wm, key LIMIT :n

so rows that share one watermark value are split across batches by their key, none is
skipped and none is read twice. The statement is built from SQLAlchemy expressions: values
are bound parameters, and the table and columns are the database's own, reflected and then
quoted by the dialect (a name the declaration gives is checked against them first).

Deletes (``deletes:`` per table in the declaration) become records marked
:data:`lakehouse.sources.records.DELETE_MEMBER`: a row whose soft-delete column says
deleted, and each row of a tombstone table (the key and when it was deleted, read after a
cursor of its own). Silver removes the key's row when such a record is its latest version.

SQLite is the embedded default (``sqlite:///path/to/file.db``); any database SQLAlchemy has a
dialect and driver for is reached by its URL, the password by reference. Neither the
password nor the URL that holds it appears in ``_source``, metadata, logs or errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, LakehouseError, SourceRefused, SourceUnavailable, one_line
from lakehouse.sources import secrets
from lakehouse.sources.base import Batch, Limit, RecordSource, records, register
from lakehouse.sources.declared import sql_name
from lakehouse.sources.records import DELETE_MEMBER
from lakehouse.sources.sql_rows import Position, SqlCursor, is_deleted, json_value
from lakehouse.specs import Dataset

log = logging.getLogger(__name__)

_AUTH = ("password authentication failed", "authentication failed", "access denied", "permission denied",
         "not authorized", "login failed", "no password supplied")
"""What in a driver's error says the database refused the credential (no retry cures it)."""
_MISSING = ("no such table", "no such column", "does not exist", "unknown column", "invalid object name", "syntax error")
"""What in a driver's error says the statement names something the database does not have."""


# ----------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class _Plan:
    """One table's reading: the reflected table, the columns selected, the watermark and key."""

    table: sa.Table
    columns: tuple[sa.Column[Any], ...]
    watermark: sa.Column[Any]
    key: tuple[sa.Column[Any], ...]


class SqlSource(RecordSource[SqlCursor]):
    """A table of a SQL database, read after a ``(watermark, key)`` cursor, with its deletes."""

    kind = "sql"

    def __init__(self, dataset: Dataset, settings: Settings | None = None) -> None:
        decl = dataset.connection  # a lakehouse.sources.declared.SqlDecl
        assert decl is not None and decl.kind == "sql", f"{dataset.spec.qualified_name}: not a sql source"
        spec = dataset.spec
        if spec.order_by is None:
            msg = (f"{spec.qualified_name}: a dataset of a sql source needs order_by: the column it is read "
                   "incrementally by (a watermark such as updated_at)")
            raise ConfigError(msg)
        self.dataset, self.decl, self.spec = dataset, decl, spec
        self.resource = _name(dataset.resource, f"{spec.qualified_name}: resource")
        self.deletes: Any = decl.deletes.get(self.resource)  # a SqlDeletesDecl, or None
        self.url = sa.make_url(decl.url)
        self._secret = ""
        if decl.password is not None:
            self._secret = secrets.resolve(decl.password, what=f"sources.{dataset.source}.password").get_secret_value()
        self.location = _location(self.url)
        if self.url.get_backend_name() == "sqlite" and self._secret:
            msg = f"{self.describe()}: a SQLite file has no password: remove sources.{dataset.source}.password"
            raise ConfigError(msg)
        if self.url.get_backend_name() == "sqlite" and self.url.database not in (None, "", ":memory:"):
            database = self.url.database or ""
            if not database.startswith("file:") and not Path(database).is_file():
                msg = f"{self.describe()}: the SQLite database file {database} does not exist (sources.{dataset.source}.url)"
                raise ConfigError(msg)
        url: URL = self.url.set(password=self._secret) if self._secret else self.url
        try:
            self.engine: Engine = sa.create_engine(url, connect_args=dict(decl.connect_args), poolclass=sa.pool.NullPool)
        except (sa_exc.NoSuchModuleError, sa_exc.ArgumentError) as exc:
            msg = (f"{self.describe()}: SQLAlchemy has no dialect or driver {self.url.drivername!r} "
                   f"({self._scrub(one_line(str(exc)))}): install the driver's package")
            raise ConfigError(msg) from None

    # -- the hooks

    def start(self) -> SqlCursor:
        """Nothing read yet."""
        return SqlCursor()

    def cursor_from(self, data: dict[str, Any]) -> SqlCursor:
        """The cursor a bronze commit recorded."""
        return SqlCursor(Position.from_json(data.get("rows")), Position.from_json(data.get("tombstones")))

    def describe(self) -> str:
        """``sql:<backend>:<host:port/database or file>/<table>``: never a user name or a password."""
        return f"sql:{self.location}/{self.resource}"

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def read(self, cursor: SqlCursor, *, limit: Limit, until: datetime) -> Iterator[Batch[SqlCursor]]:
        """The table's rows after ``cursor.rows``, then its tombstones after ``cursor.tombstones``, in batches."""
        try:
            with self.engine.connect() as conn:
                rows = self._plan(conn, self.resource, order_by=self.spec.order_by or "", keys=self.spec.keys, main=True)
                tombstones = None
                if self.deletes is not None and self.deletes.tombstones is not None:
                    stones = self.deletes.tombstones
                    tombstones = self._plan(conn, stones.table, order_by=stones.watermark, keys=self.spec.keys, main=False)
                conn.rollback()
                self._warn_null_watermarks(conn, rows)
                for batch in self._batches(conn, rows, cursor.rows, limit=limit, until=until, tombstone=False):
                    cursor = SqlCursor(batch[1], cursor.tombstones)
                    yield Batch(batch[0], cursor, batch[2])
                if tombstones is not None:
                    for batch in self._batches(conn, tombstones, cursor.tombstones, limit=limit, until=until, tombstone=True):
                        cursor = SqlCursor(cursor.rows, batch[1])
                        yield Batch(batch[0], cursor, batch[2])
        except LakehouseError:
            raise
        except sa_exc.SQLAlchemyError as exc:
            raise self._failure(exc) from None

    # -- reading

    def _plan(self, conn: Connection, table_name: str, *, order_by: str, keys: Sequence[str], main: bool) -> _Plan:
        """Reflect ``table_name`` and check that it has what the declaration names."""
        schema = self.decl.db_schema
        where = f"{schema}.{table_name}" if schema else table_name
        try:
            table = sa.Table(table_name, sa.MetaData(), schema=schema, autoload_with=conn)
        except sa_exc.NoSuchTableError:
            role = f"the table of dataset {self.spec.name} (its resource)" if main else f"the tombstone table of {self.resource}"
            msg = f"{self.describe()}: the database has no table {where!r}, {role}"
            raise ConfigError(msg) from None
        have = [c.name for c in table.columns]
        wanted = [order_by, *keys]
        if main:
            declared = [c.name for c in self.spec.columns if c.derive is None]
            wanted += declared + ([self.deletes.column] if self.deletes is not None and self.deletes.column else [])
        missing = [name for name in dict.fromkeys(wanted) if name not in have]
        if missing:
            msg = (f"{self.describe()}: table {where!r} has no column {', '.join(repr(m) for m in missing)} "
                   f"(its columns: {', '.join(have)}); fix the dataset's columns, key or order_by, or the source's deletes")
            raise ConfigError(msg)
        if main and self.spec.unknown_fields == "evolve":
            selected = list(table.columns)  # every column, so that a new one becomes a silver column
        else:
            selected = [table.c[name] for name in dict.fromkeys(wanted)]
        return _Plan(table, tuple(selected), table.c[order_by], tuple(table.c[k] for k in keys))

    def _after(self, plan: _Plan, position: Position | None) -> sa.ColumnElement[bool]:
        """Rows after ``position`` in ``(watermark, key…)`` order, as a row-value comparison of bound values."""
        if position is None:
            return sa.true()
        columns = [plan.watermark, *plan.key]
        values = [position.watermark, *position.key]
        after: sa.ColumnElement[bool] = columns[-1] > values[-1]
        for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
            after = sa.or_(column > value, sa.and_(column == value, after))
        # the leading range lets the database use an index on the watermark
        return sa.and_(plan.watermark >= position.watermark, after)

    def _bound(self, plan: _Plan, until: datetime) -> sa.ColumnElement[bool]:
        """Not past the window's end (less ``lag``), for a timestamp watermark."""
        kind = plan.watermark.type
        if not isinstance(kind, sa.DateTime):
            return sa.true()
        end = until - self.decl.lag
        if not getattr(kind, "timezone", False):
            end = end.astimezone(UTC).replace(tzinfo=None)  # a column without a zone holds UTC
        return plan.watermark < end

    def _batches(
        self, conn: Connection, plan: _Plan, position: Position | None, *, limit: Limit, until: datetime, tombstone: bool,
    ) -> Iterator[tuple[pl.DataFrame, Position, dict[str, Any]]]:
        """Batches of ``(records, position after them, details)`` after ``position``, each within ``limit``."""
        while True:
            statement = (
                sa.select(*plan.columns)
                .where(self._after(plan, position), self._bound(plan, until))
                .order_by(plan.watermark, *plan.key)
                .limit(limit.records)
            )
            fetched = conn.execute(statement).mappings().all()
            conn.rollback()  # no read transaction held open while bronze commits (SQLite would block writers)
            if not fetched:
                return
            texts, deletes = self._texts(fetched, plan, tombstone=tombstone)
            taken, size = 0, 0
            for text in texts:
                if taken and size + len(text) > limit.bytes:
                    break
                size += len(text)
                taken += 1
            last = fetched[taken - 1]
            position = Position(last[plan.watermark.name], tuple(last[k.name] for k in plan.key))
            where = plan.table.name
            positions = pl.Series([f"{where}@{_show(r[plan.watermark.name])}/{'/'.join(_show(r[k.name]) for k in plan.key)}"
                                   for r in fetched[:taken]])
            frame = records(texts[:taken], position=positions, landed_at=until)
            details = {"table": where, "records": taken, "deletes": sum(deletes[:taken])}
            yield frame, position, details
            if len(fetched) < limit.records and taken == len(fetched):
                return

    def _texts(self, rows: Sequence[Any], plan: _Plan, *, tombstone: bool) -> tuple[list[str], list[bool]]:
        """Each row as JSON object text, and whether it is a delete."""
        types = {c.name: c.dtype for c in self.spec.columns}
        order_by = self.spec.order_by or ""
        soft = self.deletes.column if self.deletes is not None and not tombstone else None
        keep_soft = soft in types
        texts, deletes = [], []
        for row in rows:
            if tombstone:
                record = {k.name: json_value(row[k.name], types.get(k.name)) for k in plan.key}
                record[order_by] = json_value(row[plan.watermark.name], types.get(order_by))
                deleted = True
            else:
                record = {name: json_value(value, types.get(name)) for name, value in row.items() if name != soft or keep_soft}
                deleted = soft is not None and is_deleted(row[soft])
            if deleted:
                record[DELETE_MEMBER] = True
            # a value nested in a JSON column (a timestamp in a dict) is written as its text
            texts.append(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str))
            deletes.append(deleted)
        return texts, deletes

    def _warn_null_watermarks(self, conn: Connection, plan: _Plan) -> None:
        """Rows with no watermark are never read: say so (once per ingest) rather than lose them quietly."""
        found = conn.execute(sa.select(sa.literal(1)).select_from(plan.table).where(plan.watermark.is_(None)).limit(1)).first()
        conn.rollback()
        if found is not None:
            log.warning("%s: rows with a null %s are never read (a watermark must be set on every row)",
                        self.describe(), plan.watermark.name)

    # -- errors

    def _scrub(self, text: str) -> str:
        """``text`` without the password."""
        return text.replace(self._secret, "***") if self._secret else text

    def _failure(self, exc: sa_exc.SQLAlchemyError) -> LakehouseError:
        """What a SQLAlchemy error means for the run: transient, a refusal, or a declaration to fix."""
        cause = getattr(exc, "orig", None) or exc
        text = self._scrub(one_line(str(cause)).split(" [SQL:")[0])[:500]
        said = f"{self.describe()}: {type(cause).__name__}: {text}"
        lowered = text.lower()
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return SourceUnavailable(f"{said} (the connection was lost)")
        if any(a in lowered for a in _AUTH):
            return SourceRefused(f"{said} (check the user in sources.{self.dataset.source}.url and its password)")
        if any(m in lowered for m in _MISSING) or isinstance(exc, sa_exc.ProgrammingError):
            return ConfigError(f"{said} (check the dataset's resource, columns, key and order_by against the table)")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return SourceUnavailable(said)
        return SourceRefused(said)


def _name(value: str, what: str) -> str:
    """A table name as the declaration may give it (:func:`lakehouse.sources.declared.sql_name`)."""
    try:
        return sql_name(value, "table")
    except ValueError as exc:
        msg = f"{what}: {exc}"
        raise ConfigError(msg) from None


def _location(url: URL) -> str:
    """Where the database is, without a user name or a password."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:{url.database or ':memory:'}"
    host = url.host or ""
    port = f":{url.port}" if url.port else ""
    return f"{backend}://{host}{port}/{url.database or ''}"


def _show(value: Any) -> str:
    """A watermark or key value in a source position."""
    shown = json_value(value, None)
    return shown if isinstance(shown, str) else json.dumps(shown)


@register("sql")
def open_sql(dataset: Dataset, settings: Settings) -> SqlSource:
    """The reader of a dataset of a ``kind: sql`` source."""
    return SqlSource(dataset, settings)
