"""Gold: SQL models recomputed only for the partitions that upstream changes touched.

For each model, the silver versions it last consumed are application transactions in its
own commits. The change data feed of each input since then gives the changed rows (old
and new versions), :func:`lakehouse.layers.gold.models.touched_partitions` turns them into the result
partitions they can move (an order whose date was corrected: both days; a late order
line: its order's day), those partitions are recomputed from current silver and replaced
with one predicate overwrite that records every input version consumed (invariant 1).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse import duck, sql
from lakehouse.commit import (
    committed_version,
    ensure_table,
    gold_app,
    open_table,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.dev.faults import crash_point
from lakehouse.errors import ConfigError, StaleBatch
from lakehouse.layers.gold import cdf, incremental, restore, versions
from lakehouse.layers.gold.models import DeltaSnapshot, run_model, touched_partitions
from lakehouse.layers.silver.lookup import rows_with_keys
from lakehouse.layers.silver.transform import business_key
from lakehouse.pipeline import Pipeline
from lakehouse.quality import GateResult, blocking_error, run_gate
from lakehouse.specs import GoldModel
from lakehouse.storage import open_store, storage_options

log = logging.getLogger(__name__)

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass(frozen=True)
class GoldBatch:
    """The recomputed partitions of a gold model, gated, ready to commit."""

    model: GoldModel
    consumed: dict[str, int]
    """Application id → silver version consumed."""
    touched: list[Any]
    rows: pa.Table
    gates: list[GateResult]
    since: dict[str, int | None] | None = None
    """Application id → silver version consumed before this batch (None: never): what it was prepared from."""
    pipeline: Pipeline | None = None
    """What the batch was prepared for, so that a stale batch can be prepared again (None: never)."""


@dataclass(frozen=True)
class GoldResult:
    """What a gold model's recompute did: partitions touched, rows, the version it landed as."""

    table: str
    touched: list[Any]
    rows: int
    version: int | None
    preview: list[dict[str, Any]]
    files_added: int = 0
    """Data files the overwrite added to the gold table."""


def _app(model: GoldModel, upstream: str) -> str:
    return gold_app(model.spec.name, upstream)


def _changes(table: DeltaTable, start: int, end: int, settings: Settings, uri: str, keys: list[str]) -> pl.DataFrame:
    """Silver's change data feed for versions ``start..end``: every pre- and post-image.

    A table partitioned by values with a space or ``%`` has its feed read from the log
    (:mod:`lakehouse.layers.gold.cdf`): delta-rs' ``load_cdf`` does not find those files.
    A restore commit's feed (a rollback) is made row-exact by its ``keys``
    (:mod:`lakehouse.layers.gold.restore`).
    """
    try:
        reader = table.load_cdf(starting_version=start, ending_version=end)
        frame = pl.from_arrow(pa.table(reader.read_all()))
    except Exception as exc:
        if not cdf.needs_log_reader(exc):
            raise
        frame = cdf.changes(table, open_store(uri, settings), start, end)
    assert isinstance(frame, pl.DataFrame)
    return restore.net(frame, restore.restores(table, start, end), keys)


def _rows(frame: pl.DataFrame) -> pa.Table:
    arrow = frame.drop([c for c in CDF_COLUMNS if c in frame.columns]).to_arrow()
    schema = pa.schema(
        [pa.field(f.name, pa.large_string() if f.type in (pa.string_view(), pa.string()) else f.type) for f in arrow.schema]
    )
    return arrow.cast(schema)


