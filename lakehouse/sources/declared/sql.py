"""``kind: sql``: a table read after a watermark and key cursor (:mod:`lakehouse.sources.sql`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from lakehouse.sources.declared.base import DeclModel, RecordSourceDecl, SecretRef, register
from lakehouse.window import Interval

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def sql_name(value: str, what: str) -> str:
    """A table or column name of a SQL source: letters, digits, ``_`` and ``$``, not starting with a digit."""
    if not _TABLE.match(value):
        msg = f"{value!r} is not a valid {what} name (letters, digits, _ and $, not starting with a digit)"
        raise ValueError(msg)
    return value


class TombstonesDecl(DeclModel):
    """A table of deleted keys: one row per delete, with the dataset's key columns and a watermark of its own."""

    table: str
    """The tombstone table (in the source's ``schema``), e.g. ``products_deleted``."""
    watermark: str = "deleted_at"
    """Its column that says when the key was deleted; read incrementally, like the table's ``order_by``."""

    @field_validator("table", "watermark")
    @classmethod
    def _names(cls, value: str) -> str:
        return sql_name(value, "table or column")


class SqlDeletesDecl(DeclModel):
    """How deletes of one table are captured: a soft-delete column, a tombstone table, or both."""

    column: str | None = None
    """Soft delete: the row is deleted when this column is true (a boolean or a non-zero number) or, for
    any other type (``deleted_at``), not null; a delete must also move the row's watermark."""
    tombstones: TombstonesDecl | None = None
    """Hard delete: a table the database writes each deleted key to (by a trigger, say)."""

    @field_validator("column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return None if value is None else sql_name(value, "column")

    @model_validator(mode="after")
    def _one_way_at_least(self) -> SqlDeletesDecl:
        if self.column is None and self.tombstones is None:
            msg = "declare how deletes are seen: column (a soft-delete column), tombstones (a table of deleted keys), or both"
            raise ValueError(msg)
        return self


@register
class SqlDecl(RecordSourceDecl):
    """A SQL database read through SQLAlchemy: each dataset reads one table (its ``resource``)
    after a watermark (its ``order_by``) with its key as the tie-break."""

    kind: Literal["sql"] = "sql"
    url: str
    """A SQLAlchemy URL without a password: ``sqlite:///shop.db``, ``postgresql+psycopg://reader@db:5432/shop``."""
    password: SecretRef | None = None
    """The database password, by reference (never in ``url``): ``{env: SHOP_DB_PASSWORD}``."""
    db_schema: str | None = Field(default=None, alias="schema")
    """The schema that holds the tables (``public``); the connection's default schema when unset."""
    deletes: dict[str, SqlDeletesDecl] = {}
    """Per table (a dataset's ``resource``): how its deletes are captured; a table not named has no deletes."""
    lag: Interval = timedelta(0)
    """Rows whose watermark is within this of the window's end wait for a later window: set it above
    the longest write transaction, so that a row committed late with an older watermark is not skipped."""
    connect_args: dict[str, str | int | float | bool] = {}
    """Options passed to the database driver as they are (``{sslmode: require, connect_timeout: 10}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)

    def resource_problem(self, resource: str | None, *, dataset: str) -> str | None:
        """A dataset's ``resource`` is a table name."""
        try:
            sql_name(resource if resource is not None else dataset, "table")
        except ValueError as exc:
            return str(exc)
        return None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # the value is never echoed: a URL can hold a password
        m = _URL.match(value)
        if m is None:
            msg = "not a database URL: expected dialect[+driver]://..., such as sqlite:///shop.db or postgresql+psycopg://user@host/db"
            raise ValueError(msg)
        authority = m.group("rest").split("/", 1)[0]
        query = m.group("rest").partition("?")[2].lower()
        if ":" in authority.rpartition("@")[0] or re.search(r"(^|&)password=", query):
            msg = "the URL holds a password: remove it and declare password: {env: VAR} (or {prefect_secret: NAME}) instead"
            raise ValueError(msg)
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        return None if value is None else sql_name(value, "schema")

    @field_validator("deletes")
    @classmethod
    def _tables(cls, value: dict[str, SqlDeletesDecl]) -> dict[str, SqlDeletesDecl]:
        for table in value:
            sql_name(table, "table")
        return value

    @model_validator(mode="after")
    def _lag_range(self) -> SqlDecl:
        if self.lag >= timedelta(hours=24):
            msg = "lag must be shorter than 24h (seconds to minutes is typical)"
            raise ValueError(msg)
        return self
