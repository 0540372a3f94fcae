"""The core invariants, against a moto S3 server process and a real Prefect API."""

from __future__ import annotations

import time

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.catalog import connect
from lakehouse.commit import app_id, open_table
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.dev.shop import DAILY_SALES
from lakehouse.dev.simulator import new_product
from lakehouse.layers import gold
from lakehouse.storage import storage_options
from tests.conftest import new_warehouse
from tests.integration.conftest import WINDOWS, InOrder, Replayed
from tests.integration.helpers import (
    START,
    contents,
    land,
    read,
    replay,
    run,
    versions,
    window_end,
    without,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

SPEC_ORDER = ("order_id",)


def test_a_window_flows_to_gold_and_accounts_for_every_row(in_order: InOrder, monkeypatch) -> None:
    # window 1 of land(2) (the session's in-order windows land more, which window 1 does not see)
    summary = in_order.summary(1)  # the run completed (InOrder asserts it)
    in_order.use(1, monkeypatch)
    for t in summary.tables:
        assert t.read == t.merged + t.rejected + t.duplicates + t.conflicts
        assert t.read > 0
        assert t.files_added >= 1  # the summary says what each merge wrote
    assert all(b.commits == 1 and b.files_added == 1 for b in summary.bronze)
    assert all(g.files_added >= 1 for g in summary.gold)
    assert set(summary.steps) == {"bronze", "silver", "gold"}
    assert sum(t.rejected for t in summary.tables) > 0  # the simulator's faulty lines
    assert sum(t.duplicates for t in summary.tables) > 0
    daily = read("gold", "daily_sales")
    assert daily.height > 0
    bronze_rows = read("bronze", "orders_raw").height
    quarantined = read("quarantine", "orders").height
    tables = {t.table: t for t in summary.tables}
    assert list(tables) == ["silver.products", "silver.product_history", "silver.orders", "silver.order_items"]  # referenced first
    assert bronze_rows == tables["silver.orders"].read
    assert quarantined == tables["silver.orders"].rejected
    # fault 10: the line selling a product the catalogue lists only a window later
    assert tables["silver.order_items"].reasons["unknown product_id"] == 1
    assert read("silver", "products").height == 51  # the catalogue, and the product the window before sold


def test_rerunning_any_window_commits_nothing(in_order: InOrder, monkeypatch) -> None:
    in_order.clone(3, monkeypatch, landed=3)  # land(3), windows 1, 2 and 3 completed
    before_versions, before = versions(), contents()
    for k in (1, 2, 3):
        assert run(k).is_completed()
    assert versions() == before_versions
    after = contents()
    assert after.keys() == before.keys()
    for name in before:
        assert_frame_equal(after[name], before[name])


def test_out_of_order_windows_give_the_same_silver_after_a_quarantine_replay(replayed: Replayed, moto, monkeypatch) -> None:
    # Whether a line selling a new product is quarantined depends on whether the catalogue
    # entry arrived in the same run (fault 10); a replay makes both orders end equal.
    lineage = ("_batch_id", "_source_position", "_bronze_version", "_ingested_at")  # replayed rows carry replay:<position>; bronze versions follow the run order
    # in order: land(4), windows 1, 2, 3 and 4, then a replay (once per session)
    in_order = without({n: replayed.tables[f"silver.{n}"] for n in ("products", "orders", "order_items")}, *lineage)

    new_warehouse(moto, monkeypatch, "shuffled")
    land(4)
    for k in (2, 1, 4, 3):
        assert run(k).is_completed()
    assert replay().is_completed()
    for name, expected in in_order.items():
        assert_frame_equal(read("silver", name, drop=lineage), expected)
    assert_frame_equal(read("gold", "daily_sales"), replayed.tables["gold.daily_sales"])


def test_a_quarantine_replay_promotes_a_row_whose_product_arrived_later_exactly_once(in_order: InOrder, monkeypatch) -> None:
    in_order.clone(1, monkeypatch, landed=2)  # land(2), window 1 completed
    early = new_product(START)[0]
    assert read("silver", "order_items").filter(pl.col("product_id") == early).is_empty()
    nothing_yet = replay()
    assert nothing_yet.is_completed()
    first = nothing_yet.result().replayed
    items = next(r for r in first if r.table == "silver.order_items")
    assert items.replayed == 0 and items.still_failing["unknown product_id"] == 1

    assert run(2).is_completed()  # window 2's catalogue lists the product window 1 sold
    gold_before = read("gold", "daily_sales").filter(pl.col("product_id") == early)
    assert gold_before.is_empty()
    state = replay()
    assert state.is_completed(), state.message
    summary = state.result()
    items = next(r for r in summary.replayed if r.table == "silver.order_items")
    assert items.replayed == 1 and items.bronze_version is not None
    promoted = read("silver", "order_items").filter(pl.col("product_id") == early)
    assert promoted.height == 1 and promoted.get_column("_source_position")[0].startswith("replay:")
    assert promoted.get_column("line_no").to_list() == [97]
    assert read("gold", "daily_sales").filter(pl.col("product_id") == early).get_column("quantity").to_list() == [1]

    before_versions, before = versions(), contents()
    again = replay()
    assert again.is_completed()
    assert all(r.replayed == 0 for r in again.result().replayed)
    assert versions() == before_versions  # the second replay commits nothing
    after = contents()
    for name in before:
        assert_frame_equal(after[name], before[name])


def test_incremental_gold_equals_a_rebuild_from_silver(in_order: InOrder, monkeypatch) -> None:
    # land(4), windows 1..4 completed in order (once per session), read only
    touched_days = set()
    for k in range(1, WINDOWS + 1):
        for g in in_order.summary(k).gold:
            touched_days.update(g.partitions)
    in_order.use(WINDOWS, monkeypatch)
    assert len(touched_days) >= 2, "the simulator should move an order to the previous day"
    incremental = read("gold", "daily_sales")
    rebuilt = gold.rebuild(Settings(), DAILY_SALES)
    assert_frame_equal(incremental, rebuilt)


def gate_failed_events(api: str, timeout: float = 20.0, event: str = "lakehouse.gate.failed") -> list[dict]:
    """The ``event`` events the Prefect API has received (they arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.post(f"{api}/events/filter", json={"filter": {"event": {"prefix": [event]}}, "limit": 50})
        resp.raise_for_status()
        events = resp.json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_a_blocking_gate_leaves_silver_and_gold_untouched_until_the_source_is_fixed(warehouse: str, prefect_api: str) -> None:
    land(2, bad_window=2)
    assert run(1).is_completed()
    settings = Settings()
    options = storage_options(settings)
    before = versions()

    state = run(2)
    assert state.is_failed()
    assert "missing(order_id)" in state.message
    after = versions()
    for name in ("silver.orders", "silver.order_items", "gold.daily_sales", "quarantine.orders"):
        assert after[name] == before[name], name
    assert after["bronze.orders_raw"] > before["bronze.orders_raw"]  # bronze keeps everything
    silver = open_table(settings.table_uri("silver", "orders"), options)
    consumed = silver.transaction_version(app_id("silver/orders", "bronze/orders_raw"))
    assert consumed < after["bronze.orders_raw"]

    events = gate_failed_events(prefect_api)
    assert any(e["payload"]["table"] == "silver.orders" and "missing(order_id)" in e["payload"]["failed_checks"]
               and e["payload"]["window_end"] == window_end(2).isoformat() for e in events), events
    failed_runs = gate_failed_events(prefect_api, event="lakehouse.run.failed")
    assert any(e["resource"]["prefect.resource.id"] == "lakehouse.pipeline.shop"
               and e["payload"]["window_end"] == window_end(2).isoformat()
               and "missing(order_id)" in e["payload"]["message"] for e in failed_runs), failed_runs

    scans = connect(settings, load()).sql(
        "SELECT \"table\", \"check\", value, window_end FROM quality.scan_results "
        "WHERE NOT passed AND stage = 'bronze_to_silver'"
    ).pl()
    assert scans.row(0, named=True)["check"] == "missing(order_id)"
    assert scans.row(0, named=True)["value"] > 50

    land(1, first=2)  # the source re-delivers window 2, fixed
    state = run(2)
    assert state.is_completed(), state.message
    orders = read("silver", "orders")
    assert orders.filter(pl.col("order_id").str.contains("-202601010015-")).height > 0
    rebuilt = gold.rebuild(settings, DAILY_SALES)
    assert_frame_equal(read("gold", "daily_sales"), rebuilt)


def test_a_local_path_works_as_the_warehouse(local_warehouse: str) -> None:
    land(1)
    state = run(1)
    assert state.is_completed(), state.message
    assert read("gold", "daily_sales").height > 0


async def _artifacts(run_id) -> list:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))


def test_a_warn_level_failure_promotes_and_shows_in_the_gate_artifact(warehouse: str) -> None:
    import asyncio
    import json
    from datetime import timedelta

    from flows.microbatch import micro_batch

    land(1)
    late = window_end(1) + timedelta(hours=3)  # the newest order change is ~3 h old by then
    state = micro_batch(at=late, interval="15m", return_state=True)
    assert state.is_completed(), state.message
    orders = next(t for t in state.result().tables if t.table == "silver.orders")
    assert orders.merged > 0 and read("silver", "orders").height == orders.merged

    artifacts = {a.key: a for a in asyncio.run(_artifacts(state.state_details.flow_run_id))}
    assert "gate-silver-orders-to-gold" in artifacts  # the strict gate of gold's input has its own key
    gate = artifacts["gate-silver-orders"]
    # sent from a background thread (tasks/artifacts.py), it still belongs to its gate's task run
    assert gate.task_run_id is not None and gate.task_run_id != artifacts["gate-silver-order-items"].task_run_id
    assert artifacts["batch-summary"].task_run_id is None  # the flow's own
    rows = json.loads(gate.data) if isinstance(gate.data, str) else gate.data
    fresh = next(r for r in rows if r["check"] == "freshness(updated_at)")
    assert (fresh["level"], fresh["outcome"], fresh["threshold"]) == ("warn", "FAIL", "<= 60 min")
    assert fresh["value"] > 150
    assert "warnings: freshness(updated_at)" in gate.description
    summary = artifacts["batch-summary"].data
    assert "unknown product_id: e.g. `unknown product_id: 'P-N" in summary  # a reason with an example
    assert " files landed; processed in " in summary and state.result().seconds > 0
    preview = artifacts["gold-daily-sales-preview"]
    rows = json.loads(preview.data) if isinstance(preview.data, str) else preview.data
    assert rows and {"order_date", "product_id", "revenue"} <= set(rows[0])
