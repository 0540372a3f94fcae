"""Raw records: each member's JSON type and text, and strict conversion by column type.

Bronze keeps every record as JSON object text (``_raw``). Silver types it here, once per
batch: an in-memory DuckDB connection, used as a pure function over an Arrow column (no
files, external access off), parses each record once (``from_json`` with every declared
member as ``JSON``) and reports each member's JSON type (``json_type``) and text, plus the
record's member names (``json_keys``). Polars alone cannot do this row by row: its
``str.json_decode`` fails the whole batch on one malformed line or one member of an
unexpected type, and ``str.json_path_match`` returns ``"42"`` and ``42`` as the same text.

The conversions then refuse what a cast would coerce: a JSON string is not a number or a
bool (unless the column declares ``strings_as_numbers``), an object or a number is not a
string, a date is ``YYYY-MM-DD`` exactly, a timestamp is RFC 3339 with a valid second and
at most microsecond precision. Records from CSV (``record_values="text"``) carry no JSON
types: every value is text, parsed by the same strict text formats.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import duckdb
import polars as pl
import pyarrow as pa

from lakehouse.specs import Column, RecordValues

ERROR_MEMBER = "__lakehouse_error"
"""Set by the landing parser on a record it could not read (a bad CSV row): the reason."""
LINE_MEMBER = "__lakehouse_line"
"""With :data:`ERROR_MEMBER`: the record's own raw text (the CSV line as received)."""
DELETE_MEMBER = "__lakehouse_deleted"
"""Set (``true``) on a record that deletes its key: silver removes the key's row when this is
its latest version. Such a record needs only the key and the ordering column; any source may
send one (a SQL source's soft deletes and tombstones, a JSONL line)."""
RESERVED = (ERROR_MEMBER, LINE_MEMBER, DELETE_MEMBER)

_JSON_KIND = {
    "VARCHAR": "a JSON string",
    "BIGINT": "a JSON number",
    "UBIGINT": "a JSON number",
    "DOUBLE": "a JSON number",
    "BOOLEAN": "a JSON boolean",
    "ARRAY": "a JSON array",
    "OBJECT": "a JSON object",
}
_NUMBER = ("BIGINT", "UBIGINT", "DOUBLE")
_FIRST_CHARACTER = {'"': "VARCHAR", "{": "OBJECT", "[": "ARRAY", "t": "BOOLEAN", "f": "BOOLEAN", "n": "NULL"}
"""A member's JSON type by the first character of its JSON text; any other is a number."""
_INT_TEXT = r"^-?\d+$"
_FLOAT_TEXT = r"^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"
_TIMESTAMP_TEXT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
_EXACT_DOUBLE = 2.0**53
"""A JSON number at or beyond this magnitude went through a float: its digits are not exact."""


def type_name(name: str) -> str:
    """The name of the helper column that holds member ``name``'s JSON type."""
    return f"__type_{name}"


def text_name(name: str) -> str:
    """The name of the helper column that holds member ``name``'s JSON text."""
    return f"__text_{name}"


KEYS = "__keys"
CHUNK_ROWS = 200_000


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    """One in-memory database per process (opening one costs tens of milliseconds): no
    tables, no files, external access off; each call works in a cursor of its own."""
    con = duckdb.connect(config={"enable_external_access": False})
    con.execute("SET produce_arrow_string_view = true")  # Polars' own string layout: no copy
    return con


def members(raw: pl.Series, names: Sequence[str]) -> pl.DataFrame:
    """Per record: its member names (``__keys``, null when it is not a JSON object) and, for
    each of ``names``, the member's JSON type (``__type_<n>``: ``VARCHAR``, ``BIGINT``,
    ``DOUBLE``, ``BOOLEAN``, ``ARRAY``, ``OBJECT``) and text (``__text_<n>``).

    A string's text is the string itself (unescaped); any other value's is its JSON text.
    An absent member and a JSON ``null`` are both null. Rows come back in input order.
    NaN and Infinity (which DuckDB reads, JSON does not have) and nesting deeper than 128
    levels make a record not an object, as Polars' parser would say.
    """
    as_json = json.dumps(dict.fromkeys(names, "JSON"))
    as_text = json.dumps(dict.fromkeys(names, "VARCHAR"))
    # the JSON type from the first character of the member's JSON text (no second parse),
    # named by Polars below: cheaper than a CASE per member in DuckDB
    kinds = "".join(f""", left(j."{n}", 1) AS "{type_name(n)}", v."{n}" AS "{text_name(n)}" """ for n in names)
    query = (
        f"SELECT json_keys(o) AS {KEYS}{kinds} FROM ("
        "  SELECT o, from_json(o, ?) AS j, from_json(o, ?) AS v FROM ("
        "    SELECT CASE WHEN json_valid(r) AND json_type(r) = 'OBJECT' THEN r END AS o FROM records))"
    )
    con = _database().cursor()  # a connection of its own: registrations and threads do not mix
    parts = []
    try:
        # in slices, so that DuckDB's working memory follows the slice, not the batch
        for start in range(0, max(raw.len(), 1), CHUNK_ROWS):
            con.register("records", pa.table({"r": raw.slice(start, CHUNK_ROWS).cast(pl.String).to_arrow()}))
            parts.append(con.execute(query, [as_json, as_text]).pl())
            con.unregister("records")
    finally:
        con.close()
    frame = pl.concat(parts)
    assert frame.height == raw.len()
    number = {n: pl.when(pl.col(text_name(n)).str.contains(r"^-?[0-9]+$")).then(pl.lit("BIGINT")).otherwise(pl.lit("DOUBLE")) for n in names}
    frame = frame.with_columns(
        pl.when(pl.col(type_name(n)).is_not_null())
        .then(pl.col(type_name(n)).replace_strict(_FIRST_CHARACTER, default=None, return_dtype=pl.String).fill_null(number[n]))
        .alias(type_name(n))
        for n in names
    )
    # the rare record that DuckDB reads and JSON (or Polars) refuses: checked by Polars too
    suspect = raw.str.contains(r"NaN|Infinity") | (raw.str.count_matches(r"[\[{]") >= 128)
    if suspect.any():
        rows = suspect.arg_true()
        refused = rows.filter(raw.gather(rows).str.json_path_match("$").is_null())
        if not refused.is_empty():
            mask = pl.repeat(False, raw.len(), eager=True).scatter(refused, True)
            frame = frame.with_columns(pl.when(mask).then(None).otherwise(pl.col(c)).alias(c) for c in frame.columns)
    return frame


