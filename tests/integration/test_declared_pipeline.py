"""A pipeline the code has never seen, declared in YAML only, end to end on moto + Prefect."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.layers import gold
from lakehouse.storage import open_store
from tests.integration.helpers import read

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.in_order_shard]  # the shards' balance (tests/shards.py)

DECLARATION = """
pipelines:
  ledger:
    sources:
      drops:
        prefix: ledger
        format: jsonl
        interval: 10m
    datasets:
      invoices:
        source: drops
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
          - missing: issued_at
      invoice_lines:
        source: drops
        prefix: lines
        columns:
          invoice_id: string
          line: int64
          sku: string
          qty: int64
          price: decimal(10,2)
          updated_at: timestamp
        key: [invoice_id, line]
        order_by: updated_at
        checks:
          - range: qty
            min: 0
          - duplicate: [invoice_id, line]
    gold:
      revenue_by_day:
        partition_by: issue_day
        key: [issue_day, account]
        sql: |
          SELECT i.issue_day, i.account,
                 CAST(sum(l.qty * l.price) AS DECIMAL(18,2)) AS revenue,
                 CAST(count(*) AS BIGINT) AS lines
          FROM silver.invoice_lines l JOIN silver.invoices i ON i.invoice_id = l.invoice_id
          GROUP BY ALL
        checks:
          - duplicate: [issue_day, account]
