"""Targets for the merge scenario, written directly with ``write_deltalake`` (fast).

A target of N order lines is the new lines of the windows before the batch's window (the
newest N of them), typed as silver holds them; ``silver.orders`` holds their orders and
the batch's own new orders, so the batch passes its reference check. The batch is that
next window's landing files, ingested into bronze by the engine, so that the merge is
measured on a :class:`~lakehouse.layers.silver.SilverBatch` made by ``silver.prepare``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from bench import data
from bench.engine import bronze_ingest, pipeline
from lakehouse.config import Settings
from lakehouse.storage import open_store, storage_options
from lakehouse.window import Window


def _lineage(frame: pl.DataFrame, w: int, shape: data.Shape) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(f"target:{w}").alias("_batch_id"),
        pl.lit(f"target/{w}").alias("_source_position"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("_line"),
        pl.lit(shape.window_start(w)).cast(pl.Datetime("us", "UTC")).alias("_landed_at"),
        pl.lit(w, dtype=pl.Int64).alias("_bronze_version"),
    )


def batch_window(shape: data.Shape, lines: int) -> int:
    """The window of the batch: the first one whose predecessors hold ``lines`` new lines."""
    total, w = 0, 0
    while total < lines:
        total += shape.new_lines(w)
        w += 1
    return w


def build_target(settings: Settings, *, lines: int, batch: int, seed: int) -> dict[str, Any]:
    """Write silver targets of ``lines`` order lines, and the batch into bronze."""
    from lakehouse.commit import ensure_table
    from lakehouse.layers.silver import silver_schema
    from lakehouse.layers.silver.merge import silver_configuration

    chosen = pipeline()
    shape = data.Shape(lines=batch, seed=seed)
    k = batch_window(shape, lines)
    skip = sum(shape.new_lines(w) for w in range(k)) - lines  # oldest lines left out
    options = storage_options(settings)
    lines_spec, orders_spec = chosen.dataset("order_lines").spec, chosen.dataset("orders").spec
    lines_schema, orders_schema = silver_schema(lines_spec), silver_schema(orders_spec)

    def line_batches() -> Iterator[pa.RecordBatch]:
        left = skip
        for w in range(k):
            frame = data.new_records(shape, w).lines
            if left:
                cut = min(left, frame.height)
                frame, left = frame.slice(cut), left - cut
            if frame.height:
                yield from _lineage(frame, w, shape).select(lines_schema.names).to_arrow().cast(lines_schema).to_batches()

    def order_batches() -> Iterator[pa.RecordBatch]:
        for w in range(k + 1):
            frame = data.new_records(shape, w).orders.with_columns(pl.col("ordered_at").dt.date().alias("order_date"))
            yield from _lineage(frame, w, shape).select(orders_schema.names).to_arrow().cast(orders_schema).to_batches()

    lines_uri = settings.table_uri("silver", lines_spec.name)
    orders_uri = settings.table_uri("silver", orders_spec.name)
    # the tables as the engine makes them (their declared target file size included)
    ensure_table(lines_uri, lines_schema, options, configuration=silver_configuration(lines_spec))
    ensure_table(orders_uri, orders_schema, options, partition_by=[orders_spec.partition_by] if orders_spec.partition_by else None,
                 configuration=silver_configuration(orders_spec))
    write_deltalake(lines_uri, pa.RecordBatchReader.from_batches(lines_schema, line_batches()), mode="append", storage_options=options)
    write_deltalake(
        orders_uri, pa.RecordBatchReader.from_batches(orders_schema, order_batches()), mode="append",
        partition_by=[orders_spec.partition_by] if orders_spec.partition_by else None, storage_options=options,
    )
    # the batch: window k's order lines, landed and ingested by the engine
    landing = open_store(settings.landing_root, settings)
    records = data.window_records(shape, k).lines
    for part, body in enumerate(data.file_chunks(data.json_lines(records), shape.lines_per_file)):
        landing.put(data.landing_key(chosen.dataset("order_lines").prefix, shape.window_start(k), part), body)
    window = Window(shape.window_start(k), shape.window_end(k))
    ingested = bronze_ingest(settings, chosen, "order_lines", window)
    return {"window": k, "target_rows": lines, "batch_rows": ingested.rows,
            "start": window.start.isoformat(), "end": window.end.isoformat()}