def convert(column: Column, *, values: RecordValues = "json") -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """``(value, refused, reason)`` of a member for ``column``: the typed value (null when
    refused), whether it was refused (false when absent) and why (null when it was not).

    Reads the member's ``__type_<name>`` and ``__text_<name>`` columns (:func:`members`).
    """
    t = pl.col(type_name(column.name))
    x = pl.col(text_name(column.name))
    shown = x.str.slice(0, 80)
    present = t.is_not_null() & (t != "NULL")
    is_text = pl.lit(True) if values == "text" else t == "VARCHAR"
    dtype = column.dtype

    def why(message: str) -> pl.Expr:
        return pl.format(f"wrong type: {column.name} '{{}}' {message}", shown)

    def not_kind(extra: str = "") -> pl.Expr:
        return pl.format(f"wrong type: {column.name} '{{}}' is {{}}, not {dtype}{extra}", shown, t.replace_strict(_JSON_KIND, default="a JSON value"))

    # each step: (refused when, reason), the first one that matches is the reason
    steps: list[tuple[pl.Expr, pl.Expr]] = []
    if values == "json":
        accepted = {
            "string": ("VARCHAR",),
            "int64": _NUMBER,
            "float64": _NUMBER,
            "bool": ("BOOLEAN",),
            "date": ("VARCHAR",),
            "timestamp": ("VARCHAR",),
        }.get(dtype, (*_NUMBER, "VARCHAR"))  # a decimal: a JSON number, or a string holding it (exact money)
        if dtype in ("int64", "float64") and column.strings_as_numbers:
            accepted = (*accepted, "VARCHAR")
        hint = " (declare strings_as_numbers: true if the source sends numbers as strings)" if dtype in ("int64", "float64") else ""
        steps.append((~t.is_in(list(accepted)), not_kind(hint)))
    if dtype == "int64":
        steps.append((t == "DOUBLE", why("is not an integer")))
        steps.append((is_text & ~x.str.contains(_INT_TEXT), why("is not int64 text (digits, an optional minus sign)")))
        value = x.cast(pl.Int64, strict=False)
        steps.append((value.is_null(), why("is not int64 (out of range)")))
    elif dtype == "float64":
        steps.append((is_text & ~x.str.contains(_FLOAT_TEXT), why("is not float64 text (a decimal number, optionally with an exponent)")))
        value = x.cast(pl.Float64, strict=False)
        steps.append((value.is_null() | ~value.is_finite(), why("is not a finite number")))
    elif dtype == "bool":
        if values == "text":
            steps.append((~x.is_in(["true", "false"]), why("is not bool text (true or false)")))
        value = x == "true"
    elif dtype == "date":
        steps.append((~x.str.contains(_DATE_TEXT), why("is not a date (YYYY-MM-DD)")))
        value = x.str.to_date("%Y-%m-%d", strict=False)
        steps.append((value.is_null(), why("is not a date (YYYY-MM-DD)")))
    elif dtype == "timestamp":
        rfc = "is not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff] and Z or ±HH:MM)"
        steps.append((~x.str.contains(_TIMESTAMP_TEXT), why(rfc)))
        steps.append((x.str.slice(17, 2) == "60", why("has second 60: leap seconds are refused")))
        steps.append((x.str.contains(r"\.\d{6}0*[1-9]"), why("is more precise than microseconds (silver keeps µs)")))
        value = x.str.to_datetime(_TIMESTAMP_FORMAT, time_zone="UTC", strict=False).cast(pl.Datetime("us", "UTC"))
        steps.append((value.is_null(), why(rfc)))
    elif dec := column.decimal:
        steps.append(((t == "DOUBLE") & (x.cast(pl.Float64, strict=False).abs() >= _EXACT_DOUBLE),
                      why("is a JSON number too large to be exact: send it as a string")))
        # a cast would round 19.999 to 20.00: money with more places than declared is refused
        exact = rf"^-?\d+(\.\d{{0,{dec[1]}}})?$" if dec[1] else r"^-?\d+(\.0*)?$"
        steps.append((~x.str.contains(exact), why(f"is not a plain decimal with at most {dec[1]} places")))
        value = x.cast(column.polars_dtype(), strict=False)
        steps.append((value.is_null(), why(f"does not fit {dtype}")))
    else:  # string
        value = x
    reason: pl.Expr = pl.lit(None, pl.String)
    for refused, message in reversed(steps):
        reason = pl.when(refused).then(message).otherwise(reason)
    refused = present & pl.any_horizontal([when for when, _ in steps] or [pl.lit(False)]).fill_null(False)
    return pl.when(present & ~refused).then(value).cast(column.polars_dtype()), refused, pl.when(present).then(reason)
