"""Gold: business aggregates recomputed only for the partitions upstream changes touched.

The touched partitions come from the change data feed of the silver tables since the
versions gold last consumed: the pre-images give the old partitions, the post-images the
new ones, so an order whose date was corrected recomputes both days. A change to an order
line touches the day of its order. The recomputed days replace the old ones with a
predicate overwrite whose commit records the silver versions consumed (invariant 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse import sql
from lakehouse.commit import (
    app_id,
    commit_properties,
    committed_version,
    ensure_table,
    open_table,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.gates import GateResult, run_gate
from lakehouse.models import daily_sales
from lakehouse.shop import DAILY_SALES, ORDER_ITEMS, ORDERS
from lakehouse.specs import TableSpec
from lakehouse.storage import storage_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldBatch:
    """The recomputed partitions of a gold model, gated, ready to commit."""

    spec: TableSpec
    consumed: dict[str, int]
    """Application id → silver version consumed."""
    touched: list[date | None]
    rows: pl.DataFrame
    gates: list[GateResult]


@dataclass(frozen=True)
class GoldResult:
    table: str
    touched: list[date | None]
    rows: int
    version: int | None
    skipped: bool = False


def _gold_app(spec: TableSpec, upstream: TableSpec) -> str:
    return app_id(f"gold/{spec.name}", f"silver/{upstream.name}")


def _changes(table: DeltaTable, start: int, end: int, columns: list[str]) -> pl.DataFrame:
    if start > end:
        return pl.DataFrame(schema={c: pl.Null for c in columns})
    reader = table.load_cdf(starting_version=start, ending_version=end, columns=columns)
    frame = pl.from_arrow(pa.table(reader.read_all()))
    assert isinstance(frame, pl.DataFrame)
    return frame.select(columns)


def prepare(settings: Settings, spec: TableSpec = DAILY_SALES) -> GoldBatch | None:
    """Find the days that silver changed since gold's last commit, recompute and gate them."""
    options = storage_options(settings)
    orders_t = open_table(settings.table_uri("silver", ORDERS.name), options)
    items_t = open_table(settings.table_uri("silver", ORDER_ITEMS.name), options)
    if orders_t is None or items_t is None:
        return None
    gold = open_table(settings.table_uri("gold", spec.name), options)
    apps = {_gold_app(spec, ORDERS): orders_t, _gold_app(spec, ORDER_ITEMS): items_t}
    consumed = {app: committed_version(gold, app) for app in apps}
    current = {app: t.version() for app, t in apps.items()}
    if all(consumed[a] is not None and consumed[a] >= current[a] for a in apps):
        return None

    def start(app: str) -> int:
        return 0 if consumed[app] is None else consumed[app] + 1  # type: ignore[operator]

    o_app, i_app = list(apps)
    order_changes = _changes(orders_t, start(o_app), current[o_app], ["order_date"])
    item_changes = _changes(items_t, start(i_app), current[i_app], ["order_id"])

    orders = pl.scan_delta(orders_t.table_uri, storage_options=options)
    items = pl.scan_delta(items_t.table_uri, storage_options=options)
    item_days = (
        orders.filter(pl.col("order_id").is_in(item_changes.get_column("order_id").unique().implode()))
        .select("order_date")
        .collect()
    )
    touched = sorted(
        set(order_changes.get_column("order_date").to_list())
        | set(item_days.get_column("order_date").to_list()),
        key=lambda d: (d is None, d),
    )
    day_filter = pl.col("order_date").is_in([d for d in touched if d is not None])
    orders_slice = orders.filter(day_filter).collect()
    items_slice = items.join(orders_slice.lazy().select("order_id"), on="order_id", how="semi").collect()
    rows = daily_sales(orders_slice.lazy(), items_slice.lazy()).collect()
    # the gate scans the silver rows this recomputation reads and the rows it produces
    gates = [
        run_gate(frame.select(upstream.column_names), upstream, stage="silver_to_gold", strict=True)
        for frame, upstream in ((orders_slice, ORDERS), (items_slice, ORDER_ITEMS), (rows, spec))
        if not frame.is_empty()
    ]
    return GoldBatch(spec, dict(current), touched, rows, gates)


def commit(settings: Settings, batch: GoldBatch) -> GoldResult:
    """Replace the touched partitions of the gold table; records the silver versions consumed."""
    spec = batch.spec
    options = storage_options(settings)
    uri = settings.table_uri("gold", spec.name)
    ensure_table(uri, spec.arrow_schema(), options, partition_by=[spec.partition_by] if spec.partition_by else None)
    data = batch.rows.to_arrow().cast(spec.arrow_schema())
    predicate = sql.in_list(spec.partition_by, batch.touched) if spec.partition_by else None
    props = commit_properties(
        batch.consumed,
        {"touched": [str(d) for d in batch.touched], "rows": data.num_rows},
    )

    def write() -> None:
        write_deltalake(
            uri, data, mode="overwrite", predicate=predicate or "FALSE",
            partition_by=[spec.partition_by] if spec.partition_by else None,
            storage_options=options, commit_properties=props,
        )

    if not batch.touched:
        # nothing changed downstream of silver: still record the versions consumed
        def write() -> None:  # noqa: F811
            write_deltalake(uri, data, mode="append", storage_options=options, commit_properties=props)

    landed = write_once(uri, options, transactions=batch.consumed, write=write)
    log.info("%s: %d days recomputed, %d rows -> version %d", spec.qualified_name, len(batch.touched), data.num_rows, landed.version)
    return GoldResult(spec.qualified_name, batch.touched, data.num_rows, landed.version)


def rebuild(settings: Settings) -> pl.DataFrame:
    """``daily_sales`` computed from scratch over all of silver (for checks and repair)."""
    options = storage_options(settings)
    orders = pl.scan_delta(settings.table_uri("silver", ORDERS.name), storage_options=options)
    items = pl.scan_delta(settings.table_uri("silver", ORDER_ITEMS.name), storage_options=options)
    return daily_sales(orders, items).collect()
