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

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Schema, write_deltalake

from lakehouse import sql
from lakehouse.commit import (
    app_id,
    committed_version,
    ensure_table,
    open_table,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.dev.faults import crash_point
from lakehouse.errors import CountsMismatch, LakehouseError, SchemaDrift, StaleBatch
from lakehouse.layers.bronze import REPLAY_SOURCE, bronze_name
from lakehouse.layers.silver import evolve
from lakehouse.layers.silver.lookup import rows_with_keys
from lakehouse.layers.silver.transform import (
    BRONZE_VERSION,
    SILVER_LINEAGE,
    collapse,
    conflicts,
    order_columns,
    parse_records,
    silver_columns,
    unknown_field_counts,
)
from lakehouse.quality import GateResult, blocking_error, run_gate
from lakehouse.sources.files import UNREADABLE_LINE
from lakehouse.specs import Dataset, TableSpec
from lakehouse.storage import storage_options

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
    return pa.schema([*fields, *(lineage.field(n) for n in lineage.names), pa.field(BRONZE_VERSION, pa.int64())])


@dataclass(frozen=True)
class Counts:
    """Conservation of one promotion: ``read == merged + rejected + duplicates + conflicts``."""

    read: int
    merged: int
    rejected: int
    duplicates: int
    """Rows collapsed into their key's winner: identical copies and older versions."""
    superseded: int = 0
    """Bronze rows of a file that was delivered again later (only the latest counts)."""
    conflicts: int = 0
    """Rows with the winner's key and ordering value but another payload (the later delivery won)."""

    def check(self) -> None:
        if self.read != self.merged + self.rejected + self.duplicates + self.conflicts:
            raise LakehouseError(
                f"rows do not add up: read {self.read} != merged {self.merged} + "
                f"rejected {self.rejected} + duplicates {self.duplicates} + conflicts {self.conflicts}"
            )

    def reconcile(self, table: str, *, bronze_rows: int | None, keys: int) -> None:
        """Check the counts against figures not derived from them, before anything is committed.

        ``bronze_rows``: the rows bronze's own commits say they added in the consumed
        versions (their ``num_added_rows``; None when a commit does not say): every one is
        read or superseded. ``keys``: the distinct business keys of the clean rows: each
        is merged once, so a collapse that lost or doubled a key is caught here.
        """
        if bronze_rows is not None and self.read + self.superseded != bronze_rows:
            raise CountsMismatch(
                f"{table}: bronze's commits added {bronze_rows} rows, but read {self.read} + "
                f"superseded {self.superseded} = {self.read + self.superseded}; nothing was committed"
            )
        if self.merged != keys:
            raise CountsMismatch(f"{table}: {keys} distinct keys passed the checks, but {self.merged} rows would be merged; nothing was committed")


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
    evolved: Mapping[str, str] | None = None
    """Columns this batch adds to the silver table (``unknown_fields: evolve``): name → type."""
    dataset: Dataset | None = None
    """What the batch was prepared for, so that a stale batch can be prepared again (None: never)."""
    upstream: Mapping[str, SilverBatch] | None = None
    now: datetime | None = None

    @property
    def consumed(self) -> dict[str, int]:
        """Application id → the bronze version this batch takes silver to."""
        return {_app(self.spec): self.bronze_to}


@dataclass(frozen=True)
class SilverResult:
    table: str
    bronze_version: int | None
    counts: Counts | None
    version: int | None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    """Merged rows that matched a silver row at least as new (merged = inserted + updated + unchanged)."""
    skipped: bool = False
    reasons: dict[str, int] | None = None
    """Rejected rows per reason (the first reason of each row)."""
    examples: dict[str, str] | None = None
    """One rejected row per reason: its full reason and the start of its raw text."""
    files_added: int = 0
    """Data files the merge added to the silver table."""
    unknown_fields: Mapping[str, int] | None = None
    """Records per member that is not a column, as in :attr:`SilverBatch.unknown_fields`."""
    evolved: Mapping[str, str] | None = None
    """Columns the merge's commit added to the table, as in :attr:`SilverBatch.evolved`."""


def _uri(settings: Settings, spec: TableSpec) -> str:
    return settings.table_uri("silver", spec.name)


def _app(spec: TableSpec) -> str:
    return app_id(f"silver/{spec.name}", f"bronze/{bronze_name(spec)}")


def read_increment(bronze: DeltaTable, start: int, end: int) -> tuple[pl.DataFrame, int]:
    """Rows appended to bronze in versions ``start..end``, latest delivery of each file.

    A file delivered again under the same key (a corrected re-delivery) supersedes the
    earlier copy; a data file that a lost commit acknowledgement committed twice is read
    once (STACK.md). A replay delivers single lines, so a replayed line supersedes only an
    earlier replay of the same line: two replays of one file's lines are both kept. Returns
    the rows (with ``_commit_version``) and how many bronze rows were superseded.
    """
    reader = bronze.load_cdf(starting_version=start, ending_version=end)
    frame = pl.from_arrow(pa.table(reader.read_all()))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter(pl.col("_change_type") == "insert")
    delivery = pl.when(pl.col("_source") == REPLAY_SOURCE).then(
        pl.format("{}#{}", pl.col("_source_position"), pl.col("_line"))
    ).otherwise(pl.col("_source_position"))
    latest = pl.col("_commit_version") == pl.col("_commit_version").max().over(delivery)
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
    lines: pl.DataFrame | Mapping[str, pl.Series],
    upstream: Mapping[str, SilverBatch] | None = None,
) -> dict[str, pl.Series]:
    """The keys each ``reference`` check of ``spec`` may match, by check name.

    Only the values the batch holds are looked up (a semi-join): its raw ``lines``, or the
    values per check already read from them. They are looked up in the referenced silver
    table as committed, reading just the files whose statistics can hold them, and in the
    rows of that dataset promoted in the same run (``upstream``, prepared first: the
    declaration orders datasets so that referenced ones come before their users).
    """
    options = storage_options(settings)
    wanted = referenced_values(lines, spec) if isinstance(lines, pl.DataFrame) else lines
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
    evolution = _evolution(spec, silver, increment)
    spec = evolution.spec
    references: dict[str, pl.Series] = {}

    def look_up(wanted: Mapping[str, pl.Series]) -> dict[str, pl.Series]:
        references.update(reference_keys(settings, spec, wanted, upstream))
        return references

    # looks up what the records reference
    parsed = parse_records(increment.lazy(), spec, look_up, refuse=evolution.refused).collect()
    # each row's delivery order: the bronze commit of its batch (a tie-break, and what
    # the quarantine has already written)
    deliveries = increment.group_by("_batch_id").agg(pl.col("_commit_version").max().cast(pl.Int64).alias(BRONZE_VERSION))
    parsed = parsed.join(deliveries, on="_batch_id", how="left", maintain_order="left")
    # batch-level checks measure records: a file that could not be read is quarantined, not a NULL row
    records = parsed.filter(pl.col("_line") != UNREADABLE_LINE)
    gate = run_gate(
        records.select(spec.column_names), spec, stage="bronze_to_silver", strict=False,
        references=references, now=now,
    ) if not records.is_empty() else GateResult(spec.qualified_name, "bronze_to_silver", True, (), 0)
    rejected = parsed.filter(pl.col("_reject_reason").is_not_null())
    clean = parsed.filter(pl.col("_reject_reason").is_null()).select(silver_columns(spec))
    valid = collapse(clean.lazy(), spec).collect()
    conflicting = conflicts(clean.lazy(), spec).select(pl.len()).collect().item()
    counts = Counts(
        read=parsed.height,
        merged=valid.height,
        rejected=rejected.height,
        duplicates=clean.height - valid.height - conflicting,
        superseded=superseded,
        conflicts=conflicting,
    )
    counts.check()
    counts.reconcile(
        spec.qualified_name, bronze_rows=_bronze_rows(bronze, start, end), keys=clean.select(spec.keys).n_unique()
    )
    unknown = unknown_field_counts(parsed)
    if unknown:
        log.warning(
            "%s: members that are not columns (unknown_fields: %s): %s", spec.qualified_name, spec.unknown_fields,
            ", ".join(f"{name} in {n} records" for name, n in unknown.items()),
        )
    if evolution.added:
        log.warning(
            "%s gains columns from the batch (unknown_fields: evolve): %s", spec.qualified_name,
            ", ".join(f"{name} {dtype}" for name, dtype in evolution.added.items()),
        )
    return SilverBatch(
        spec, start, end, valid, rejected, counts, gate, more=end < latest, unknown_fields=unknown,
        evolved=dict(evolution.added) or None, dataset=dataset, upstream=upstream, now=now,
    )


