"""The shop's shipments (lakehouse/dev/shop_shipments.py): deterministic per window, dated inside it, following the orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakehouse.dev.shop_shipments import CARRIERS, distinct, shipments
from lakehouse.dev.simulator import simulate
from lakehouse.storage import LocalStore

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_window_is_the_same_whichever_windows_are_asked_for_and_dated_before_its_middle() -> None:
    third = START + 2 * QUARTER
    assert shipments(third, orders_per_window=8) == shipments(third, orders_per_window=8)
    assert shipments(third, seed=8, orders_per_window=8) != shipments(third, orders_per_window=8)
    for k in range(4):
        begins = START + k * QUARTER
        records = shipments(begins, orders_per_window=8)
        assert records[0] == records[1] and len(distinct(records)) == len(records) - 1  # one duplicate a window
        assert all(begins <= at(r["updated_at"]) < begins + QUARTER / 2 for r in records)  # serve publishes near the end
        assert all(at(r["shipped_at"]) <= at(r["updated_at"]) and r["carrier"] in CARRIERS for r in records)


def test_shipments_follow_the_orders_shipped_then_delivered_in_the_next_window(tmp_path: Path) -> None:
    first, second = shipments(START, orders_per_window=8), shipments(START + QUARTER, orders_per_window=8)
    shipped = {r["shipment_id"]: r for r in first if r["status"] == "in_transit"}
    delivered = {r["shipment_id"]: r for r in second if r["status"] == "delivered"}
    assert shipped and shipped.keys() == delivered.keys()  # every parcel shipped in window 1 is delivered in window 2
    for key, later in delivered.items():
        assert later["shipped_at"] == shipped[key]["shipped_at"] and later["updated_at"] > shipped[key]["updated_at"]
    assert any(r["shipment_id"].endswith("-2") for r in first)  # an order in two parcels
    # each order shipped in window 1 is one whose shipped version the simulator lands in that window
    store = LocalStore(tmp_path)
    (window,) = simulate(store, start=START, windows=1, orders_per_window=8)
    landed = "".join(store.get(k).decode() for k in window.keys if k.startswith("orders/"))
    for r in shipped.values():
        assert f'"order_id": "{r["order_id"]}"' in landed and f'"updated_at": "{r["updated_at"]}"' in landed
