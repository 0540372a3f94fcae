"""The silver commit: quarantine the rejects, then merge the clean rows by business key,
recording the consumed bronze version in the same Delta commit (invariant 1)."""

from __future__ import annotations

import logging

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Schema, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakehouse import sql
from lakehouse.commit import (
    FILE_SIZE,
    ensure_table,
    file_size,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.dev.faults import crash_point
from lakehouse.errors import CommitConflict, CountsMismatch, SchemaDrift
from lakehouse.layers import quarantine
from lakehouse.layers.quarantine import reason_counts, reason_examples
from lakehouse.layers.silver import scd2
from lakehouse.layers.silver.batch import SilverBatch, SilverResult, silver_app_of, silver_uri
from lakehouse.layers.silver.lookup import rows_with_keys
from lakehouse.layers.silver.transform import (
    BRONZE_VERSION,
    DELETED,
    SILVER_LINEAGE,
    order_columns,
)
from lakehouse.specs import TableSpec
from lakehouse.storage import storage_options

log = logging.getLogger("lakehouse.layers.silver")


def silver_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of the dataset's silver table: its columns, the lineage columns, the bronze
    version (and for ``history: scd2`` the version columns, :mod:`lakehouse.layers.silver.scd2`)."""
    lineage = pl.DataFrame(schema=SILVER_LINEAGE).to_arrow().schema
    fields = [pa.field(c.name, c.arrow_type()) for c in spec.columns]
    return pa.schema([
        *fields, *(lineage.field(n) for n in lineage.names), pa.field(BRONZE_VERSION, pa.int64()), *scd2.stored_fields(spec),
    ])


def silver_configuration(spec: TableSpec) -> dict[str, str]:
    """Table properties of the dataset's silver table: its declared target file size."""
    return {FILE_SIZE: str(spec.target_file_size)} if spec.target_file_size else {}


def keep_file_size(table: DeltaTable, spec: TableSpec) -> None:
    """Give an existing silver table the declared ``target_file_size`` (one metadata commit,
    the first time it differs: a table made before the setting, or a changed declaration)."""
    if spec.target_file_size is None or file_size(table) == spec.target_file_size:
        return
    try:
        table.alter.set_table_properties(silver_configuration(spec))
    except CommitFailedError as exc:
        table.update_incremental()
        if file_size(table) != spec.target_file_size:
            msg = f"{spec.qualified_name}: setting {FILE_SIZE} conflicted with another writer: {exc}"
            raise CommitConflict(msg) from exc
        return
    log.info("%s: %s set to %d bytes", spec.qualified_name, FILE_SIZE, spec.target_file_size)


def _merge_predicate(spec: TableSpec, batch: pl.DataFrame, current: pl.DataFrame) -> str:
    """Keys equal, scoped to the partitions the batch touches (old and new) and its key range.

    Both scopes are literals, so that delta-rs skips the files that cannot match: the
    partitions by their values, and the files inside them by their key statistics (a day's
    partition holds the whole day's orders; the batch's keys sit in a few of its files).
    """
    first = batch.get_column(spec.keys[0])
    parts = [sql.between(spec.keys[0], first.min(), first.max(), alias="t"), sql.keys_equal(spec.keys)]
    if spec.partition_by:
        values = set(batch.get_column(spec.partition_by).to_list())
        values |= set(current.get_column(spec.partition_by).to_list())
        parts.insert(0, sql.in_list(spec.partition_by, values, alias="t"))
    return " AND ".join(parts)


def _current_partitions(table: DeltaTable, spec: TableSpec, batch: pl.DataFrame) -> pl.DataFrame:
    """The partitions where the batch's keys live now (a key can move between partitions).

    Reads only the files whose partition and key statistics can hold the batch's keys
    (:func:`lakehouse.layers.silver.lookup.rows_with_keys`), not the whole table.
    """
    if not spec.partition_by:
        return pl.DataFrame()
    found = rows_with_keys(table, batch.select(spec.keys).unique(), [spec.partition_by]).rows
    return found.unique()


def merge(settings: Settings, batch: SilverBatch) -> SilverResult:
    """Merge a prepared batch into its silver table, exactly once (its bronze version is the transaction)."""
    spec = batch.spec
    options = storage_options(settings)
    uri = silver_uri(settings, spec)
    schema = silver_schema(spec)
    existing = ensure_table(
        uri, schema, options, partition_by=[spec.partition_by] if spec.partition_by else None,
        configuration=silver_configuration(spec),
    )
    keep_file_size(existing, spec)
    added = schema_change(existing, schema, spec)  # refuses before anything is written
    evolve_schema = bool(added)
    # the table's column order, then the new columns (appended by the schema evolution)
    order = [f.name for f in existing.schema().fields if f.name in schema.names]
    schema = pa.schema([schema.field(n) for n in [*order, *(n for n in schema.names if n not in order)]])
    quarantine.append(settings, spec, batch.rejected, bronze_to=batch.bronze_to, expected=batch.counts.rejected)
    crash_point("silver.quarantined")

    app = silver_app_of(spec)
    metadata = {
        "bronze_from": batch.bronze_from,
        "bronze_to": batch.bronze_to,
        "read": batch.counts.read,
        "merged": batch.counts.merged,
        "rejected": batch.counts.rejected,
        "duplicates": batch.counts.duplicates,
        "conflicts": batch.counts.conflicts,
        "superseded": batch.counts.superseded,
        "deleted": batch.counts.deleted,
    }
    valid = batch.valid if DELETED in batch.valid.columns else batch.valid.with_columns(pl.lit(False).alias(DELETED))
    history = spec.tracked is not None
    source = valid.select([*(n for n in schema.names if n in valid.columns), DELETED]).to_arrow()
    metrics: dict[str, int] = {}

    def write(table: DeltaTable, props: CommitProperties) -> None:
        if history and source.num_rows:
            metrics.update(scd2.merge_history(table, spec, valid, schema, props, merge_schema=evolve_schema))
            return
        if source.num_rows == 0:
            # nothing to merge: still record that this bronze version was consumed
            write_deltalake(
                table, pa.Table.from_batches([], schema), mode="append", commit_properties=props,
                schema_mode="merge" if evolve_schema else None,
            )
            return
        full = source.cast(pa.schema([*schema, pa.field(DELETED, pa.bool_())]))
        current = _current_partitions(table, spec, batch.valid)
        predicate = _merge_predicate(spec, batch.valid, current)
        newer = sql.lexicographic_greater(order_columns(spec))
        # a key's latest version is a row (upsert) or a delete; either wins only over an older silver row,
        # and a delete of a key silver does not hold inserts nothing
        upsert, delete = f"{sql.column(DELETED, 's')} = FALSE", f"{sql.column(DELETED, 's')} = TRUE"
        outcome = (
            table.merge(
                full, predicate, source_alias="s", target_alias="t", commit_properties=props,
                merge_schema=evolve_schema,
            )
            .when_matched_update_all(predicate=f"{upsert} AND {newer}", except_cols=[DELETED])
            .when_matched_delete(predicate=f"{delete} AND {newer}")
            .when_not_matched_insert_all(predicate=upsert, except_cols=[DELETED])
            .execute()
        )
        metrics.update(outcome)

    # conditional on silver having consumed exactly what the batch was prepared from: a
    # batch that overlaps another writer's promotion is refused (StaleBatch), never merged
    landed = write_once(
        uri, options, transactions={app: batch.bronze_to}, metadata=metadata,
        expect={app: batch.since}, write=write, table=existing,
    )
    inserted = int(metrics.get("num_target_rows_inserted", 0))
    updated = int(metrics.get("num_target_rows_updated", 0))
    removed = int(metrics.get("num_target_rows_deleted", 0))
    merged, deleted = batch.counts.merged, batch.counts.deleted
    if history:
        _check_history_metrics(spec, metrics, landed.version)
    elif metrics and (int(metrics.get("num_source_rows", -1)) != merged + deleted or inserted + updated > merged or removed > deleted):
        # a merge's metrics exist only once its commit is made: the promotion is committed, the run fails loudly
        msg = (
            f"{spec.qualified_name}: merged {merged} and deleted {deleted}, but the merge (version {landed.version}) read "
            f"{metrics.get('num_source_rows')} source rows, inserted {inserted}, updated {updated} and deleted {removed}"
        )
        raise CountsMismatch(msg)
    crash_point("silver.committed")  # after the first table's merge, before the next one's
    log.info(
        "%s: bronze v%d..%d read %d, merged %d, deleted %d (removed %d), rejected %d, duplicates %d -> version %d",
        spec.qualified_name, batch.bronze_from, batch.bronze_to, batch.counts.read,
        merged, deleted, removed, batch.counts.rejected, batch.counts.duplicates, landed.version,
    )
    return SilverResult(
        table=spec.qualified_name,
        bronze_version=batch.bronze_to,
        counts=batch.counts,
        version=landed.version,
        inserted=inserted,
        updated=updated,
        unchanged=max(merged + deleted - inserted - updated - removed, 0) if metrics else 0,
        removed=removed,
        reasons=reason_counts(batch.rejected),
        examples=reason_examples(batch.rejected),
        files_added=landed.files_added,
        unknown_fields=batch.unknown_fields,
        evolved={n: spec.column(n).dtype for n in added} or None,
    )


def _check_history_metrics(spec: TableSpec, metrics: dict[str, int], version: int) -> None:
    """An SCD2 merge writes each row of its source once: inserted, updated or removed."""
    if not metrics:
        return
    source = int(metrics.get("num_source_rows", -1))
    written = sum(int(metrics.get(f"num_target_rows_{k}", 0)) for k in ("inserted", "updated", "deleted"))
    if source != written:
        msg = f"{spec.qualified_name}: the history merge (version {version}) read {source} source rows but wrote {written}"
        raise CountsMismatch(msg)


def schema_change(table: DeltaTable, declared: pa.Schema, spec: TableSpec) -> list[str]:
    """The declared columns the existing silver table lacks (added by the merge: a Delta
    schema evolution in the same commit); raises ``SchemaDrift`` naming the column for any
    other difference: a changed type, a column the declaration dropped, a new column
    declared ``nullable: false`` (the table's existing rows would break it)."""
    have = {f.name: f.type for f in table.schema().fields}
    want = {f.name: f.type for f in Schema.from_arrow(declared).fields}
    problems = [
        f"column {name} is {delta_type(have[name])} in the table, {spec.column(name).dtype} in the declaration"
        for name in want if name in have and have[name] != want[name] and name in spec.column_names
    ]
    problems += [f"column {name} is in the table but not in the declaration" for name in have if name not in want]
    added = [name for name in want if name not in have]
    problems += [
        f"column {name} is new and declared nullable: false (the table's rows have no value for it)"
        for name in added if name in spec.column_names and not spec.column(name).nullable
    ]
    if problems:
        msg = (
            f"{spec.qualified_name}: the declaration does not match the existing table: {'; '.join(problems)}. "
            "Columns are a contract: add nullable columns, never rename or retype one (rebuild the table from bronze to change it)"
        )
        raise SchemaDrift(msg)
    return added


def delta_type(t: object) -> str:
    """``string``, ``long``, ``decimal(12,2)``: a Delta type as its name."""
    return str(getattr(t, "type", t))
