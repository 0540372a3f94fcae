"""``history: scd2`` declared in YAML only, through the engine (``run_window``) on a local
warehouse: several windows with a duplicate delivery, an untracked-only change, a late
(out-of-order) tracked change, a re-run and a delete, then a gold model over the current
rows and a query of the versions valid at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.engine import run_window
from lakehouse.layers import gold
from lakehouse.storage import open_store, storage_options
from lakehouse.window import window_ending_at

DECLARATION = """
pipelines:
  crm:
    sources:
      drops: {prefix: crm, format: jsonl, interval: 10m}
    datasets:
      customers:
        source: drops
        columns:
          customer_id: {type: string, nullable: false}
          tier: string
          email: string
          updated_at: timestamp
        key: customer_id
        order_by: updated_at
        partition_by: tier
        history: scd2
        tracked: [tier]
    gold:
      tier_counts:
        partition_by: tier
        key: tier
        sql: |
          SELECT tier, CAST(count(*) AS BIGINT) AS customers
          FROM silver.customers WHERE is_current GROUP BY tier
"""

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
TEN = timedelta(minutes=10)


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def customer(cid: str, tier: str, email: str, minute: int) -> dict:
    return {"customer_id": cid, "tier": tier, "email": email, "updated_at": f"{at(minute):%Y-%m-%dT%H:%M:%SZ}"}


def delete(cid: str, minute: int) -> dict:
    return {"customer_id": cid, "updated_at": f"{at(minute):%Y-%m-%dT%H:%M:%SZ}", "__lakehouse_deleted": True}


FIRST = [customer("C1", "silver", "a@x", -5), customer("C1", "silver", "a@x", -5), customer("C2", "gold", "b@x", -4)]
# window k (1-based) → files: (landing minute, records)
FILES = {
    1: [(1, FIRST)],                                                     # with an exact duplicate line
    2: [(12, [customer("C1", "gold", "a@x", 11),                         # a tracked change: closes silver
              customer("C2", "gold", "b2@x", 12)]),                      # untracked only: in place
        (13, FIRST)],                                                    # window 1's records delivered again
    3: [(22, [customer("C1", "bronze", "old@x", 5),                      # late: inside C1's silver interval
              customer("C3", "silver", "c@x", 21)])],
    4: [(32, [delete("C2", 31), customer("C3", "gold", "c@x", 32)])],
}


def test_windows_with_duplicates_late_changes_a_rerun_and_a_delete_keep_the_history(local_warehouse: str) -> None:
    settings = Settings()
    pipeline = parse(DECLARATION).pipeline("crm")
    landing = open_store(settings.landing_root, settings)
    uri, options = settings.table_uri("silver", "customers"), storage_options(settings)
    touched = {}
    for k, files in FILES.items():
        for minute, records in files:
            key = f"crm/customers/{at(minute):%Y/%m/%d/%H/%M}/part-0.jsonl"
            landing.put(key, ("\n".join(json.dumps(r) for r in records) + "\n").encode())
        window = window_ending_at(START + k * TEN, TEN)
        run = run_window(settings, pipeline, window)
        touched[k] = {p for r in run.refreshed for p in r.touched}
        if k == 3:  # a re-run of the window commits nothing
            before = pl.read_delta(uri, storage_options=options)
            again = run_window(settings, pipeline, window)
            assert not again.merged and not again.refreshed
            assert_frame_equal(pl.read_delta(uri, storage_options=options), before)

    history = (
        pl.read_delta(uri, storage_options=options)
        .select("customer_id", "tier", "email", "valid_from", "valid_to", "is_current")
        .sort("customer_id", "valid_from")
    )
    assert history.rows() == [
        ("C1", "silver", "a@x", at(-5), at(5), False),   # split by the late record: ends where it starts
        ("C1", "bronze", "a@x", at(5), at(11), False),   # the late version, up to the next one (unchanged)
        ("C1", "gold", "a@x", at(11), None, True),       # email: the key's latest record's, on every version
        ("C2", "gold", "b2@x", at(-4), at(31), False),   # the untracked change in place; closed by the delete
        ("C3", "silver", "c@x", at(21), at(32), False),
        ("C3", "gold", "c@x", at(32), None, True),
    ]
    # the delete closed C2's current (gold) row: gold's change detection recomputed that partition
    assert {"gold", "silver"} <= touched[4]
    model = pipeline.models[0]
    counts = pl.read_delta(settings.table_uri("gold", "tier_counts"), storage_options=options).sort("tier")
    assert counts.rows() == [("gold", 2)]
    assert_frame_equal(counts, gold.rebuild(settings, model))

    # the version valid at a time, as a model or a query reads it
    con = duckdb.connect()
    con.register("customers", pl.read_delta(uri, storage_options=options).to_arrow())
    valid_at = con.execute(
        "SELECT customer_id, tier FROM customers WHERE valid_from <= $t AND (valid_to IS NULL OR $t < valid_to) ORDER BY 1",
        {"t": at(8)},
    ).fetchall()
    assert valid_at == [("C1", "bronze"), ("C2", "gold")]
