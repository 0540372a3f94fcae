"""Exactly-once holes of issue 11, each reproduced as it was found, on a local warehouse.

The engine runs windows without Prefect (its retries are not what is watched here); a
crash is a real SIGKILL of a writer process at a deterministic crash point
(``LAKEHOUSE_CRASH_AT``, lakehouse/dev/faults.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from lakehouse import replay
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.engine import run_window
from lakehouse.layers import bronze, silver
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at
from tests.integration.helpers import INTERVAL, land, read, window_end


@pytest.fixture(autouse=True)
def _local(local_warehouse: str) -> None:
    """Every test here runs on a local folder (the races are in the code, not the store)."""


def run_engine(k: int) -> None:
    run_window(Settings(), load().pipeline(), window_ending_at(window_end(k), INTERVAL))


def no_doubled_lines(frame: pl.DataFrame) -> bool:
    return frame.height == frame.unique(["_source_position", "_line", "_raw"]).height


def test_a_crash_between_quarantine_and_merge_then_the_next_window_quarantines_once() -> None:
    land(3, orders=10)
    run_engine(1)
    # window 2 dies after quarantine.orders committed and before silver.orders did (the
    # third promotion of the run: products and product_history come first)
    env = {**os.environ, "LAKEHOUSE_CRASH_AT": "silver.quarantined", "LAKEHOUSE_CRASH_AT_HIT": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.writer", window_end(2).isoformat()],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    crashed = read("quarantine", "orders")
    window_2 = pl.col("_source_position").str.contains("/00/(1[5-9]|2[0-9])/")
    assert crashed.filter(window_2).height > 0  # its rejects were committed before the kill
    run_engine(3)  # the next window, not a re-run of window 2: it consumes window 2's bronze too
    got = read("quarantine", "orders")
    assert no_doubled_lines(got)  # was: window 2's rejects twice (12 rows instead of 9)
    assert got.filter(window_2).height == crashed.filter(window_2).height
    assert got.height > crashed.height  # window 3's own rejects
    assert no_doubled_lines(read("quarantine", "order_items"))
    assert read("silver", "orders").filter(window_2).height > 0  # window 2 reached silver


def _rewrite(store, key: str, line: int, **changes: object) -> None:  # type: ignore[no-untyped-def]
    lines = store.get(key).decode().splitlines()
    record = json.loads(lines[line - 1])
    record.update(changes)
    lines[line - 1] = json.dumps(record)
    store.put(key, ("\n".join(lines) + "\n").encode())


def test_a_corrected_file_redelivered_under_its_key_with_the_same_updated_at_reaches_silver() -> None:
    land(2, orders=10)
    run_engine(1)
    orders = read("silver", "orders")
    row = orders.filter(pl.col("_source_position").str.starts_with("orders/")).row(0, named=True)
    settings = Settings()
    store = open_store(settings.landing_root, settings)
    # the source corrects one field and re-delivers the file under the same key;
    # updated_at is unchanged (a fix of the export, not a new version of the order)
    _rewrite(store, row["_source_position"], row["_line"], customer_id="C-CORRECTED")
    run_engine(2)
    after = read("silver", "orders").filter(pl.col("order_id") == row["order_id"])
    assert after.get_column("customer_id").to_list() == ["C-CORRECTED"]
    assert after.get_column("updated_at").to_list() == [row["updated_at"]]


def _promote_products(settings: Settings, k: int) -> None:
    """Land and promote the catalogue alone (order lines stay unconsumed in bronze)."""
    pipeline = load().pipeline()
    products = pipeline.dataset("products")
    window = window_ending_at(window_end(k), INTERVAL)
    bronze.ingest(settings, products, window, landing=open_store(settings.landing_root, settings))
    batch = silver.prepare(settings, products, now=window.end)
    assert batch is not None
    silver.commit(settings, batch)


def test_two_replays_of_one_file_before_silver_consumes_them_promote_both() -> None:
    settings = Settings()
    store = open_store(settings.landing_root, settings)
    land(1, orders=10)
    # one file of order lines selling two products the catalogue does not list yet
    key = "order_items/2026/01/01/00/11/part-7.jsonl"
    lines = [
        {"order_id": "O-202601010000-0000", "line_no": 91, "product_id": "P-X", "category": "new",
         "quantity": 1, "unit_price": "5.00", "updated_at": "2026-01-01T00:11:00Z"},
        {"order_id": "O-202601010000-0000", "line_no": 92, "product_id": "P-Y", "category": "new",
         "quantity": 2, "unit_price": "5.00", "updated_at": "2026-01-01T00:11:00Z"},
    ]
    store.put(key, "".join(json.dumps(r) + "\n" for r in lines).encode())
    run_engine(1)
    assert read("quarantine", "order_items").filter(pl.col("_source_position") == key).height == 2

    items = load().pipeline().dataset("order_items")
    for k, product in ((2, "P-X"), (3, "P-Y")):  # each product arrives, and is replayed, on its own
        store.put(f"products/2026/01/01/00/{15 * k - 14:02d}/part-8.jsonl", (json.dumps({
            "product_id": product, "name": product, "category": "new", "unit_price": "5.00",
            "updated_at": f"2026-01-01T00:{15 * k - 14:02d}:00Z",
        }) + "\n").encode())
        _promote_products(settings, k)
        assert replay.replay(settings, items).replayed == 1
    run_engine(3)  # silver consumes both replays' bronze appends in one increment
    promoted = read("silver", "order_items").filter(pl.col("order_id") == "O-202601010000-0000")
    assert {91, 92} <= set(promoted.get_column("line_no").to_list())
    assert replay.candidates(settings, items).filter(pl.col("_source_position") == key).is_empty()


def test_a_same_key_same_updated_at_pair_with_other_values_is_a_conflict_not_a_duplicate() -> None:
    land(1, orders=10)
    run = run_window(Settings(), load().pipeline(), window_ending_at(window_end(1), INTERVAL))
    result = next(r for r in run.merged if r.table == "silver.orders")
    orders = result.counts
    assert result.inserted + result.updated + result.unchanged == orders.merged  # the merge's own metrics
    # the simulator's fault 9: part-2 repeats part-1's first version with another customer
    assert orders.conflicts == 1
    assert orders.read == orders.merged + orders.rejected + orders.duplicates + orders.conflicts
    tie = read("silver", "orders").filter(pl.col("customer_id") == "C-9999")
    assert tie.height == 1 and tie.get_column("_source_position")[0].endswith("part-2.jsonl")  # the later landing won


def test_a_gate_scanned_again_for_the_same_batch_records_its_checks_once() -> None:
    from lakehouse.quality import scan_log as quality

    settings = Settings()
    land(2, orders=10)
    orders = load().pipeline().dataset("orders")
    window = window_ending_at(window_end(1), INTERVAL)
    landing = open_store(settings.landing_root, settings)
    for ds in load().pipeline().datasets:
        bronze.ingest(settings, ds, window, landing=landing)
    # what a retried gate task does (its first attempt recorded, then failed), and what a
    # second run preparing the same increment at the same time does: scan the batch again
    for _ in range(2):
        batch = silver.prepare(settings, orders, now=window.end)
        assert batch is not None
        quality.record(settings, batch.gate, window=window, run_id="r", consumed=batch.consumed)
    scans = pl.read_delta(quality.scan_results_uri(settings))
    assert scans.height == len(batch.gate.checks)
    silver.commit(settings, batch)
    later = window_ending_at(window_end(2), INTERVAL)
    bronze.ingest(settings, orders, later, landing=landing)
    nxt = silver.prepare(settings, orders, now=later.end)
    assert nxt is not None
    quality.record(settings, nxt.gate, window=later, run_id="r", consumed=nxt.consumed)
    assert pl.read_delta(quality.scan_results_uri(settings)).height == len(batch.gate.checks) + len(nxt.gate.checks)


def test_a_gold_batch_records_all_its_gates_in_one_commit_and_a_retried_gate_adds_nothing() -> None:
    from deltalake import DeltaTable

    from lakehouse.layers import gold
    from lakehouse.quality import scan_log as quality

    settings = Settings()
    land(1, orders=10)
    pipeline = load().pipeline()
    window = window_ending_at(window_end(1), INTERVAL)
    landing = open_store(settings.landing_root, settings)
    prepared: dict[str, silver.SilverBatch] = {}
    for ds in pipeline.datasets:  # as a window's silver round does, referenced datasets first
        bronze.ingest(settings, ds, window, landing=landing)
        batch = silver.prepare(settings, ds, {n: prepared[n] for n in ds.upstream if n in prepared}, now=window.end)
        assert batch is not None
        quality.record(settings, batch.gate, window=window, run_id="r", consumed=batch.consumed)
        prepared[ds.spec.name] = batch
    for batch in prepared.values():
        silver.commit(settings, batch)
    log = DeltaTable(quality.scan_results_uri(settings))
    assert log.version() == len(prepared)  # one commit per silver gate (version 0 creates the table)

    model = pipeline.models[0]
    found = gold.prepare(settings, pipeline, model)
    assert found is not None and len(found.gates) > 1  # each changed input's gate and the model's own
    assert quality.record(settings, found.gates, window=window, run_id="r", consumed=found.consumed)
    # a retried gold gate task (its first attempt recorded, then failed) scans the same batch again
    again = gold.prepare(settings, pipeline, model)
    assert again is not None and again.consumed == found.consumed
    assert not quality.record(settings, again.gates, window=window, run_id="r2", consumed=again.consumed)

    log.update_incremental()
    assert log.version() == len(prepared) + 1  # the gold batch's gates: one commit, once
    scans = pl.read_delta(quality.scan_results_uri(settings))
    gold_rows = scans.join(
        pl.DataFrame({"table": [g.table for g in found.gates], "stage": [g.stage for g in found.gates]}),
        on=["table", "stage"],
    )
    assert gold_rows.height == sum(len(g.checks) for g in found.gates)
    assert set(gold_rows.get_column("run_id")) == {"r"}
