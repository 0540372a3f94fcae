"""Silver takes whole bronze commits up to ``max_batch_rows``, and always makes progress."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from lakehouse.config import Settings
from lakehouse.layers import bronze, silver
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at
from tests.shop_files import SHOP

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
ORDERS = SHOP.dataset("orders")


def land(store: LocalStore, minute: int, lines: int) -> None:
    at = START + timedelta(minutes=minute)
    body = "".join(f'{{"order_id": "O{minute}-{i}"}}\n' for i in range(lines))
    store.put(f"orders/{at:%Y/%m/%d/%H/%M}/part-1.jsonl", body.encode())


def test_a_first_bronze_commit_larger_than_the_row_budget_is_promoted_whole(tmp_path, monkeypatch) -> None:
    # found with the benchmark: 1,001,000 lines in a window's one bronze commit, a budget of
    # 1,000,000, and silver took only the table's creation, so order_lines never reached silver
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, store = Settings(), LocalStore(tmp_path / "landing")
    land(store, 1, lines=12)
    dataset = replace(ORDERS, max_batch_rows=5)
    assert bronze.ingest(settings, dataset, window_ending_at(START + QUARTER, QUARTER), landing=store).rows == 12
    batch = silver.prepare(settings, dataset, {})
    assert batch is not None and batch.counts.read == 12 and not batch.more


def test_a_backlog_of_commits_is_promoted_a_budget_at_a_time(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, store = Settings(), LocalStore(tmp_path / "landing")
    dataset = replace(ORDERS, max_batch_rows=4)
    for w in range(3):
        land(store, 15 * w + 1, lines=3)
        bronze.ingest(settings, dataset, window_ending_at(START + (w + 1) * QUARTER, QUARTER), landing=store)
    first = silver.prepare(settings, dataset, {})
    assert first is not None and first.counts.read == 3 and first.more
    silver.commit(settings, first)
    second = silver.prepare(settings, dataset, {})
    assert second is not None and second.counts.read == 3 and second.more
