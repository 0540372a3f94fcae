"""Bronze: append raw landed records, with the source cursor in the same Delta commit.

Bronze keeps every non-blank line exactly as received (``_raw``) plus lineage columns;
nothing is parsed, so nothing can be dropped here. One commit per batch carries a Delta
application transaction (``lakehouse:bronze/<table><-landing/<prefix>``, a batch sequence
number) and commit metadata naming the window and the files it consumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.commit import app_id, commit_properties, committed_version, ensure_table, write_once
from lakehouse.config import Settings
from lakehouse.declaration import Dataset
from lakehouse.landing import LandedFile, pending_files, read_lines
from lakehouse.specs import TableSpec
from lakehouse.storage import ObjectStore, storage_options
from lakehouse.window import Window

log = logging.getLogger(__name__)

BRONZE_SCHEMA = pa.schema(
    [
        pa.field("_raw", pa.large_string()),
        pa.field("_batch_id", pa.large_string()),
        pa.field("_source", pa.large_string()),
        pa.field("_source_position", pa.large_string()),
        pa.field("_source_version", pa.large_string()),
        pa.field("_line", pa.int64()),
        pa.field("_landed_at", pa.timestamp("us", tz="UTC")),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def bronze_name(spec: TableSpec) -> str:
    """The bronze table of a silver dataset: ``orders`` → ``orders_raw``."""
    return f"{spec.name}_raw"


@dataclass(frozen=True)
class BronzeResult:
    """What one bronze ingest did."""

    table: str
    window: Window
    files: list[LandedFile] = field(default_factory=list)
    rows: int = 0
    version: int | None = None
    batch: int | None = None
    skipped: bool = False
    """True when there was nothing new to ingest (a re-run, or an empty window)."""


def ingested_files(uri: str, options: dict[str, str]) -> set[tuple[str, str]]:
    """``(key, version)`` of every file already in the bronze table."""
    frame = (
        pl.scan_delta(uri, storage_options=options)
        .select("_source_position", "_source_version")
        .unique()
        .collect()
    )
    return set(frame.iter_rows())


def ingest(
    settings: Settings, dataset: Dataset, window: Window, *, landing: ObjectStore
) -> BronzeResult:
    """Append every file under the dataset's prefix that landed before ``window.end``.

    Files already ingested (same key and version) are skipped, so a re-run of any window
    commits nothing. Returns what was ingested.
    """
    spec = dataset.spec
    name = bronze_name(spec)
    uri = settings.table_uri("bronze", name)
    options = storage_options(settings)
    prefix = dataset.prefix
    app = app_id(f"bronze/{name}", f"landing/{prefix}")
    table = ensure_table(uri, BRONZE_SCHEMA, options)

    files = pending_files(
        landing, prefix=prefix, before=window.end, ingested=ingested_files(uri, options),
        time_from=dataset.landing_time,
    )
    if not files:
        return BronzeResult(table=f"bronze.{name}", window=window, skipped=True)

    batch = (committed_version(table, app) or 0) + 1
    batch_id = f"{name}:{batch}"
    lines = read_lines(landing, files, format=dataset.format, compression=dataset.compression)
    if lines.is_empty():
        # only empty files: nothing to keep; they stay pending and cost no commit
        log.info("bronze.%s: %d pending files hold no records", name, len(files))
        return BronzeResult(table=f"bronze.{name}", window=window, files=files, skipped=True)
    data = lines.with_columns(
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(prefix).alias("_source"),
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
    ).select(BRONZE_SCHEMA.names)
    arrow = data.to_arrow().cast(BRONZE_SCHEMA)
    metadata = {
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "batch_id": batch_id,
        "rows": arrow.num_rows,
        "files": [{"key": f.key, "version": f.version, "landed_at": f.landed_at.isoformat()} for f in files],
    }

    def write() -> None:
        write_deltalake(
            uri,
            arrow,
            mode="append",
            storage_options=options,
            commit_properties=commit_properties({app: batch}, metadata),
        )

    landed = write_once(uri, options, transactions={app: batch}, write=write)
    log.info(
        "bronze.%s: batch %s, %d files, %d rows -> version %d",
        name, batch, len(files), arrow.num_rows, landed.version,
    )
    return BronzeResult(
        table=f"bronze.{name}",
        window=window,
        files=files,
        rows=arrow.num_rows,
        version=landed.version,
        batch=batch,
    )
