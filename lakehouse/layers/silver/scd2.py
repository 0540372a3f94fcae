"""SCD type 2 (``history: scd2``): one silver row per version of a business key.

A version is a maximal run of a key's records, in ``order_by`` order, whose ``tracked``
columns do not change; a delete ends the run it follows. Each version row holds
``valid_from`` (its first record's ordering value, also its ``order_by`` column),
``valid_to`` (the next version's or the delete's ordering value; null for the current
version) and ``is_current``; the other declared columns are type 1: every version row of a
key holds the values of the key's latest record that is not a delete.

The history is a function of the set of records, never of the order they arrive in: a
batch recomputes the history of its keys from their records (:func:`history`), those of the
batch and those the key's version rows stand for. A version row keeps, besides its first
record, the records it absorbed (``_absorbed``: their ordering value, lineage and whether
each was a delete), so that a late record can split the run it falls into exactly where a
recomputation from every record would. The merge then writes the difference: new versions
inserted, changed ones updated, versions that a late record merged into an earlier one
removed, in one Delta commit (:func:`merge_history`).
"""

from __future__ import annotations

import dataclasses

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse import sql
from lakehouse.layers.silver.lookup import rows_with_keys
from lakehouse.layers.silver.transform import (
    BRONZE_VERSION,
    DELETED,
    SILVER_LINEAGE,
    collapse,
    order_columns,
)
from lakehouse.specs import HISTORY, TableSpec

VALID_FROM, VALID_TO, IS_CURRENT, ABSORBED = HISTORY
"""``ABSORBED``: a version row's other records, a list of {ordering value, lineage, ``_deleted``}; gold never reads it."""
_DROP = "__drop"


def _lineage() -> list[str]:
    return [*SILVER_LINEAGE, BRONZE_VERSION]


def absorbed_type(spec: TableSpec) -> pa.DataType:
    """The Arrow type of :data:`ABSORBED`."""
    assert spec.order_by is not None
    lineage = pl.DataFrame(schema=SILVER_LINEAGE).to_arrow().schema
    fields = [
        pa.field(spec.order_by, spec.column(spec.order_by).arrow_type()), *(lineage.field(n) for n in lineage.names),
        pa.field(BRONZE_VERSION, pa.int64()), pa.field(DELETED, pa.bool_()),
    ]
    return pa.large_list(pa.struct(fields))


def stored_fields(spec: TableSpec) -> list[pa.Field]:
    """The fields an SCD2 table holds after the declared columns and lineage (none for SCD1)."""
    if spec.tracked is None:
        return []
    return [*(pa.field(c.name, c.arrow_type()) for c in spec.history_columns()), pa.field(ABSORBED, absorbed_type(spec))]


def _record_columns(spec: TableSpec) -> list[str]:
    return [*spec.column_names, *_lineage(), DELETED]


