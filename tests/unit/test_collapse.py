"""Collapsing a batch to one row per key: duplicates, conflicts and delivery order."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from lakehouse.dev.shop import ORDERS
from lakehouse.layers.silver.transform import collapse, conflicts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(*versions: tuple[str, str, str, int, int]) -> pl.LazyFrame:
    """(order_id, customer_id, updated_at minute, bronze version, line) → typed silver rows."""
    return pl.DataFrame(
        {
            "order_id": [v[0] for v in versions],
            "customer_id": [v[1] for v in versions],
            "status": "paid",
            "ordered_at": T0,
            "updated_at": [T0.replace(minute=int(v[2])) for v in versions],
            "order_date": T0.date(),
            "_batch_id": "b",
            "_source_position": "orders/2026/01/01/00/01/part-0.jsonl",
            "_line": [v[4] for v in versions],
            "_landed_at": T0,
            "_bronze_version": [v[3] for v in versions],
        }
    ).lazy()


def test_identical_copies_are_duplicates_and_a_different_payload_is_a_conflict() -> None:
    batch = rows(
        ("O1", "C1", "05", 1, 1), ("O1", "C1", "05", 1, 2),  # an exact copy: a duplicate
        ("O1", "C2", "05", 1, 3),                            # same key and updated_at, other payload
        ("O1", "C0", "01", 1, 4),                            # an older version: collapsed
        ("O2", "C5", "02", 1, 5), ("O2", "C5", "02", 1, 6),
    )
    assert conflicts(batch, ORDERS).select(pl.len()).collect().item() == 1
    kept = collapse(batch, ORDERS).collect().sort("order_id")
    assert kept.get_column("customer_id").to_list() == ["C2", "C5"]  # the later line wins the tie


def test_a_later_delivery_of_the_same_file_wins_a_tie_whatever_its_line() -> None:
    batch = rows(("O1", "C-OLD", "05", 3, 7), ("O1", "C-NEW", "05", 9, 2))
    assert collapse(batch, ORDERS).collect().get_column("customer_id").to_list() == ["C-NEW"]
    assert conflicts(batch, ORDERS).select(pl.len()).collect().item() == 1
