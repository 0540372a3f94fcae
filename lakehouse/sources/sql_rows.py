"""Rows of a SQL source as JSON: the cursor's values, and a row's values as silver types them.

A cursor (:class:`SqlCursor`) is stored as JSON in a bronze commit, so its watermark and key
values keep their Python type there (``{"datetime": "2026-01-01T00:00:00"}``: a timestamp
without a zone stays one, and binds to the database as it came from it). A row becomes a
JSON object whose members silver reads as a JSONL line's (:func:`json_value`).
"""

from __future__ import annotations

import base64
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from lakehouse.errors import ConfigError
from lakehouse.sources.base import Cursor

# ----------------------------------------------------------------------------- the cursor


def _encode(value: Any) -> Any:
    """A watermark or key value as JSON, its Python type kept (a datetime stays naive or aware)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    msg = f"a cursor cannot hold a {type(value).__name__} (the watermark and key must be numbers, text, dates or timestamps)"
    raise ConfigError(msg)


def _decode(value: Any) -> Any:
    """The value :func:`_encode` wrote."""
    if not isinstance(value, dict):
        return value
    ((kind, text),) = value.items()
    return {
        "datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal, "uuid": uuid.UUID,
    }[kind](text)


@dataclass(frozen=True)
class Position:
    """The last row read of one table: its watermark and its key."""

    watermark: Any
    key: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        """The position as JSON values."""
        return {"watermark": _encode(self.watermark), "key": [_encode(k) for k in self.key]}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Position | None:
        """The position :meth:`to_json` wrote (None: nothing read yet)."""
        if data is None:
            return None
        return cls(_decode(data["watermark"]), tuple(_decode(k) for k in data["key"]))


@dataclass(frozen=True)
class SqlCursor(Cursor):
    """Where a table's reading stands: the last row read, and the last tombstone read."""

    rows: Position | None = None
    tombstones: Position | None = None

    def to_json(self) -> dict[str, Any]:
        """The cursor as JSON (the bronze commit's ``lakehouse.cursor``)."""
        return {
            "rows": None if self.rows is None else self.rows.to_json(),
            "tombstones": None if self.tombstones is None else self.tombstones.to_json(),
        }


# ----------------------------------------------------------------------------- values as JSON


def _timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; a timestamp without a zone is taken as UTC."""
    utc = value.astimezone(UTC) if value.tzinfo is not None else value
    return utc.replace(tzinfo=None).isoformat() + "Z"


def json_value(value: Any, dtype: str | None) -> Any:
    """A database value as the JSON value silver types as ``dtype`` (the declared type, None if undeclared).

    Timestamps become RFC 3339 text in UTC; decimals become their exact text (a JSON string,
    which a ``decimal(p,s)`` column reads exactly), or a JSON number for an ``int64`` or
    ``float64`` column; a 0/1 integer becomes a boolean for a ``bool`` column, a number
    becomes text for a ``string`` column; bytes become base64 text; a float that JSON cannot
    hold (NaN, infinity) becomes its text, which silver refuses with a reason.
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if dtype == "bool" and value in (0, 1):
            return bool(value)
        return str(value) if dtype == "string" else value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return repr(value) if dtype == "string" else value
    if isinstance(value, Decimal):
        if value.is_finite() and dtype == "int64" and value == value.to_integral_value():
            return int(value)
        if value.is_finite() and dtype == "float64":
            return float(value)
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict | list):
        return value
    return str(value)  # a UUID, an enum, an IP address …


def is_deleted(value: Any) -> bool:
    """Whether a soft-delete column's value says deleted: true, a non-zero number, or any other non-null value."""
    if value is None:
        return False
    if isinstance(value, bool | int | float | Decimal):
        return bool(value)
    return not (isinstance(value, str) and value.strip().lower() in ("", "0", "false", "f", "n", "no"))