def _latest(changes: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The current row of every key the feed names: its last post-image, unless it was deleted."""
    order = pl.col("_change_type").replace_strict(
        {"update_preimage": 0, "delete": 1, "insert": 1, "update_postimage": 1}, return_dtype=pl.Int8
    )
    images = changes.filter(pl.col("_change_type") != "update_preimage")
    # a key the feed names once is its own last image: only repeated keys are sorted
    repeated = business_key(keys).is_duplicated()
    last = pl.concat([
        images.filter(~repeated),
        images.filter(repeated)
        .with_columns(order.alias("__order"))
        .sort(["_commit_version", "__order"])
        .unique(subset=keys, keep="last", maintain_order=True)
        .drop("__order"),
    ])
    return last.filter(pl.col("_change_type") != "delete")


def prepare(settings: Settings, pipeline: Pipeline, model: GoldModel) -> GoldBatch | None:
    """Find the partitions the inputs' changes touch, recompute and gate them; None if current.

    What is read is bounded by the change, not by the tables: the change data feed of each
    input since the version this model consumed (its pre- and post-images), and the
    inputs' current snapshots through DuckDB's ``delta`` extension, so that the touched
    partitions are scanned with partition and statistics pushdown.
    """
    options = storage_options(settings)
    inputs = {name: open_table(settings.table_uri("silver", name), options) for name in model.inputs}
    if any(t is None for t in inputs.values()):
        return None  # an input has never been promoted yet
    tables: dict[str, DeltaTable] = {k: v for k, v in inputs.items() if v is not None}
    gold = open_table(settings.table_uri("gold", model.spec.name), options)
    consumed = {name: committed_version(gold, _app(model, name)) for name in tables}
    current = {name: t.version() for name, t in tables.items()}
    since = {n: -1 if (v := consumed[n]) is None else v for n in tables}
    changed = [n for n in tables if since[n] < current[n]]
    if not changed:
        return None

    changes = {
        n: _changes(tables[n], since[n] + 1, current[n], settings, settings.table_uri("silver", n),
                    list(pipeline.dataset(n).spec.keys))
        for n in changed
    }
    # what a model sees of a silver table: the declared columns (and an SCD2 table's version columns)
    specs = {n: pipeline.dataset(n).spec for n in tables}
    columns = {n: (*spec.column_names, *(c.name for c in spec.history_columns())) for n, spec in specs.items()}
    snapshots = {n: DeltaSnapshot(tables[n].table_uri, current[n], columns[n]) for n in tables}
    partition = model.spec.partition_by or ""
    con = duck.connect(settings)
    try:
        if model.additive is not None:
            # maintained from the changed entities' rows: reads do not grow with the partitions
            touched, rows = incremental.maintain(
                model, current=snapshots, changes={n: changes[n] for n in changed},
                keys={n: list(pipeline.dataset(n).spec.keys) for n in tables},
                gold=None if gold is None else pl.scan_delta(gold.table_uri, storage_options=options),
                con=con,
            )
        else:
            # the previous snapshot differs from the current one only by the feed's pre-images
            before = {
                n: _rows(changes[n].filter(pl.col("_change_type").is_in(["update_preimage", "delete"])).select(columns[n]))
                for n in changed
            }
            # an SCD2 input's changes are the spans of time whose version changed (versions.py)
            looked_up = frozenset(n for n in changed if specs[n].tracked is not None)
            changed_rows = {
                n: _rows(versions.changed_spans(specs[n], changes[n], rows_with_keys(
                    tables[n], changes[n].select(list(specs[n].keys)).unique(), columns[n]).rows.to_arrow(), columns[n]))
                if n in looked_up else _rows(changes[n].select(columns[n]))
                for n in changed
            }
            touched = touched_partitions(
                model.sql, partition, changes=changed_rows, old=before, current=snapshots, con=con, looked_up=looked_up,
            )
            if model.touched_by_inputs:  # touched: inputs (a running total: the changed rows alone produce no row)
                named = {v for n in changed for v in changes[n].get_column(partition).unique().to_list()}
                touched = sorted(set(touched) | named, key=lambda v: (v is None, v))
            rows = run_model(model.sql, snapshots, partition_by=partition, partitions=touched, con=con)
    except duckdb.PermissionException as exc:
        msg = (
            f"{model.spec.qualified_name}: a gold model reads only silver tables (silver.<dataset>); "
            f"DuckDB refused: {str(exc).splitlines()[0]}"
        )
        raise ConfigError(msg) from exc
    finally:
        duck.release(con)
    rows = rows.select(model.spec.column_names).cast(model.spec.arrow_schema())

    gates = []
    for n in changed:
        spec = pipeline.dataset(n).spec
        after = _latest(changes[n], list(spec.keys))
        if not after.is_empty():
            gates.append(run_gate(after.select(spec.column_names), spec, stage="silver_to_gold", strict=True))
    if rows.num_rows:
        gates.append(run_gate(rows, model.spec, stage="silver_to_gold", strict=True))
    return GoldBatch(
        model, {_app(model, n): v for n, v in current.items()}, touched, rows, gates,
        since={_app(model, n): v for n, v in consumed.items()}, pipeline=pipeline,
    )


def commit(settings: Settings, batch: GoldBatch) -> GoldResult:
    """Replace the touched partitions of the model's table; records the inputs consumed.

    A batch prepared from input versions that another writer has moved since
    (:class:`~lakehouse.errors.StaleBatch`) is prepared once more from the new snapshots,
    gated again, and committed; stale a second time, it fails saying so.
    """
    try:
        return _commit(settings, batch)
    except StaleBatch as stale:
        if batch.pipeline is None:
            raise
        spec = batch.model.spec
        log.warning("%s: %s; preparing it again from the new snapshots (once)", spec.qualified_name, stale)
        fresh = prepare(settings, batch.pipeline, batch.model)
        if fresh is None:  # the other writer recomputed all of it
            return GoldResult(spec.qualified_name, [], 0, None, [])
        error = blocking_error(fresh.gates)
        if error is not None:
            raise error from stale
        try:
            return _commit(settings, dataclasses.replace(fresh, pipeline=None))
        except StaleBatch as again:
            msg = f"{again} (stale again after one re-prepare from the new snapshots; the next run catches up)"
            raise StaleBatch(msg) from stale


def _commit(settings: Settings, batch: GoldBatch) -> GoldResult:
    spec = batch.model.spec
    options = storage_options(settings)
    uri = settings.table_uri("gold", spec.name)
    partition_by = [spec.partition_by] if spec.partition_by else None
    existing = ensure_table(uri, spec.arrow_schema(), options, partition_by=partition_by)
    metadata = {"touched": [str(d) for d in batch.touched], "rows": batch.rows.num_rows}

    def write(table: DeltaTable, props: CommitProperties) -> None:
        if not batch.touched:
            # nothing downstream changed: still record the versions consumed
            write_deltalake(table, batch.rows, mode="append", commit_properties=props)
            return
        write_deltalake(
            table, batch.rows, mode="overwrite", predicate=sql.in_list(spec.partition_by or "", batch.touched),
            partition_by=partition_by, commit_properties=props,
        )

    landed = write_once(
        uri, options, transactions=batch.consumed, metadata=metadata, expect=batch.since, write=write, table=existing,
    )
    crash_point("gold.committed")  # after this model's overwrite, before the next model's
    log.info("%s: %d partitions recomputed, %d rows -> version %d", spec.qualified_name, len(batch.touched), batch.rows.num_rows, landed.version)
    preview = pl.DataFrame(batch.rows.slice(0, 20)).to_dicts()
    return GoldResult(spec.qualified_name, batch.touched, batch.rows.num_rows, landed.version, preview,
                      files_added=landed.files_added)


def inserted(settings: Settings, model: GoldModel, version: int) -> pa.Table:
    """The rows that commit ``version`` of the model's table inserted: new by the model's key.

    Read from that commit's change data feed: its inserts whose key it did not also delete
    (a recomputed partition deletes and inserts again every row it keeps). The same commit
    always gives the same rows, so what is sent for them (a Prefect event) can be sent again.
    """
    options = storage_options(settings)
    uri = settings.table_uri("gold", model.spec.name)
    table = open_table(uri, options)
    keys = list(model.spec.keys)
    empty = model.spec.arrow_schema().empty_table()
    if table is None or not keys or version < 1:
        return empty
    feed = _changes(table, version, version, settings, uri, keys)
    if feed.is_empty():
        return empty
    gone = feed.filter(pl.col("_change_type").is_in(["delete", "update_preimage"])).select(keys)
    new = feed.filter(pl.col("_change_type") == "insert").join(gone, on=keys, how="anti", nulls_equal=True)
    return _rows(new.select(model.spec.column_names)).cast(model.spec.arrow_schema())


def rebuild(settings: Settings, model: GoldModel) -> pl.DataFrame:
    """The model computed from scratch over all of silver (for checks and repair)."""
    options = storage_options(settings)
    tables = {n: DeltaTable(settings.table_uri("silver", n), storage_options=options).to_pyarrow_table() for n in model.inputs}
    rows = run_model(model.sql, tables).select(model.spec.column_names).cast(model.spec.arrow_schema())
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(frame.columns)
