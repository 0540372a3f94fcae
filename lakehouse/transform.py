"""Pure transforms from raw bronze lines to typed, checked, deduplicated silver rows.

Every function takes and returns Polars frames and does no I/O (invariant 6). The typing
and the row-level rules are derived from the table spec, the same declaration that the
Soda contract of the gate is derived from, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from lakehouse.landing import UNREADABLE_LINE
from lakehouse.specs import Check, Column, TableSpec

BRONZE_VERSION = "_bronze_version"
"""The bronze commit version that delivered a row: its delivery order."""

ORDER_COLUMNS = ("_landed_at", "_source_position", BRONZE_VERSION, "_line")
"""Ingestion order, after the spec's ordering column: deterministic, from the source.

Landing time and file decide first; within one file key a later delivery (a corrected
file re-delivered under the same key, a second replay of a quarantined line) wins over an
earlier one, whatever the line numbers; within one delivery the later line wins.
"""

SILVER_LINEAGE = pl.Schema(
    {
        "_batch_id": pl.String(),
        "_source_position": pl.String(),
        "_line": pl.Int64(),
        "_landed_at": pl.Datetime("us", "UTC"),
    }
)
"""Lineage columns kept on every silver row."""

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"


def _convert(text: pl.Expr, column: Column) -> pl.Expr:
    """Convert the JSON text of a field to the column's type; null where it does not fit."""
    if column.decimal:
        return text.cast(column.polars_dtype(), strict=False)
    match column.dtype:
        case "string":
            return text
        case "int64":
            return text.cast(pl.Int64, strict=False)
        case "float64":
            return text.cast(pl.Float64, strict=False)
        case "bool":
            return text.str.to_lowercase().replace_strict(
                {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
            )
        case "date":
            return text.str.to_date("%Y-%m-%d", strict=False)
        case "timestamp":
            return text.str.to_datetime(_TIMESTAMP_FORMAT, time_zone="UTC", strict=False).cast(
                pl.Datetime("us", "UTC")
            )
    raise ValueError(f"no conversion for {column.dtype}")


def _derive(column: Column) -> pl.Expr:
    func, _, arg = column.derive.partition("(")  # type: ignore[union-attr]
    arg = arg.rstrip(")")
    if func == "date":
        return pl.col(arg).dt.date()
    raise ValueError(f"column {column.name}: unknown derivation {column.derive!r}")


def _rule(check: Check, references: Mapping[str, pl.Series]) -> tuple[pl.Expr, pl.Expr] | None:
    """(violated, reason) of a row-level check, or None for batch-level checks."""
    col = pl.col(check.column) if check.column else None
    if check.kind == "reference" and col is not None:
        if check.name not in references:
            raise ValueError(f"{check.name}: the keys of {check.ref_dataset} were not given")
        known = references[check.name]
        return (
            col.is_not_null() & ~col.cast(pl.String).is_in(known.cast(pl.String).implode()),
            pl.format(f"unknown {check.column}: '{{}}' is not in silver.{check.ref_dataset}", col.cast(pl.String)),
        )
    if check.kind == "missing" and col is not None:
        return col.is_null(), pl.lit(f"missing {check.column}")
    if check.kind == "valid_values" and col is not None:
        allowed = ", ".join(check.values)
        return (
            col.is_not_null() & ~col.cast(pl.String).is_in(list(check.values)),
            pl.format(f"invalid {check.column}: '{{}}' is not one of [{allowed}]", col),
        )
    if check.kind == "range" and col is not None:
        bad = pl.lit(False)
        if check.min is not None:
            bad = bad | (col.cast(pl.Float64) < check.min)
        if check.max is not None:
            bad = bad | (col.cast(pl.Float64) > check.max)
        lo = "" if check.min is None else f"{check.min:g}"
        hi = "" if check.max is None else f"{check.max:g}"
        return (
            col.is_not_null() & bad,
            pl.format(f"{check.column} {{}} out of range [{lo}, {hi}]", col.cast(pl.String)),
        )
    return None


def parse_records(
    lines: pl.LazyFrame, spec: TableSpec, references: Mapping[str, pl.Series] | None = None
) -> pl.LazyFrame:
    """Type raw JSON lines by ``spec`` and attach a ``_reject_reason`` (null when clean).

    ``references`` maps the name of each ``reference`` check (``reference(product_id)``)
    to the keys its value must be one of (:func:`lakehouse.silver.reference_keys`).

    Input columns: ``_raw`` plus lineage. Output: the spec's columns, the lineage columns,
    ``_raw`` and ``_reject_reason``. A line that is not a JSON object, a field whose value
    does not convert to its column's type, and a violated row-level check each add a
    reason; a row is rejected when it has any.
    """
    raw = pl.col("_raw")
    is_object = raw.str.strip_chars_start().str.starts_with("{") & raw.str.json_path_match(
        "$"
    ).is_not_null()
    fields = [c for c in spec.columns if c.derive is None]
    texts = [raw.str.json_path_match(f"$.{c.name}").alias(f"__text_{c.name}") for c in fields]
    typed = [_convert(pl.col(f"__text_{c.name}"), c).alias(c.name) for c in fields]
    derived = [_derive(c).alias(c.name) for c in spec.columns if c.derive is not None]

    unreadable = pl.col("_line") == UNREADABLE_LINE  # a whole file that could not be read: its cause
    reasons: list[pl.Expr] = [
        pl.when(unreadable).then(pl.coalesce(raw.str.extract(r"^(unreadable: [^\n]*)"), pl.lit("unreadable file"))),
        pl.when(~is_object & ~unreadable).then(pl.lit("malformed: not a parseable JSON object")),
        pl.when(raw.str.contains("\ufffd", literal=True)).then(pl.lit("encoding: not valid UTF-8")),
    ]
    for c in fields:
        text = pl.col(f"__text_{c.name}")
        reasons.append(
            pl.when(text.is_not_null() & pl.col(c.name).is_null()).then(
                pl.format(f"wrong type: {c.name} '{{}}' is not {c.dtype}", text.str.slice(0, 80))
            )
        )
        if dec := c.decimal:
            # a cast would round 19.999 to 20.00: money with more places than declared is refused
            exact = rf"^-?\d+(\.\d{{0,{dec[1]}}})?$" if dec[1] else r"^-?\d+(\.0*)?$"
            reasons.append(
                pl.when(pl.col(c.name).is_not_null() & ~text.str.contains(exact)).then(
                    pl.format(f"wrong type: {c.name} '{{}}' is not a plain decimal with at most {dec[1]} places", text.str.slice(0, 80))
                )
            )
        if c.dtype == "float64":
            reasons.append(
                pl.when(pl.col(c.name).is_not_null() & ~pl.col(c.name).is_finite()).then(
                    pl.format(f"wrong type: {c.name} '{{}}' is not a finite number", text.str.slice(0, 80))
                )
            )
    for check in spec.checks:
        rule = _rule(check, references or {})
        if rule is not None:
            violated, reason = rule
            reasons.append(pl.when(is_object & violated).then(reason))

    lineage = [name for name in SILVER_LINEAGE if name != "_batch_id"]
    return (
        lines.with_columns(texts)
        .with_columns(typed)
        .with_columns(derived)
        .with_columns(
            pl.concat_list(reasons).list.drop_nulls().list.join("; ").alias("_reject_reason")
        )
        .with_columns(
            pl.when(pl.col("_reject_reason") == "")
            .then(None)
            .otherwise(pl.col("_reject_reason"))
            .alias("_reject_reason")
        )
        .select(
            [
                *(pl.col(c.name).cast(c.polars_dtype()) for c in spec.columns),
                "_batch_id",
                *lineage,
                "_raw",
                "_reject_reason",
            ]
        )
    )


def order_columns(spec: TableSpec) -> list[str]:
    """The columns that order versions of one key: the spec's ordering, then ingestion."""
    return [*([spec.order_by] if spec.order_by else []), *ORDER_COLUMNS]


def collapse(rows: pl.LazyFrame, spec: TableSpec) -> pl.LazyFrame:
    """One row per business key: the latest by ``order_by``, ties broken by ingestion order.

    Rows of a single delivery may come without ``_bronze_version``: their order is the rest.
    """
    present = rows.collect_schema().names()
    return rows.sort([c for c in order_columns(spec) if c in present], nulls_last=False).unique(
        subset=list(spec.keys), keep="last", maintain_order=True
    )


def conflicts(rows: pl.LazyFrame, spec: TableSpec) -> pl.LazyFrame:
    """Rows that lose a tie: same key and ``order_by`` value as the winner, another payload.

    Versions of a key whose ordering value is the newest one are compared by the spec's
    columns: identical copies are duplicates, each further distinct payload is a conflict
    (resolved by the tie-break, :data:`ORDER_COLUMNS`: the later delivery wins). Older
    versions are simply collapsed. Without ``order_by`` nothing is a conflict. One row
    per losing payload; ``.select(pl.len())`` counts them.
    """
    if not spec.order_by:
        return rows.head(0).select(spec.column_names)
    keys, order = list(spec.keys), spec.order_by
    newest = rows.filter(pl.col(order) == pl.col(order).max().over(keys))
    distinct = newest.select(spec.column_names).unique()
    return distinct.filter(pl.int_range(pl.len()).over(keys) > 0)


def silver_columns(spec: TableSpec) -> list[str]:
    return [*spec.column_names, *SILVER_LINEAGE, BRONZE_VERSION]
