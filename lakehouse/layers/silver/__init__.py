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
from datetime import datetime

import polars as pl
from deltalake import DeltaTable

from lakehouse.commit import (
    committed_version,
    open_table,
)
from lakehouse.config import Settings
from lakehouse.errors import StaleBatch
from lakehouse.layers.bronze import bronze_name
from lakehouse.layers.quarantine import QUARANTINE_SCHEMA, reason_counts, reason_examples
from lakehouse.layers.silver import evolve
from lakehouse.layers.silver.batch import (
    Counts,
    SilverBatch,
    SilverResult,
    silver_app_of,
    silver_uri,
)
from lakehouse.layers.silver.increment import (
    bounded_end,
    bronze_rows,
    read_increment,
    reference_keys,
    referenced_values,
)
from lakehouse.layers.silver.merge import delta_type, merge, schema_change, silver_schema
from lakehouse.layers.silver.transform import (
    BRONZE_VERSION,
    SILVER_LINEAGE,
    collapse,
    conflicts,
    parse_records,
    silver_columns,
    unknown_field_counts,
)
from lakehouse.quality import GateResult, blocking_error, run_gate
from lakehouse.sources.files import UNREADABLE_LINE
from lakehouse.specs import Dataset, TableSpec
from lakehouse.storage import storage_options

__all__ = [
    "QUARANTINE_SCHEMA", "Counts", "SilverBatch", "SilverResult", "bounded_end", "commit", "prepare",
    "read_increment", "reason_counts", "reason_examples", "reference_keys", "referenced_values", "schema_change",
    "silver_schema",
]

log = logging.getLogger(__name__)


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
    silver = open_table(silver_uri(settings, spec), options)
    consumed = committed_version(silver, silver_app_of(spec))
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
        spec.qualified_name, bronze_rows=bronze_rows(bronze, start, end), keys=clean.select(spec.keys).n_unique()
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
        fields = [(f.name, delta_type(f.type)) for f in silver.schema().fields]
        lineage = [*SILVER_LINEAGE, BRONZE_VERSION]
        spec = dataclasses.replace(spec, columns=(*spec.columns, *evolve.table_columns(spec, fields, lineage=lineage)))
    return evolve.infer(increment.get_column("_raw"), spec)


def commit(settings: Settings, batch: SilverBatch) -> SilverResult:
    """Quarantine the rejected rows and merge the clean ones; records the bronze version.

    A batch that another writer's promotion overlaps (it committed part of the bronze
    versions this batch was prepared from: :class:`~lakehouse.errors.StaleBatch`) is
    prepared once more from the new snapshot, gated again, and committed; stale a second
    time, it fails with that said, and the next run promotes the rest.
    """
    try:
        return merge(settings, batch)
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
            return merge(settings, dataclasses.replace(fresh, dataset=None))
        except StaleBatch as again:
            raise StaleBatch(
                f"{again} (stale again after one re-prepare from the new snapshot; the next run promotes the rest)"
            ) from stale