"""

START = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)


def ts(minutes: float, day: int = 0) -> str:
    return (START + timedelta(days=day, minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def inv(iid: str, account: str, issued: str, updated: str) -> dict:
    return {"invoice_id": iid, "account": account, "issued_at": issued, "updated_at": updated}


def line(iid: str, n: int, sku: str, qty: int, price: str, updated: str) -> dict:
    return {"invoice_id": iid, "line": n, "sku": sku, "qty": qty, "price": price, "updated_at": updated}


# window k (1-based, 10 minutes each) → files: (dataset folder, minute offset, part, records)
FILES = {
    1: [
        ("invoices", 1, 0, [inv("I1", "A", ts(-8), ts(-8)), inv("I2", "A", ts(-7), ts(-7)),
                            inv("I3", "B", ts(-6), ts(-6)), inv("I4", "B", ts(-5), ts(-5))]),
        ("lines", 1, 0, [line("I1", 1, "S1", 2, "10.10", ts(-8)), line("I1", 1, "S1", 2, "10.10", ts(-8)),  # exact duplicate
                         line("I1", 2, "S2", 1, "0.05", ts(-8)), line("I2", 1, "S1", 3, "10.10", ts(-7)),
                         line("I3", 1, "S3", 1, "99.99", ts(-6)), line("I3", 2, "S2", 5, "0.05", ts(-6)),
                         line("I4", 1, "S4", 7, "1.11", ts(-5))]),
    ],
    2: [
        ("invoices", 12, 0, [inv("I1", "C", ts(-8), ts(12)),                    # an update
                             inv("I2", "A", ts(-7, day=-1), ts(13))]),          # a partition move
        ("invoices", 15, 9, [inv("I1", "C", ts(-8), ts(12)),                    # the same file again
                             inv("I2", "A", ts(-7, day=-1), ts(13))]),
        ("lines", 14, 0, [line("I3", 2, "S2", 8, "0.05", ts(14))]),
    ],
    3: [
        ("invoices", 22, 0, [inv("I1", "A", ts(-8), ts(-8)),                    # out of order: older
                             inv("I5", "B", ts(21), ts(21))]),
        ("lines", 23, 0, [line("I4", 2, "S5", 1, "1000.01", ts(22)),           # a late line
                          line("I5", 1, "S1", 1, "10.10", ts(21))]),
    ],
    4: [
        ("invoices", 31, 0, [inv("I3", "B", ts(-6, day=1), ts(31))]),            # moves to the next day
        ("lines", 32, 0, [line("I5", 1, "S1", 4, "10.15", ts(32)), line("I1", 1, "S1", 1, "10.10", ts(-9))]),  # newer; older loses
    ],
}


def key_of(folder: str, minute: int, part: int) -> str:
    landed = START + timedelta(minutes=minute)
    return f"ledger/{folder}/{landed:%Y/%m/%d/%H/%M}/part-{part}.jsonl"


def direct_gold(raw: Path) -> pl.DataFrame:
    """The model computed straight from the raw files: DuckDB reads the JSONL, keeps the
    latest version per key (updated_at, then the later file) and aggregates."""
    con = duckdb.connect()
    return con.sql(
        f"""
        WITH inv_raw AS (SELECT * FROM read_json('{raw}/ledger/invoices/**/*.jsonl', filename = true,
                           columns = {{invoice_id: 'VARCHAR', account: 'VARCHAR', issued_at: 'VARCHAR', updated_at: 'VARCHAR'}})),
             lin_raw AS (SELECT * FROM read_json('{raw}/ledger/lines/**/*.jsonl', filename = true,
                           columns = {{invoice_id: 'VARCHAR', line: 'BIGINT', sku: 'VARCHAR', qty: 'BIGINT', price: 'DECIMAL(10,2)', updated_at: 'VARCHAR'}})),
        inv AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY invoice_id
                   ORDER BY CAST(updated_at AS TIMESTAMPTZ) DESC, filename DESC) AS rn FROM inv_raw) WHERE rn = 1),
        lin AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY invoice_id, line
                   ORDER BY CAST(updated_at AS TIMESTAMPTZ) DESC, filename DESC) AS rn FROM lin_raw) WHERE rn = 1)
        SELECT CAST(CAST(inv.issued_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS DATE) AS issue_day, inv.account,
               CAST(sum(lin.qty * lin.price) AS DECIMAL(18,2)) AS revenue,
               CAST(count(*) AS BIGINT) AS lines
        FROM lin JOIN inv USING (invoice_id) GROUP BY ALL ORDER BY ALL
        """
    ).pl()


def test_a_yaml_only_pipeline_lands_gold_equal_to_a_direct_computation(warehouse: str, tmp_path, monkeypatch) -> None:
    config = tmp_path / "ledger.yaml"
    config.write_text(DECLARATION)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(config))
    from flows.microbatch import micro_batch

    settings = Settings()
    landing = open_store(settings.landing_root, settings)
    partitions_seen = []
    for k, files in FILES.items():
        for folder, minute, part, records in files:
            landing.put(key_of(folder, minute, part), ("\n".join(json.dumps(r) for r in records) + "\n").encode())
        state = micro_batch(at=START + timedelta(minutes=10 * k), pipeline="ledger", return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        assert summary.window.endswith(f"{(START + timedelta(minutes=10 * k)):%H:%M}")
        partitions_seen.append(summary.gold[0].partitions if summary.gold else [])

    # the partition move of window 2 recomputed both days, window 4's both too
    assert {"2026-01-31", "2026-02-01"} <= set(partitions_seen[1])
    assert {"2026-02-01", "2026-02-02"} <= set(partitions_seen[3])

    incremental = read("gold", "revenue_by_day")
    raw = tmp_path / "raw"
    for obj in landing.list("ledger/"):  # the raw files, as they landed in S3
        (raw / obj.key).parent.mkdir(parents=True, exist_ok=True)
        (raw / obj.key).write_bytes(landing.get(obj.key))
    expected = direct_gold(raw)
    assert expected.height >= 4
    assert_frame_equal(incremental.sort(["issue_day", "account"]), expected.sort(["issue_day", "account"]), check_dtypes=True)
    model = load().pipeline("ledger").models[0]
    assert_frame_equal(incremental, gold.rebuild(settings, model))
    # I1's older version arriving late lost; the duplicate line collapsed
    invoices = read("silver", "invoices")
    assert invoices.filter(pl.col("invoice_id") == "I1").get_column("account").to_list() == ["C"]
