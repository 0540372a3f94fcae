"""The first step of a promotion: read what silver has not consumed of bronze, type it, check
it row by row and gate it with Soda (the batch :func:`~lakehouse.layers.silver.commit` merges)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime

import polars as pl
from deltalake import DeltaTable

from lakehouse.commit import (
    committed_version,
    open_table,
)
from lakehouse.config import Settings
from lakehouse.layers.bronze import bronze_name
from lakehouse.layers.silver import evolve, scd2
from lakehouse.layers.silver.batch import (
    Counts,
    SilverBatch,
    silver_app_of,
    silver_uri,
)
from lakehouse.layers.silver.increment import (
    bounded_end,
    bronze_rows,
    read_increment,
    reference_keys,
)
from lakehouse.layers.silver.merge import delta_type
from lakehouse.layers.silver.transform import (
    BRONZE_VERSION,
    DELETED,
    SILVER_LINEAGE,
    collapse,
    conflicts,
    parse_records,
    silver_columns,
    unknown_field_counts,
)
from lakehouse.quality import GateResult, run_gate
from lakehouse.sources.files import UNREADABLE_LINE
from lakehouse.specs import HISTORY, Dataset, TableSpec
from lakehouse.storage import storage_options

log = logging.getLogger("lakehouse.layers.silver")


def prepare(
    settings: Settings,
    dataset: Dataset,
    upstream: Mapping[str, SilverBatch] | None = None,
    *,
    now: datetime | None = None,
    until: int | None = None,
) -> SilverBatch | None:
    """Read, type and gate what silver has not consumed of bronze; None when up to date.

    ``upstream`` holds the batches of the datasets this one references, prepared earlier
    in the same run; ``now`` is what ``freshness`` checks measure against (the window's
    end). Rows whose reference is unknown are quarantined; ``lakehouse quarantine replay``
    re-submits them once the referenced rows have arrived. ``until``: read bronze up to
    that version at most (a rebuild replays the original batches' boundaries).
    """
    spec = dataset.spec
    options = storage_options(settings)
    bronze = open_table(settings.table_uri("bronze", bronze_name(spec)), options)
    if bronze is None:
        return None
    silver = open_table(silver_uri(settings, spec), options)
    consumed = committed_version(silver, silver_app_of(spec))
    latest = bronze.version()
    start = 0 if consumed is None else consumed + 1
    last = latest if until is None else min(latest, until)
    if start > last:
        return None
    end = bounded_end(bronze, start, last, max_rows=dataset.max_batch_rows)

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
    # and a delete has only its key and ordering value: it is no row to measure
    records = parsed.filter((pl.col("_line") != UNREADABLE_LINE) & ~pl.col(DELETED))
    gate = run_gate(
        records.select(spec.column_names), spec, stage="bronze_to_silver", strict=False,
        references=references, now=now,
    ) if not records.is_empty() else GateResult(spec.qualified_name, "bronze_to_silver", True, (), 0)
    rejected = parsed.filter(pl.col("_reject_reason").is_not_null())
    clean = parsed.filter(pl.col("_reject_reason").is_null()).select([*silver_columns(spec), DELETED])
    # one row per key (SCD1), or per key and ordering value: each a version (SCD2)
    versions = scd2.identity(spec)
    valid = collapse(clean.lazy(), versions).collect()
    conflicting = conflicts(clean.lazy(), versions).select(pl.len()).collect().item()
    deletes = int(valid.get_column(DELETED).sum())
    counts = Counts(
        read=parsed.height,
        merged=valid.height - deletes,
        deleted=deletes,
        rejected=rejected.height,
        duplicates=clean.height - valid.height - conflicting,
        superseded=superseded,
        conflicts=conflicting,
    )
    counts.check()
    counts.reconcile(
        spec.qualified_name, bronze_rows=bronze_rows(bronze, start, end), keys=clean.select(versions.keys).n_unique()
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
        since=consumed,
    )


def _evolution(spec: TableSpec, silver: DeltaTable | None, increment: pl.DataFrame) -> evolve.Evolution:
    """The dataset's effective spec: declared columns, those earlier batches added to the
    table, and those this batch adds (``unknown_fields: evolve`` only)."""
    if spec.unknown_fields != "evolve":
        return evolve.Evolution(spec)
    if silver is not None:
        fields = [(f.name, delta_type(f.type)) for f in silver.schema().fields]
        lineage = [*SILVER_LINEAGE, BRONZE_VERSION, *HISTORY]
        spec = dataclasses.replace(spec, columns=(*spec.columns, *evolve.table_columns(spec, fields, lineage=lineage)))
    return evolve.infer(increment.get_column("_raw"), spec)
