"""``unknown_fields: evolve``: the silver table gains a batch's new members as columns, in
the merge's own commit, typed by a documented rule (lakehouse/layers/silver/evolve.py); what cannot be
typed without coercion is quarantined with the reason. Real Delta tables on a local
warehouse, the engine without Prefect."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import polars as pl
from deltalake import DeltaTable

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.engine import run_window
from lakehouse.layers import gold
from lakehouse.layers.silver.evolve import infer
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at

DECLARATION = """
pipelines:
  ledger:
    sources:
      drops: {prefix: ledger, format: jsonl, interval: 10m}
    datasets:
      invoices:
        source: drops
        unknown_fields: evolve
        columns:
          invoice_id: {type: string, nullable: false}
          account: string
          issued_at: timestamp
          updated_at: timestamp
          issue_day: {type: date, derive: date(issued_at)}
        key: invoice_id
        order_by: updated_at
        partition_by: issue_day
        checks:
          - missing: invoice_id
            max_percent: 100
    gold:
      invoices_by_day:
        partition_by: issue_day
        key: [issue_day, account]
        sql: |
          SELECT issue_day, account, CAST(count(*) AS BIGINT) AS invoices
          FROM silver.invoices GROUP BY ALL
"""

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
PIPELINE = parse(DECLARATION, path="evolve.yaml").pipeline("ledger")


def inv(iid: str, minute: int, **extra: object) -> dict:
    at = (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"invoice_id": iid, "account": "A", "issued_at": at, "updated_at": at, **extra}


def window(settings: Settings, k: int, records: list[dict]) -> None:
    landed = START + timedelta(minutes=10 * (k - 1) + 1)
    store = open_store(settings.landing_root, settings)
    store.put(f"ledger/invoices/{landed:%Y/%m/%d/%H/%M}/part-0.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())
    run_window(settings, PIPELINE, window_ending_at(START + timedelta(minutes=10 * k), timedelta(minutes=10)))


def test_new_members_become_columns_in_the_merge_commit_and_untypable_ones_are_quarantined(local_warehouse: str) -> None:
    settings = Settings()
    window(settings, 1, [inv("I1", 1), inv("I2", 2)])
    uri = settings.table_uri("silver", "invoices")
    before = DeltaTable(uri).version()
    gold_before = pl.read_delta(settings.table_uri("gold", "invoices_by_day"))

    window(settings, 2, [
        inv("I3", 11, coupon=5, note="first", rate=1, flag=True, empty=None),
        inv("I4", 12, coupon=7, rate=1.5, flag=False),
        inv("I5", 13, meta={"a": 1}),                   # an object: never a column
        inv("I6", 13, mixed="a"), inv("I7", 14, mixed=2),  # mixed JSON types: no type is picked
        inv("I8", 14, ACCOUNT="B"),                     # a variant of account (a rename?)
        inv("I9", 15, **{"unit price": 3}),             # not a valid column name
    ])
    table = DeltaTable(uri)
    assert table.version() == before + 1, "the schema evolution is the merge's one commit"
    assert table.history(1)[0]["operation"] == "MERGE"
    types = {f.name: str(f.type.type) for f in table.schema().fields}
    assert {k: types.get(k) for k in ("coupon", "note", "rate", "flag")} == {
        "coupon": "long", "note": "string", "rate": "double", "flag": "boolean"}
    assert not {"meta", "mixed", "ACCOUNT", "unit price", "empty"} & set(types)
    assert "coupon" not in [f.name for f in DeltaTable(uri, version=before).schema().fields]

    rows = pl.read_delta(uri).sort("invoice_id").select("invoice_id", "coupon", "note", "rate", "flag")
    assert rows.to_dicts() == [
        {"invoice_id": "I1", "coupon": None, "note": None, "rate": None, "flag": None},  # earlier rows: NULL
        {"invoice_id": "I2", "coupon": None, "note": None, "rate": None, "flag": None},
        {"invoice_id": "I3", "coupon": 5, "note": "first", "rate": 1.0, "flag": True},
        {"invoice_id": "I4", "coupon": 7, "note": None, "rate": 1.5, "flag": False},
    ]
    quarantine = pl.read_delta(settings.table_uri("quarantine", "invoices")).sort("_reject_reason")
    reasons = dict(zip(quarantine.get_column("_raw").str.json_path_match("$.invoice_id"), quarantine.get_column("_reject_reason"), strict=True))
    assert set(reasons) == {"I5", "I6", "I7", "I8", "I9"}
    assert reasons["I5"].startswith("unknown field meta: unknown_fields: evolve cannot add it: it holds a JSON object")
    assert "mixed JSON types in this batch (a JSON number, a JSON string)" in reasons["I6"] == reasons["I7"]
    assert "variant of column account" in reasons["I8"]
    assert "unknown field unit price" in reasons["I9"] and "not a valid column name" in reasons["I9"]

    # once added, a column is typed like a declared one: strictly, by the table's type
    window(settings, 3, [inv("I10", 21, coupon="9"), inv("I11", 22, coupon=3), inv("I1", 23, coupon=1)])
    rows = pl.read_delta(uri).sort("invoice_id").select("invoice_id", "coupon")
    assert dict(rows.iter_rows()) == {"I1": 1, "I11": 3, "I2": None, "I3": 5, "I4": 7}
    latest = pl.read_delta(settings.table_uri("quarantine", "invoices")).filter(pl.col("_raw").str.contains('"I10"'))
    assert latest.get_column("_reject_reason").item().startswith("wrong type: coupon '9' is a JSON string, not int64")

    # gold reads the declared columns: unaffected, and equal to a rebuild
    incremental = pl.read_delta(settings.table_uri("gold", "invoices_by_day")).sort("issue_day", "account")
    assert incremental.columns == gold_before.columns
    model = PIPELINE.models[0]
    assert incremental.equals(gold.rebuild(settings, model).sort("issue_day", "account"))
    assert incremental.get_column("invoices").sum() == 5  # I1 I2 I3 I4 I11 (I5–I10 quarantined)


def test_csv_members_evolve_as_strings_and_large_integers_do_not_become_floats() -> None:
    spec = PIPELINE.dataset("invoices").spec
    csv = dataclasses.replace(spec, record_values="text")  # CSV cells are text: no JSON type to infer from
    raw = pl.Series("_raw", [json.dumps({"invoice_id": "I1", "code": "42"}), json.dumps({"invoice_id": "I2", "code": None})])
    assert dict(infer(raw, csv).added) == {"code": "string"}
    assert dict(infer(pl.Series("_raw", ['{"invoice_id": "I1", "code": 42}']), spec).added) == {"code": "int64"}
    big = pl.Series("_raw", ['{"invoice_id": "I1", "n": 9007199254740993}', '{"invoice_id": "I2", "n": 0.5}'])
    evolution = infer(big, spec)
    assert not evolution.added and "2^53" in evolution.refused["n"]