def _evolution(spec: TableSpec, silver: DeltaTable | None, increment: pl.DataFrame) -> evolve.Evolution:
    """The dataset's effective spec: declared columns, those earlier batches added to the
    table, and those this batch adds (``unknown_fields: evolve`` only)."""
    if spec.unknown_fields != "evolve":
        return evolve.Evolution(spec)
    if silver is not None:
        fields = [(f.name, _delta_type(f.type)) for f in silver.schema().fields]
        lineage = [*SILVER_LINEAGE, BRONZE_VERSION]
        spec = dataclasses.replace(spec, columns=(*spec.columns, *evolve.table_columns(spec, fields, lineage=lineage)))
    return evolve.infer(increment.get_column("_raw"), spec)


def _bronze_rows(bronze: DeltaTable, start: int, end: int) -> int | None:
    """Rows bronze's appends in versions ``start..end`` added, by their commits' own metrics."""
    total = 0
    for entry in bronze.history(limit=bronze.version() - start + 1):
        if not start <= int(entry["version"]) <= end or entry.get("operation") != "WRITE":
            continue  # the table's creation, a compaction (no data change)
        rows = (entry.get("operationMetrics") or {}).get("num_added_rows")
        if rows is None:
            return None
        total += int(rows)
    return total


def bounded_end(bronze: DeltaTable, start: int, end: int, *, max_rows: int) -> int:
    """The last bronze version of a promotion from ``start``: whole commits, about ``max_rows`` rows.

    Row counts come from the commits' metrics in the Delta log. At least one version with
    rows is taken, however large, so a promotion always makes progress (the table's
    creation, a commit with no rows, does not count as that version).
    """
    if end <= start:
        return end
    rows = {
        int(e["version"]): int((e.get("operationMetrics") or {}).get("num_added_rows") or 0)
        for e in bronze.history(limit=end - start + 1)
    }
    total, last = 0, start
    for version in range(start, end + 1):
        if total > 0 and total + rows.get(version, 0) > max_rows:
            break
        total += rows.get(version, 0)
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
    (:func:`lakehouse.layers.silver.lookup.rows_with_keys`), not the whole table.
    """
    if not spec.partition_by:
        return pl.DataFrame()
    found = rows_with_keys(table, batch.select(spec.keys).unique(), [spec.partition_by]).rows
    return found.unique()


def _quarantine(settings: Settings, batch: SilverBatch) -> None:
    """Append the rejected rows with their reasons, once per consumed bronze version.

    The quarantine table records, as its own application transaction, the last bronze
    version whose rejects it holds; only the rejects of later bronze versions are
    written. So whichever promotion consumes a bronze version next (a re-run, the next
    window after a crash between this commit and silver's, a concurrent run), its rejects
    are written once.
    """
    spec = batch.spec
    if batch.rejected.is_empty():
        return
    uri = settings.table_uri("quarantine", spec.name)
    options = storage_options(settings)
    app = app_id(f"quarantine/{spec.name}", f"bronze/{bronze_name(spec)}")
    ensure_table(uri, QUARANTINE_SCHEMA, options)
    rows = (
        batch.rejected.with_columns(pl.lit(spec.qualified_name).alias("_table"), _reason_kind().alias("_rule"))
        .select(*QUARANTINE_SCHEMA.names, BRONZE_VERSION)
        .to_arrow()
        .cast(QUARANTINE_SCHEMA.append(pa.field(BRONZE_VERSION, pa.int64())))
    )

    earlier: list[int] = []

    def write(table: DeltaTable, props: CommitProperties) -> None:
        done = table.transaction_version(app)
        version = rows[BRONZE_VERSION]
        new = rows if done is None else rows.filter(pc.or_kleene(pc.is_null(version), pc.greater(version, done)))
        earlier.append(rows.num_rows - new.num_rows)
        if new.num_rows:
            write_deltalake(table, new.drop_columns([BRONZE_VERSION]), mode="append", commit_properties=props)

    landed = write_once(uri, options, transactions={app: batch.bronze_to}, write=write)
    if landed.already or not earlier:
        return
    written = landed.rows_added or 0
    if written + earlier[-1] != batch.counts.rejected:
        raise CountsMismatch(
            f"{spec.qualified_name}: rejected {batch.counts.rejected}, but the quarantine commit wrote {written} "
            f"and held {earlier[-1]} from an earlier commit; silver was not committed"
        )


def commit(settings: Settings, batch: SilverBatch) -> SilverResult:
    """Quarantine the rejected rows and merge the clean ones; records the bronze version.

    A batch that another writer's promotion overlaps (it committed part of the bronze
    versions this batch was prepared from: :class:`~lakehouse.errors.StaleBatch`) is
    prepared once more from the new snapshot, gated again, and committed; stale a second
    time, it fails with that said, and the next run promotes the rest.
    """
    try:
        return _commit(settings, batch)
    except StaleBatch as stale:
        if batch.dataset is None:
            raise
        log.warning("%s: %s; preparing it again from the new snapshot (once)", batch.spec.qualified_name, stale)
        fresh = prepare(settings, batch.dataset, batch.upstream, now=batch.now)
        if fresh is None:  # the other writer promoted all of it
            return SilverResult(table=batch.spec.qualified_name, bronze_version=None, counts=None, version=None, skipped=True)
        error = blocking_error([fresh.gate])
        if error is not None:
            raise error from stale
        try:
            return _commit(settings, dataclasses.replace(fresh, dataset=None))
        except StaleBatch as again:
            raise StaleBatch(
                f"{again} (stale again after one re-prepare from the new snapshot; the next run promotes the rest)"
            ) from stale


def _commit(settings: Settings, batch: SilverBatch) -> SilverResult:
    spec = batch.spec
    options = storage_options(settings)
    uri = _uri(settings, spec)
    schema = silver_schema(spec)
    existing = ensure_table(uri, schema, options, partition_by=[spec.partition_by] if spec.partition_by else None)
    added = schema_change(existing, schema, spec)  # refuses before anything is written
    evolve_schema = bool(added)
    # the table's column order, then the new columns (appended by the schema evolution)
    order = [f.name for f in existing.schema().fields if f.name in schema.names]
    schema = pa.schema([schema.field(n) for n in [*order, *(n for n in schema.names if n not in order)]])
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
        "conflicts": batch.counts.conflicts,
        "superseded": batch.counts.superseded,
    }
    source = batch.valid.select(schema.names).to_arrow().cast(schema)
    metrics: dict[str, int] = {}

    def write(table: DeltaTable, props: CommitProperties) -> None:
        if source.num_rows == 0:
            # nothing to merge: still record that this bronze version was consumed
            write_deltalake(
                table, source, mode="append", commit_properties=props, schema_mode="merge" if evolve_schema else None
            )
            return
        current = _current_partitions(table, spec, batch.valid)
        predicate = _merge_predicate(spec, batch.valid, current)
        newer = sql.lexicographic_greater(order_columns(spec))
        outcome = (
            table.merge(
                source, predicate, source_alias="s", target_alias="t", commit_properties=props,
                merge_schema=evolve_schema,
            )
            .when_matched_update_all(predicate=newer)
            .when_not_matched_insert_all()
            .execute()
        )
        metrics.update(outcome)

    # conditional on silver having consumed exactly what the batch was prepared from: a
    # batch that overlaps another writer's promotion is refused (StaleBatch), never merged
    landed = write_once(
        uri, options, transactions={app: batch.bronze_to}, metadata=metadata,
        expect={app: batch.bronze_from - 1 if batch.bronze_from > 0 else None}, write=write,
    )
    inserted = int(metrics.get("num_target_rows_inserted", 0))
    updated = int(metrics.get("num_target_rows_updated", 0))
    if metrics and (int(metrics.get("num_source_rows", -1)) != batch.counts.merged or inserted + updated > batch.counts.merged):
        # a merge's metrics exist only once its commit is made: the promotion is committed, the run fails loudly
        raise CountsMismatch(
            f"{spec.qualified_name}: merged {batch.counts.merged}, but the merge (version {landed.version}) read "
            f"{metrics.get('num_source_rows')} source rows, inserted {inserted} and updated {updated}"
        )
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
        inserted=inserted,
        updated=updated,
        unchanged=batch.counts.merged - inserted - updated if metrics else 0,
        reasons=reason_counts(batch.rejected),
        examples=reason_examples(batch.rejected),
        files_added=landed.files_added,
        unknown_fields=batch.unknown_fields,
        evolved={n: spec.column(n).dtype for n in added} or None,
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
