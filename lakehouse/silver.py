"""Silver: type, check, deduplicate and merge a bronze increment by business key.

A promotion is two steps so that the gate sits between them (invariant 3):
:func:`prepare` reads the bronze versions silver has not consumed yet, types them and
runs the Soda gate; :func:`commit` merges the clean rows and records the consumed bronze
version in the same Delta commit (invariant 1). Rejected rows go to
``<warehouse>/quarantine/<table>`` with the rule they broke (``_rule``, such as ``unknown
product_id``), every reason in words (``_reject_reason``), the raw text, the batch id and the
source position (file and line).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, Schema, write_deltalake

from lakehouse import sql
from lakehouse.bronze import bronze_name
from lakehouse.commit import (
    app_id,
    commit_properties,
    committed_version,
    ensure_table,
    open_table,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.declaration import Dataset
from lakehouse.errors import LakehouseError, SchemaDrift
from lakehouse.faults import crash_point
from lakehouse.gates import GateResult, run_gate
from lakehouse.lookup import rows_with_keys
from lakehouse.specs import TableSpec
from lakehouse.storage import storage_options
from lakehouse.transform import (
    SILVER_LINEAGE,
    collapse,
    order_columns,
    parse_records,
    silver_columns,
    unknown_field_counts,
)

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("_table", pa.large_string()),
        pa.field("_rule", pa.large_string()),
        pa.field("_reject_reason", pa.large_string()),
        pa.field("_raw", pa.large_string()),
        pa.field("_batch_id", pa.large_string()),
        pa.field("_source_position", pa.large_string()),
        pa.field("_line", pa.int64()),
        pa.field("_landed_at", pa.timestamp("us", tz="UTC")),
    ]
)


def silver_schema(spec: TableSpec) -> pa.Schema:
    lineage = pl.DataFrame(schema=SILVER_LINEAGE).to_arrow().schema
    fields = [pa.field(c.name, c.arrow_type()) for c in spec.columns]
    return pa.schema([*fields, *(lineage.field(n) for n in lineage.names)])


@dataclass(frozen=True)
class Counts:
    """Conservation of one promotion: ``read == merged + rejected + duplicates``."""

    read: int
    merged: int
    rejected: int
    duplicates: int
    superseded: int = 0
    """Bronze rows of a file that was delivered again later (only the latest counts)."""

    def check(self) -> None:
        if self.read != self.merged + self.rejected + self.duplicates:
            raise LakehouseError(
                f"rows do not add up: read {self.read} != merged {self.merged} + "
                f"rejected {self.rejected} + duplicates {self.duplicates}"
            )


@dataclass(frozen=True)
class SilverBatch:
    """A bronze increment, typed and gated, ready to commit."""

    spec: TableSpec
    bronze_from: int
    bronze_to: int
    valid: pl.DataFrame
    rejected: pl.DataFrame
    counts: Counts
    gate: GateResult
    more: bool = False
    """Bronze holds versions after ``bronze_to`` (a backlog larger than one batch)."""
    unknown_fields: Mapping[str, int] | None = None
    """Records per member that is not a column (``AMOUNT (looks like amount)``: a variant of one)."""


@dataclass(frozen=True)
class SilverResult:
    table: str
    bronze_version: int | None
    counts: Counts | None
    version: int | None
    inserted: int = 0
    updated: int = 0
    skipped: bool = False
    reasons: dict[str, int] | None = None
    """Rejected rows per reason (the first reason of each row)."""
    examples: dict[str, str] | None = None
    """One rejected row per reason: its full reason and the start of its raw text."""
    files_added: int = 0
    """Data files the merge added to the silver table."""
    unknown_fields: Mapping[str, int] | None = None
    """Records per member that is not a column, as in :attr:`SilverBatch.unknown_fields`."""


def _uri(settings: Settings, spec: TableSpec) -> str:
    return settings.table_uri("silver", spec.name)


def _app(spec: TableSpec) -> str:
    return app_id(f"silver/{spec.name}", f"bronze/{bronze_name(spec)}")


def read_increment(bronze: DeltaTable, start: int, end: int) -> tuple[pl.DataFrame, int]:
    """Rows appended to bronze in versions ``start..end``, latest delivery of each file.

    A file delivered again under the same key (a corrected re-delivery) supersedes the
    earlier copy; a data file that a lost commit acknowledgement committed twice is read
    once (STACK.md). Returns the rows and how many bronze rows were superseded.
    """
    reader = bronze.load_cdf(starting_version=start, ending_version=end)
    frame = pl.from_arrow(pa.table(reader.read_all()))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter(pl.col("_change_type") == "insert")
    latest = pl.col("_commit_version") == pl.col("_commit_version").max().over("_source_position")
    kept = frame.filter(latest).unique(
        subset=["_source_position", "_source_version", "_line"], keep="first", maintain_order=True
    )
    return kept, frame.height - kept.height


def referenced_values(lines: pl.DataFrame, spec: TableSpec) -> dict[str, pl.Series]:
    """The values each ``reference`` check of ``spec`` will look up, read from the raw lines."""
    out: dict[str, pl.Series] = {}
    for check in spec.checks:
        if check.kind == "reference" and check.column is not None:
            text = lines.select(pl.col("_raw").str.json_path_match(f"$.{check.column}").alias("v"))
            out[check.name] = text.get_column("v").drop_nulls().unique()
    return out


def reference_keys(
    settings: Settings,
    spec: TableSpec,
    lines: pl.DataFrame,
    upstream: Mapping[str, SilverBatch] | None = None,
) -> dict[str, pl.Series]:
    """The keys each ``reference`` check of ``spec`` may match, by check name.

    Only the values the batch's ``lines`` hold are looked up (a semi-join): in the
    referenced silver table as committed, reading just the files whose statistics can hold
    them, and in the rows of that dataset promoted in the same run (``upstream``, prepared
    first: the declaration orders datasets so that referenced ones come before their users).
    """
    options = storage_options(settings)
    wanted = referenced_values(lines, spec)
    out: dict[str, pl.Series] = {}
    for check in spec.checks:
        if check.kind != "reference" or check.ref_dataset is None or check.ref_column is None:
            continue
        column = check.ref_column
        values = wanted.get(check.name, pl.Series(column, [], pl.String))
        parts = [pl.DataFrame({column: []}, schema={column: pl.String})]
        table = open_table(settings.table_uri("silver", check.ref_dataset), options)
        if table is not None and not values.is_empty():
            found = rows_with_keys(table, pl.DataFrame({column: values}), [column]).rows
            parts.append(found.select(pl.col(column).cast(pl.String)))
        batch = (upstream or {}).get(check.ref_dataset)
        if batch is not None:
            parts.append(
                batch.valid.select(pl.col(column).cast(pl.String)).filter(pl.col(column).is_in(values.implode()))
            )
        out[check.name] = pl.concat(parts).get_column(column).drop_nulls().unique()
    return out


def prepare(
    settings: Settings,
    dataset: Dataset,
    upstream: Mapping[str, SilverBatch] | None = None,
    *,
    now: datetime | None = None,
) -> SilverBatch | None:
    """Read, type and gate what silver has not consumed of bronze; None when up to date.

    ``upstream`` holds the batches of the datasets this one references, prepared earlier
    in the same run; ``now`` is what ``freshness`` checks measure against (the window's
    end). Rows whose reference is unknown are quarantined; ``lakehouse quarantine replay``
    re-submits them once the referenced rows have arrived.
    """
    spec = dataset.spec
    options = storage_options(settings)
    bronze = open_table(settings.table_uri("bronze", bronze_name(spec)), options)
    if bronze is None:
        return None
    silver = open_table(_uri(settings, spec), options)
    consumed = committed_version(silver, _app(spec))
    latest = bronze.version()
    start = 0 if consumed is None else consumed + 1
    if start > latest:
        return None
    end = bounded_end(bronze, start, latest, max_rows=dataset.max_batch_rows)

    increment, superseded = read_increment(bronze, start, end)
    if increment.is_empty():
        return None  # only the table's creation: nothing to promote yet
    references = reference_keys(settings, spec, increment, upstream)
    parsed = parse_records(increment.lazy(), spec, references).collect()
    gate = run_gate(
        parsed.select(spec.column_names), spec, stage="bronze_to_silver", strict=False,
        references=references, now=now,
    )
    rejected = parsed.filter(pl.col("_reject_reason").is_not_null())
    clean = parsed.filter(pl.col("_reject_reason").is_null()).select(silver_columns(spec))
    valid = collapse(clean.lazy(), spec).collect()
    counts = Counts(
        read=parsed.height,
        merged=valid.height,
        rejected=rejected.height,
        duplicates=clean.height - valid.height,
        superseded=superseded,
    )
    counts.check()
    unknown = unknown_field_counts(parsed)
    if unknown:
        log.warning(
            "%s: members that are not columns (unknown_fields: %s): %s", spec.qualified_name, spec.unknown_fields,
            ", ".join(f"{name} in {n} records" for name, n in unknown.items()),
        )
    return SilverBatch(spec, start, end, valid, rejected, counts, gate, more=end < latest, unknown_fields=unknown)


def bounded_end(bronze: DeltaTable, start: int, end: int, *, max_rows: int) -> int:
    """The last bronze version of a promotion from ``start``: whole commits, about ``max_rows`` rows.

    Row counts come from the commits' metrics in the Delta log. At least one version is
    taken, however large, so a promotion always makes progress.
    """
    if end <= start:
        return end
    rows = {
        int(e["version"]): int((e.get("operationMetrics") or {}).get("num_added_rows") or 0)
        for e in bronze.history(limit=end - start + 1)
    }
    total, last = 0, start
    for version in range(start, end + 1):
        total += rows.get(version, 0)
        if version > start and total > max_rows:
            break
        last = version
    return last


def _merge_predicate(spec: TableSpec, batch: pl.DataFrame, current: pl.DataFrame) -> str:
    """Keys equal, scoped to the partitions (old and new) or the key range the batch touches."""
    parts = [sql.keys_equal(spec.keys)]
    if spec.partition_by:
        values = set(batch.get_column(spec.partition_by).to_list())
        values |= set(current.get_column(spec.partition_by).to_list())
        parts.insert(0, sql.in_list(spec.partition_by, values, alias="t"))
    else:
        first = batch.get_column(spec.keys[0])
        parts.insert(0, sql.between(spec.keys[0], first.min(), first.max(), alias="t"))
    return " AND ".join(parts)


def _current_partitions(table: DeltaTable, spec: TableSpec, batch: pl.DataFrame) -> pl.DataFrame:
    """The partitions where the batch's keys live now (a key can move between partitions).

    Reads only the files whose partition and key statistics can hold the batch's keys
    (:func:`lakehouse.lookup.rows_with_keys`), not the whole table.
    """
    if not spec.partition_by:
        return pl.DataFrame()
    found = rows_with_keys(table, batch.select(spec.keys).unique(), [spec.partition_by]).rows
    return found.unique()


def _quarantine(settings: Settings, batch: SilverBatch) -> None:
    """Append the rejected rows with their reasons, once per consumed bronze version."""
    spec = batch.spec
    if batch.rejected.is_empty():
        return
    uri = settings.table_uri("quarantine", spec.name)
    options = storage_options(settings)
    app = app_id(f"quarantine/{spec.name}", f"bronze/{bronze_name(spec)}")
    ensure_table(uri, QUARANTINE_SCHEMA, options)
    rows = (
        batch.rejected.with_columns(pl.lit(spec.qualified_name).alias("_table"), _reason_kind().alias("_rule"))
        .select(QUARANTINE_SCHEMA.names)
        .to_arrow()
        .cast(QUARANTINE_SCHEMA)
    )

    def write() -> None:
        write_deltalake(
            uri, rows, mode="append", storage_options=options,
            commit_properties=commit_properties({app: batch.bronze_to}),
        )

    write_once(uri, options, transactions={app: batch.bronze_to}, write=write)


def commit(settings: Settings, batch: SilverBatch) -> SilverResult:
    """Quarantine the rejected rows and merge the clean ones; records the bronze version."""
    spec = batch.spec
    options = storage_options(settings)
    uri = _uri(settings, spec)
    schema = silver_schema(spec)
    existing = ensure_table(uri, schema, options, partition_by=[spec.partition_by] if spec.partition_by else None)
    evolve = bool(schema_change(existing, schema, spec))  # refuses before anything is written
    _quarantine(settings, batch)
    crash_point("silver.quarantined")

    app = _app(spec)
    metadata = {
        "bronze_from": batch.bronze_from,
        "bronze_to": batch.bronze_to,
        "read": batch.counts.read,
        "merged": batch.counts.merged,
        "rejected": batch.counts.rejected,
        "duplicates": batch.counts.duplicates,
        "superseded": batch.counts.superseded,
    }
    props = commit_properties({app: batch.bronze_to}, metadata)
    source = batch.valid.select(schema.names).to_arrow().cast(schema)
    metrics: dict[str, int] = {}

    def write() -> None:
        if source.num_rows == 0:
            # nothing to merge: still record that this bronze version was consumed
            write_deltalake(
                uri, source, mode="append", storage_options=options, commit_properties=props,
                schema_mode="merge" if evolve else None,
            )
            return
        table = DeltaTable(uri, storage_options=options)
        current = _current_partitions(table, spec, batch.valid)
        predicate = _merge_predicate(spec, batch.valid, current)
        newer = sql.lexicographic_greater(order_columns(spec))
        outcome = (
            table.merge(
                source, predicate, source_alias="s", target_alias="t", commit_properties=props,
                merge_schema=evolve,
            )
            .when_matched_update_all(predicate=newer)
            .when_not_matched_insert_all()
            .execute()
        )
        metrics.update(outcome)

    landed = write_once(uri, options, transactions={app: batch.bronze_to}, write=write)
    crash_point("silver.committed")  # after the first table's merge, before the next one's
    log.info(
        "%s: bronze v%d..%d read %d, merged %d, rejected %d, duplicates %d -> version %d",
        spec.qualified_name, batch.bronze_from, batch.bronze_to, batch.counts.read,
        batch.counts.merged, batch.counts.rejected, batch.counts.duplicates, landed.version,
    )
    return SilverResult(
        table=spec.qualified_name,
        bronze_version=batch.bronze_to,
        counts=batch.counts,
        version=landed.version,
        inserted=int(metrics.get("num_target_rows_inserted", 0)),
        updated=int(metrics.get("num_target_rows_updated", 0)),
        reasons=reason_counts(batch.rejected),
        examples=reason_examples(batch.rejected),
        files_added=landed.files_added,
        unknown_fields=batch.unknown_fields,
    )


def schema_change(table: DeltaTable, declared: pa.Schema, spec: TableSpec) -> list[str]:
    """The declared columns the existing silver table lacks (added by the merge: a Delta
    schema evolution in the same commit); raises ``SchemaDrift`` naming the column for any
    other difference: a changed type, a column the declaration dropped, a new column
    declared ``nullable: false`` (the table's existing rows would break it)."""
    have = {f.name: f.type for f in table.schema().fields}
    want = {f.name: f.type for f in Schema.from_arrow(declared).fields}
    problems = [
        f"column {name} is {_delta_type(have[name])} in the table, {spec.column(name).dtype} in the declaration"
        for name in want if name in have and have[name] != want[name] and name in spec.column_names
    ]
    problems += [f"column {name} is in the table but not in the declaration" for name in have if name not in want]
    added = [name for name in want if name not in have]
    problems += [
        f"column {name} is new and declared nullable: false (the table's rows have no value for it)"
        for name in added if name in spec.column_names and not spec.column(name).nullable
    ]
    if problems:
        raise SchemaDrift(
            f"{spec.qualified_name}: the declaration does not match the existing table: {'; '.join(problems)}. "
            "Columns are a contract: add nullable columns, never rename or retype one (rebuild the table from bronze to change it)"
        )
    return added


def _delta_type(t: object) -> str:
    """``string``, ``long``, ``decimal(12,2)``: a Delta type as its name."""
    return str(getattr(t, "type", t))


def _reason_kind() -> pl.Expr:
    """The rule a row broke first, its value details left out: ``unknown product_id``."""
    return pl.col("_reject_reason").str.split("; ").list.first().str.replace(r"[:'].*$", "").str.strip_chars()


def reason_counts(rejected: pl.DataFrame) -> dict[str, int]:
    """How many rows were rejected for each reason, the value details left out."""
    if rejected.is_empty():
        return {}
    kinds = (
        rejected.select(_reason_kind().alias("reason"))
        .group_by("reason")
        .len()
        .sort(["len", "reason"], descending=[True, False])
    )
    return dict(kinds.iter_rows())


def reason_examples(rejected: pl.DataFrame, width: int = 120) -> dict[str, str]:
    """The first rejected row of each reason: ``<full reason> in <raw text, shortened>``."""
    if rejected.is_empty():
        return {}
    first = (
        rejected.with_columns(_reason_kind().alias("reason"))
        .unique(subset=["reason"], keep="first", maintain_order=True)
        .select(
            "reason",
            pl.format(
                "{} in {}", pl.col("_reject_reason"),
                pl.when(pl.col("_raw").str.len_chars() > width)
                .then(pl.col("_raw").str.slice(0, width) + pl.lit("…"))
                .otherwise(pl.col("_raw")),
            ),
        )
    )
    return dict(first.iter_rows())
