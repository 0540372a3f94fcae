"""Pure transforms from raw bronze lines to typed, checked, deduplicated silver rows.

Every function takes and returns Polars frames and does no I/O (invariant 6). The typing
and the row-level rules are derived from the table spec, the same declaration that the
Soda contract of the gate is derived from, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from lakehouse.checks import References, kind_of
from lakehouse.layers.bronze import BRONZE_VERSION
from lakehouse.sources import records
from lakehouse.sources.files import UNREADABLE_LINE
from lakehouse.specs import Column, TableSpec

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

DELETED = "_deleted"
"""The column of a parsed record that says it deletes its key (the record carried
:data:`lakehouse.sources.records.DELETE_MEMBER`); the merge removes the key's silver row when
such a record is the key's latest version. It is never a column of the silver table."""

def _derive(column: Column) -> pl.Expr:
    assert column.derive is not None  # only derived columns come here
    func, _, arg = column.derive.partition("(")
    arg = arg.rstrip(")")
    if func == "date":
        return pl.col(arg).dt.date()
    msg = f"column {column.name}: unknown derivation {column.derive!r}"
    raise ValueError(msg)




def parse_records(
    lines: pl.LazyFrame,
    spec: TableSpec,
    references: References | Callable[[References], References] | None = None,
    *,
    refuse: Mapping[str, str] | None = None,
) -> pl.LazyFrame:
    """Type raw JSON lines by ``spec`` and attach a ``_reject_reason`` (null when clean).

    ``references`` maps the name of each ``reference`` check (``reference(product_id)``)
    to the keys its value must be one of (:func:`lakehouse.layers.silver.reference_keys`); or it
    is a function that, given the values the records hold for each check (their text, read
    in the same parse), returns those keys: a semi-join without parsing the records twice.

    Input columns: ``_raw`` plus lineage. Output: the spec's columns, the lineage columns,
    ``_raw``, ``_reject_reason``, ``_unknown_fields`` (the record's members that are not
    columns, a case or whitespace variant of a column shown as ``AMOUNT (looks like
    amount)``) and :data:`DELETED` (the record deletes its key: only its key and ordering
    value are typed and checked, and a delete without them is rejected). A line that is
    not a JSON object, a member repeated, a field whose JSON type or text does not fit its
    column (:func:`lakehouse.sources.records.convert`), a null in a
    column declared ``nullable: false``, an unknown member when the spec says
    ``unknown_fields: fail``, and a violated row-level check each add a reason; a row is
    rejected when it has any. ``refuse`` maps members that ``unknown_fields: evolve`` cannot
    add (:func:`lakehouse.layers.silver.evolve.infer`) to why: a record carrying one is rejected with it.
    Each record is parsed once per batch (:func:`lakehouse.sources.records.members`).
    """
    frame = lines.collect()
    raw = pl.col("_raw")
    fields = [c for c in spec.columns if c.derive is None]
    # the reserved members (a bad CSV row's reason and text, a delete's mark) are extracted
    # only when a record of the batch holds one: members fewer to parse in every other batch
    text = frame.get_column("_raw")
    reserved = (records.ERROR_MEMBER, records.LINE_MEMBER) if text.str.contains(records.ERROR_MEMBER, literal=True).any() else ()
    marks_deletes = bool(text.str.contains(records.DELETE_MEMBER, literal=True).any())
    found = records.members(text, [*(c.name for c in fields), *reserved, *((records.DELETE_MEMBER,) if marks_deletes else ())])
    if callable(references):
        references = references({
            check.name: found.get_column(records.text_name(check.column)).drop_nulls().unique()
            for check in spec.checks
            if check.ref_dataset is not None and check.column is not None
        })
    keys = pl.col(records.KEYS)
    is_object = keys.is_not_null()
    landing_error = pl.col(records.text_name(records.ERROR_MEMBER)) if reserved else pl.lit(None, pl.String)
    # a delete (JSON true, or the text true from a CSV file) needs only its key and ordering value
    deleted = (pl.col(records.text_name(records.DELETE_MEMBER)) == "true").fill_null(False) if marks_deletes else pl.lit(False)
    deleted = is_object & landing_error.is_null() & deleted
    identity = {*spec.keys, *([spec.order_by] if spec.order_by else [])}
    is_record = is_object & landing_error.is_null() & ~deleted  # a record whose fields are worth checking
    converted = [records.convert(c, values=spec.record_values) for c in fields]
    typed = [value.alias(c.name) for c, (value, _, _) in zip(fields, converted, strict=True)]
    derived = [_derive(c).alias(c.name) for c in spec.columns if c.derive is not None]

    # (when, reason): a row is rejected when any holds; reasons are only worded for those rows
    unreadable = pl.col("_line") == UNREADABLE_LINE  # a whole file that could not be read: its cause
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (unreadable, pl.coalesce(raw.str.extract(r"^(unreadable: [^\n]*)"), pl.lit("unreadable file"))),
        (landing_error.is_not_null(), landing_error),
        (landing_error.is_null() & ~is_object & ~unreadable, pl.lit("malformed: not a parseable JSON object")),
        (raw.str.contains("\ufffd", literal=True), pl.lit("encoding: not valid UTF-8")),
        (
            is_object & (keys.list.len() != keys.list.n_unique()),
            pl.format("malformed: member {} appears twice", keys.list.eval(pl.element().filter(pl.element().is_duplicated())).list.unique(maintain_order=True).list.join(", ")),
        ),
    ]
    missing_checked = {ch.column for ch in spec.checks if kind_of(ch).rejects_nulls}
    for c, (_, refused, reason) in zip(fields, converted, strict=True):
        checks.append((refused if c.name in identity else refused & ~deleted, reason))
        if c.name in identity:
            kind = pl.col(records.type_name(c.name))
            checks.append((deleted & (kind.is_null() | (kind == "NULL")), pl.lit(f"missing {c.name}: a delete needs its key and ordering value")))
        if not c.nullable and c.name not in missing_checked:
            # absent or JSON null; a value of the wrong type has its own reason above
            kind = pl.col(records.type_name(c.name))
            checks.append((is_record & (kind.is_null() | (kind == "NULL")), pl.lit(f"missing {c.name}: declared nullable: false")))
    if spec.unknown_fields == "fail":
        checks.append((
            is_record & (pl.col("_unknown_fields").list.len() > 0),
            pl.format("unknown field {}: unknown_fields: fail", pl.col("_unknown_fields").list.join(", ")),
        ))
    for name, why in (refuse or {}).items():
        checks.append((
            is_record & keys.list.contains(pl.lit(name)),
            pl.lit(f"unknown field {name}: unknown_fields: evolve cannot add it: {why}"),
        ))
    for check in spec.checks:
        rule = kind_of(check).rule(check, references or {})
        if rule is not None:
            violated, reason = rule
            checks.append((is_record & violated, reason))

    staged = (
        pl.concat([frame, found], how="horizontal")
        .lazy()
        .with_columns(*typed, _unknown_fields(spec).alias("_unknown_fields"), deleted.alias(DELETED))
        .with_columns(derived)
        .with_columns(pl.any_horizontal([when for when, _ in checks]).fill_null(False).alias("__rejected"))
        .collect()
    )
    rejected_rows = staged.get_column("__rejected").arg_true()
    worded = (
        staged.lazy()
        .filter("__rejected")
        .select(pl.concat_list([pl.when(when).then(reason) for when, reason in checks]).list.drop_nulls().list.join("; "))
        .collect()
        .to_series()
    )
    reasons = pl.repeat(None, staged.height, dtype=pl.String, eager=True).scatter(rejected_rows, worded)

    lineage = [name for name in SILVER_LINEAGE if name != "_batch_id"]
    return (
        staged.lazy()
        .with_columns(
            reasons.alias("_reject_reason"),
            # a bad CSV row is quarantined as its own line, not as the landing parser's wrapper
            (pl.coalesce(pl.col(records.text_name(records.LINE_MEMBER)), raw) if reserved else raw).alias("_raw"),
        )
        .select(
            [
                *(pl.col(c.name).cast(c.polars_dtype()) for c in spec.columns),
                "_batch_id",
                *lineage,
                "_raw",
                "_reject_reason",
                "_unknown_fields",
                DELETED,
            ]
        )
    )


