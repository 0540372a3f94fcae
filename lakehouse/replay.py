"""Quarantine replay: re-submit quarantined rows that pass the rules now, exactly once.

A row is quarantined by the rules of its promotion as they stood then: an order line whose
product had not reached ``silver.products`` yet, a status the declaration did not list.
:func:`replay` re-evaluates the row-level rules on every quarantined row that was not
replayed before (against today's declaration and today's silver keys) and appends the
raw text of the rows that pass to the dataset's **bronze** table, so they reach silver
through the normal gate, merge and gold recomputation (invariant 3) and keep their lineage.

Replayed bronze rows carry ``_source = "replay"`` and ``_source_position =
"replay:<original position>"`` with the original ``_line``, ``_source_version`` and
``_landed_at`` (so "newer wins" in silver orders them as when they first landed). That
position is also what makes a replay happen once: a quarantined row whose position and
line are already in bronze as a replay is never replayed again, whatever happens to it
later. The append carries a Delta application transaction with a replay sequence number
(``write_once``), so a retried replay whose commit landed does not write twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse.commit import (
    committed_version,
    ensure_table,
    open_table,
    replay_app,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.dev.faults import crash_point
from lakehouse.layers.bronze import BRONZE_SCHEMA, REPLAY_SOURCE, bronze_name
from lakehouse.layers.silver import reason_counts, reference_keys
from lakehouse.layers.silver.transform import parse_records
from lakehouse.specs import Dataset
from lakehouse.storage import storage_options

log = logging.getLogger(__name__)

POSITION_PREFIX = "replay:"


@dataclass(frozen=True)
class ReplayResult:
    """What one replay of a dataset's quarantine did."""

    table: str
    candidates: int = 0
    """Quarantined rows never replayed before (one per source position and line)."""
    replayed: int = 0
    """Of those, the rows that pass the row-level rules now, appended to bronze."""
    still_failing: dict[str, int] = field(default_factory=dict)
    """The other candidates, counted by their reason now."""
    version: int | None = None
    """The bronze version holding the replayed rows (None when nothing was replayed)."""


def _replayed(bronze_uri: str, options: dict[str, str]) -> pl.DataFrame:
    """``(_source_position, _line)`` of every row replayed into bronze so far."""
    return (
        pl.scan_delta(bronze_uri, storage_options=options)
        .filter(pl.col("_source") == REPLAY_SOURCE)
        .select(pl.col("_source_position").str.strip_prefix(POSITION_PREFIX), "_line")
        .unique()
        .collect()
    )


def candidates(settings: Settings, dataset: Dataset) -> pl.DataFrame:
    """The quarantined rows of ``dataset`` that were never replayed, latest copy of each line.

    Rows quarantined from a replay (position ``replay:…``) are not candidates: each
    quarantined line is re-submitted at most once.
    """
    options = storage_options(settings)
    spec = dataset.spec
    quarantine_uri = settings.table_uri("quarantine", spec.name)
    if open_table(quarantine_uri, options) is None:
        return pl.DataFrame()
    rows = (
        pl.scan_delta(quarantine_uri, storage_options=options)
        .filter(~pl.col("_source_position").str.starts_with(POSITION_PREFIX))
        .collect()
        .sort(["_landed_at", "_source_position", "_line"])
        .unique(subset=["_source_position", "_line"], keep="last", maintain_order=True)
    )
    bronze_uri = settings.table_uri("bronze", bronze_name(spec))
    if rows.is_empty() or open_table(bronze_uri, options) is None:
        return rows
    return rows.join(_replayed(bronze_uri, options), on=["_source_position", "_line"], how="anti")


def replay(settings: Settings, dataset: Dataset) -> ReplayResult:
    """Append the quarantined rows of ``dataset`` that pass the rules now to its bronze table.

    The rules are the dataset's row-level rules with today's reference keys (silver as
    committed). Rows that still fail stay where they are and are counted by reason.
    Promote afterwards (the ``replay`` flow does) to carry the rows through the gate.
    """
    spec = dataset.spec
    options = storage_options(settings)
    todo = candidates(settings, dataset)
    if todo.is_empty():
        return ReplayResult(spec.qualified_name)
    source_versions = _source_versions(settings, dataset, todo)
    lines = todo.select("_raw", "_batch_id", "_source_position", "_line", "_landed_at").join(
        source_versions, on=["_source_position", "_line"], how="left"
    )
    parsed = parse_records(lines.lazy(), spec, reference_keys(settings, spec, lines)).collect()
    passing = parsed.filter(pl.col("_reject_reason").is_null())
    failing = parsed.filter(pl.col("_reject_reason").is_not_null())
    result = ReplayResult(
        spec.qualified_name, candidates=todo.height, replayed=passing.height,
        still_failing=reason_counts(failing),
    )
    if passing.is_empty():
        return result

    name = bronze_name(spec)
    uri = settings.table_uri("bronze", name)
    table = ensure_table(uri, BRONZE_SCHEMA, options)
    app = replay_app(name, spec.name)
    sequence = (committed_version(table, app) or 0) + 1
    batch_id = f"{name}:replay-{sequence}"
    rows = (
        lines.join(passing.select("_source_position", "_line"), on=["_source_position", "_line"], how="semi")
        .with_columns(
            pl.lit(batch_id).alias("_batch_id"),
            pl.lit(REPLAY_SOURCE).alias("_source"),
            (pl.lit(POSITION_PREFIX) + pl.col("_source_position")).alias("_source_position"),
            pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
        )
        .select(BRONZE_SCHEMA.names)
        .to_arrow()
        .cast(BRONZE_SCHEMA)
    )
    metadata = {"batch_id": batch_id, "rows": rows.num_rows, "replay_of": f"quarantine.{spec.name}"}

    def write(table: DeltaTable, props: CommitProperties) -> None:
        write_deltalake(table, rows, mode="append", commit_properties=props)

    landed = write_once(
        uri, options, transactions={app: sequence}, metadata=metadata,
        expect={app: sequence - 1 or None}, if_another_committed="conflict", write=write, table=table,
    )
    crash_point("replay.appended")  # in bronze, not yet promoted: silver's next increment takes it
    log.info("%s: replayed %d of %d quarantined rows -> bronze.%s version %d",
             spec.qualified_name, rows.num_rows, todo.height, name, landed.version)
    return ReplayResult(
        spec.qualified_name, candidates=todo.height, replayed=rows.num_rows,
        still_failing=result.still_failing, version=landed.version,
    )


def _source_versions(settings: Settings, dataset: Dataset, todo: pl.DataFrame) -> pl.DataFrame:
    """The ``_source_version`` (ETag) each quarantined line had in bronze."""
    uri = settings.table_uri("bronze", bronze_name(dataset.spec))
    positions = todo.get_column("_source_position").unique().implode()
    return (
        pl.scan_delta(uri, storage_options=storage_options(settings))
        .filter(pl.col("_source_position").is_in(positions))
        .select("_source_position", "_line", "_source_version")
        .unique(subset=["_source_position", "_line"], keep="last")
        .collect()
    )
