"""The shop's shipments, served by its HTTP API: the data of the ``http_api`` source of the shop.

Shipments follow the simulator's orders (:mod:`lakehouse.dev.simulator`): an order whose
``shipped`` version lands in a window ships in that window, in one parcel or, for about a
quarter of the orders, two; when its ``delivered`` version lands (a window later) each of
its parcels gets a later version. One record per shipment::

    shipment_id   SH-<order id without its O->-<parcel>   the key
    order_id      the simulator's order (so a reference check finds it in silver.orders)
    carrier       one of CARRIERS
    status        in_transit, then delivered (the update of an earlier shipment)
    shipped_at    when the order was shipped (its ``shipped`` version's updated_at)
    updated_at    when this version was written: its order's version's updated_at

:func:`shipments` of a window depends only on the seed, the window's start, the interval
and the orders per window, never on which other windows are asked for (it simulates the
window and the one before it on their own, as the simulator's windows are independent).
Its first record is there twice (a client that retried a publish whose answer it lost):
the key collapses it in silver. Every record's ``updated_at`` is inside its window, so an
API read with ``updated_since`` of the watermark after the previous window finds it.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.dev.simulator import simulate
from lakehouse.storage import LocalStore

CARRIERS = ("dhl", "ups", "fedex", "postnl")
STATUSES = ("in_transit", "delivered", "returned")
"""The statuses a shipment may have (the simulator writes the first two)."""
TWO_PARCELS = 0.25
"""The share of orders shipped in two parcels."""


def _versions(start: datetime, interval: timedelta, seed: int, orders_per_window: int) -> dict[str, dict[str, str]]:
    """The window's order versions by status: ``{"shipped": {order_id: updated_at}, "delivered": {...}}``."""
    out: dict[str, dict[str, str]] = {"shipped": {}, "delivered": {}}
    with tempfile.TemporaryDirectory(prefix="shop-shipments-") as folder:
        store = LocalStore(Path(folder))
        (window,) = simulate(store, start=start, windows=1, interval=interval, seed=seed,
                             orders_per_window=orders_per_window)
        for key in sorted(k for k in window.keys if k.startswith("orders/")):
            for line in store.get(key).decode().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # the simulator's truncated line
                status, order = record.get("status"), record.get("order_id")
                if status in out and order is not None:
                    out[status].setdefault(order, record["updated_at"])  # the first: a tie repeats it later
    return out


def _parcels(seed: int, order_id: str) -> tuple[str, list[str]]:
    """The carrier of an order's shipments and their ids (a pure function of the seed and the order)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{order_id}:shipment".encode()).digest()[:8], "big"))
    carrier = rng.choice(CARRIERS)
    count = 2 if rng.random() < TWO_PARCELS else 1
    return carrier, [f"SH-{order_id.removeprefix('O-')}-{n}" for n in range(1, count + 1)]


def shipments(start: datetime, *, interval: timedelta = timedelta(minutes=15), seed: int = 7,
              orders_per_window: int = 40) -> list[dict[str, Any]]:
    """The shipment records of the window that starts at ``start``, in the order the API publishes them.

    Example::

        shipments(datetime(2026, 1, 1, tzinfo=UTC), orders_per_window=8)  # the first one twice
    """
    start = start.astimezone(UTC)
    now = _versions(start, interval, seed, orders_per_window)
    before = _versions(start - interval, interval, seed, orders_per_window)["shipped"]
    out: list[dict[str, Any]] = []
    for order_id, at in sorted(now["shipped"].items()):
        carrier, ids = _parcels(seed, order_id)
        out += [{"shipment_id": s, "order_id": order_id, "carrier": carrier, "status": "in_transit",
                 "shipped_at": at, "updated_at": at} for s in ids]
    for order_id, at in sorted(now["delivered"].items()):
        carrier, ids = _parcels(seed, order_id)
        shipped = before.get(order_id, at)  # shipped a window ago (always, by the simulator's lifecycle)
        out += [{"shipment_id": s, "order_id": order_id, "carrier": carrier, "status": "delivered",
                 "shipped_at": shipped, "updated_at": at} for s in ids]
    return out[:1] + out if out else out


def distinct(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` with each exact duplicate once, in their order."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        seen.setdefault(json.dumps(r, sort_keys=True), r)
    return list(seen.values())