def _records(existing: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """The records the version rows stand for: each row's first record and the ones it absorbed."""
    assert spec.order_by is not None
    columns = _record_columns(spec)
    first = existing.with_columns(pl.lit(False).alias(DELETED)).select(columns)
    own = [spec.order_by, *_lineage(), DELETED]
    others = (
        existing.select([*(c for c in spec.column_names if c != spec.order_by), ABSORBED])
        .explode(ABSORBED)
        .filter(pl.col(ABSORBED).is_not_null())
        .with_columns(pl.col(ABSORBED).struct.field(name) for name in own)
        .select(columns)
    )
    return pl.concat([first, others], how="vertical_relaxed")


def history(existing: pl.DataFrame, batch: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """The version rows of the batch's keys, recomputed from all their records (pure).

    ``existing``: the table's rows of those keys; ``batch``: the batch's clean records
    (:func:`lakehouse.layers.silver.transform.silver_columns` and ``_deleted``). Records with
    the same key and ordering value collapse to one as silver's do (the later delivery
    wins). A key whose records are all deletes has no rows (such deletes are not kept).
    """
    assert spec.order_by is not None and spec.tracked is not None
    keys, order, tracked = list(spec.keys), spec.order_by, list(spec.tracked)
    untracked = [c for c in spec.column_names if c not in {*keys, order, *tracked}]
    records = pl.concat(
        [_records(existing, spec), batch.select(_record_columns(spec))], how="vertical_relaxed"
    )
    per_instant = collapse(records.lazy(), _instants(spec)).collect()
    deleted = pl.col(DELETED)
    state = pl.struct([deleted, *(pl.when(~deleted).then(pl.col(c)).alias(c) for c in tracked)])
    ranked = (
        per_instant.sort([*keys, *order_columns(spec)])
        .with_columns(state.ne_missing(state.shift(1).over(keys)).alias("__opens"))
        .with_columns(pl.col("__opens").cum_sum().over(keys).alias("__run"))
        .with_columns(pl.col(DELETED).first().over([*keys, "__run"]).alias("__run_deleted"))
    )
    starts = (
        ranked.filter("__opens")
        .select([*keys, "__run", pl.col(order).shift(-1).over(keys).alias(VALID_TO)])
    )
    # a delete run's records belong to the version it ends (or, before the first version, to that one)
    owner = (
        pl.when(pl.col("__run_deleted") & (pl.col("__run") == 1)).then(pl.col("__run") + 1)
        .when(pl.col("__run_deleted")).then(pl.col("__run") - 1)
        .otherwise(pl.col("__run"))
    )
    opener = pl.col("__opens") & ~deleted
    absorbed = (
        ranked.filter(~opener)
        .group_by([*keys, owner.alias("__run")], maintain_order=True)
        .agg(pl.struct([order, *_lineage(), DELETED]).alias(ABSORBED))
    )
    latest = (
        ranked.filter(~deleted).group_by(keys, maintain_order=True).agg(pl.col(c).last() for c in untracked)
    )
    versions = (
        ranked.filter(opener)
        .drop(untracked)
        .join(latest, on=keys, how="left", nulls_equal=True)
        .join(starts, on=[*keys, "__run"], how="left", nulls_equal=True)
        .join(absorbed, on=[*keys, "__run"], how="left", nulls_equal=True)
        .with_columns(
            pl.col(order).alias(VALID_FROM),
            pl.col(VALID_TO).is_null().alias(IS_CURRENT),
            pl.col(ABSORBED).fill_null(pl.lit(pl.Series([[]], dtype=_absorbed_dtype(spec)))),
        )
    )
    return versions.select(stored_names(spec))


def _absorbed_dtype(spec: TableSpec) -> pl.DataType:
    return pl.DataFrame(pa.schema([pa.field(ABSORBED, absorbed_type(spec))]).empty_table()).schema[ABSORBED]


def _instants(spec: TableSpec) -> TableSpec:
    """The spec whose key is a version's identity: the business key and the ordering value."""
    assert spec.order_by is not None
    return dataclasses.replace(spec, keys=(*spec.keys, spec.order_by))


def identity(spec: TableSpec) -> TableSpec:
    """What a batch collapses to for ``spec``: one record per key (SCD1), or per key and instant (SCD2)."""
    return spec if spec.tracked is None else _instants(spec)


def stored_names(spec: TableSpec) -> list[str]:
    """The SCD2 table's columns in order: declared, lineage, the bronze version, history."""
    return [*spec.column_names, *_lineage(), VALID_FROM, VALID_TO, IS_CURRENT, ABSORBED]


def plan(existing: pl.DataFrame, batch: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """The merge's source: the version rows that are new or changed, and (``__drop``) those to remove."""
    rows = history(existing, batch, spec)
    version = [*spec.keys, VALID_FROM]
    names = stored_names(spec)
    same = rows.join(existing.select(names), on=names, how="semi", nulls_equal=True)
    changed = rows.join(same, on=version, how="anti", nulls_equal=True)
    gone = existing.select(names).join(rows, on=version, how="anti", nulls_equal=True)
    return pl.concat([
        changed.with_columns(pl.lit(False).alias(_DROP)), gone.with_columns(pl.lit(True).alias(_DROP)),
    ], how="vertical_relaxed")


def merge_history(
    table: DeltaTable, spec: TableSpec, batch: pl.DataFrame, schema: pa.Schema, props: CommitProperties,
    *, merge_schema: bool = False,
) -> dict[str, int]:
    """Merge the batch's versions into ``table`` in one commit carrying ``props``; the merge's metrics.

    Reads only the rows of the batch's keys, from the files whose partition and key
    statistics can hold them; the predicate lists their partitions and key range as literals.
    """
    empty = pl.DataFrame(schema.empty_table())
    have = {f.name for f in table.schema().fields}  # a column this batch evolves is not in the table yet
    found = rows_with_keys(table, batch.select(spec.keys).unique(), [n for n in schema.names if n in have]).rows
    existing = pl.concat([empty, found], how="diagonal_relaxed").cast(empty.schema)
    source = plan(existing, batch.select(_record_columns(spec)), spec)
    arrow = source.to_arrow().cast(pa.schema([*schema, pa.field(_DROP, pa.bool_())]))
    if arrow.num_rows == 0:
        write_deltalake(table, arrow.drop_columns([_DROP]), mode="append", commit_properties=props)
        return {}
    first = batch.get_column(spec.keys[0])
    parts = [
        sql.between(spec.keys[0], first.min(), first.max(), alias="t"),
        sql.keys_equal([*spec.keys, VALID_FROM]),
    ]
    if spec.partition_by:
        values = set(source.get_column(spec.partition_by).to_list()) | set(existing.get_column(spec.partition_by).to_list())
        parts.insert(0, sql.in_list(spec.partition_by, values, alias="t"))
    drop = sql.column(_DROP, "s")
    return (
        table.merge(
            arrow, " AND ".join(parts), source_alias="s", target_alias="t", commit_properties=props,
            merge_schema=merge_schema,
        )
        .when_matched_update_all(predicate=f"{drop} = FALSE", except_cols=[_DROP])
        .when_matched_delete(predicate=f"{drop} = TRUE")
        .when_not_matched_insert_all(predicate=f"{drop} = FALSE", except_cols=[_DROP])
        .execute()
    )