def _unknown_fields(spec: TableSpec) -> pl.Expr:
    """The record's members that are not fields of ``spec``; a variant of one is named as such."""
    declared = [c.name for c in spec.columns if c.derive is None]
    variants = {name.lower(): name for name in declared}
    member = pl.element()
    looks_like = member.str.strip_chars().str.to_lowercase().replace_strict(variants, default=None, return_dtype=pl.String)
    return (
        pl.col(records.KEYS)
        .list.set_difference(pl.lit(pl.Series([[*declared, *records.RESERVED]], dtype=pl.List(pl.String))))
        .list.eval(pl.when(looks_like.is_not_null()).then(pl.format("{} (looks like {})", member, looks_like)).otherwise(member))
        .fill_null(pl.lit(pl.Series([[]], dtype=pl.List(pl.String))))
    )


def unknown_field_counts(parsed: pl.DataFrame) -> dict[str, int]:
    """How many records of a parsed batch carried each unknown member (``_unknown_fields``)."""
    if parsed.is_empty() or "_unknown_fields" not in parsed.columns:
        return {}
    counts = (
        parsed.select(pl.col("_unknown_fields").list.unique().explode().drop_nulls().alias("field"))
        .group_by("field")
        .len()
        .sort(["len", "field"], descending=[True, False])
    )
    return dict(counts.iter_rows())


def order_columns(spec: TableSpec) -> list[str]:
    """The columns that order versions of one key: the spec's ordering, then ingestion."""
    return [*([spec.order_by] if spec.order_by else []), *ORDER_COLUMNS]


def collapse(rows: pl.LazyFrame, spec: TableSpec) -> pl.LazyFrame:
    """One row per business key: the latest by ``order_by``, ties broken by ingestion order.

    Rows of a single delivery may come without ``_bronze_version``: their order is the rest.
    Only the rows whose key repeats in the batch are sorted (a hash pass finds them): the
    others are their key's only version already. Those come first, in input order.
    """
    present = rows.collect_schema().names()
    keys = list(spec.keys)
    flagged = rows.with_columns(business_key(keys).is_duplicated().alias("__repeated"))
    versions = flagged.filter(pl.col("__repeated")).sort([c for c in order_columns(spec) if c in present], nulls_last=False)
    return pl.concat([
        flagged.filter(~pl.col("__repeated")),
        versions.unique(subset=keys, keep="last", maintain_order=True),
    ]).drop("__repeated")


def business_key(keys: list[str]) -> pl.Expr:
    """The business key as one expression (a struct when it has several columns)."""
    return pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])


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
    rows = rows.filter(business_key(keys).is_duplicated())  # a key's only version is no conflict
    newest = rows.filter(pl.col(order) == pl.col(order).max().over(keys))
    compared = [*spec.column_names, *([DELETED] if DELETED in rows.collect_schema().names() else [])]
    distinct = newest.select(compared).unique()
    return distinct.filter(pl.int_range(pl.len()).over(keys) > 0)


def silver_columns(spec: TableSpec) -> list[str]:
    """The columns of a silver row: the declared ones, then lineage and the bronze version."""
    return [*spec.column_names, *SILVER_LINEAGE, BRONZE_VERSION]
