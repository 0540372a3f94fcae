"""The shop simulator: seeded, deterministic orders and order items as landing JSONL files.

Window k covers ``[start + (k-1)·interval, start + k·interval)``. Its content depends only
on the seed, its own start and the interval, so simulating windows 1..3 and then 4..6
writes exactly the bytes of one call for 1..6. Every order has a deterministic lifecycle
(placed → paid → shipped → delivered, or cancelled), and later windows emit its updates.

Faults, each present in every run of a few windows:

1. updates: orders of the previous windows get later versions (status progression);
2. out-of-order updates: an order's original (older) version arrives again later and must
   lose to the newer one already delivered;
3. exact duplicate lines in one file;
4. a file delivered twice: the new-orders file again, same bytes, under another key;
5. malformed lines: truncated JSON and text that is not JSON;
6. rows that break row checks: status ``lost``, quantity ``-1``, a null ``product_id``;
7. an update that corrects ``ordered_at`` to the previous day (a partition move);
8. late lines: a new line of an earlier window's order;
9. ties: two versions of one order with the same ``updated_at`` in different files (the
   later landing wins).

With ``bad_window=k`` most order lines of window k lack ``order_id``, so the batch-level
missing-key check fails.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lakehouse.storage import ObjectStore

CATEGORIES = ("books", "toys", "garden", "kitchen", "games")
PRODUCTS = tuple(
    (f"P-{i:03d}", CATEGORIES[i % len(CATEGORIES)], Decimal(i * 731 % 9000 + 199) / 100)
    for i in range(50)
)
LOOKBACK = 4
"""How many earlier windows an order keeps getting updates from."""


@dataclass(frozen=True)
class SimulatedWindow:
    """What :func:`simulate` wrote for one window."""

    start: datetime
    end: datetime
    keys: tuple[str, ...]
    orders: int
    order_items: int


def _rng(seed: int, *parts: object) -> random.Random:
    text = ":".join([str(seed), *(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)])
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(prefix: str, landed: datetime, part: int) -> str:
    return f"{prefix}/{landed:%Y/%m/%d/%H/%M}/part-{part}.jsonl"


@dataclass(frozen=True)
class _Order:
    order_id: str
    customer_id: str
    ordered_at: datetime
    lines: tuple[tuple[int, str, str, int, Decimal], ...]
    events: tuple[tuple[int, str], ...]
    """(windows after creation, status) of each later version."""
    corrected: bool
    """Whether the first event moves ordered_at to the previous day."""


def _orders_of(seed: int, start: datetime, interval: timedelta, n: int) -> list[_Order]:
    """The orders created in the window starting at ``start`` (a pure function)."""
    rng = _rng(seed, start, interval, "orders")
    out = []
    for i in range(n):
        order_id = f"O-{start:%Y%m%d%H%M}-{i:04d}"
        ordered_at = start + timedelta(seconds=rng.randrange(0, 60))
        lines = []
        for line_no in range(1, rng.randint(1, 4) + 1):
            product, category, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
            lines.append((line_no, product, category, rng.randint(1, 5), price))
        roll = rng.random()
        if roll < 0.08:
            events: tuple[tuple[int, str], ...] = ((1, "cancelled"),)
        elif roll < 0.7:
            events = ((1, "paid"), (2, "shipped"), (3, "delivered"))
        else:
            events = ((2, "paid"),)
        out.append(
            _Order(order_id, f"C-{rng.randrange(10000):04d}", ordered_at, tuple(lines), events, i % 17 == 3)
        )
    return out


def _order_record(o: _Order, status: str, updated_at: datetime, *, corrected: bool, customer: str | None = None) -> dict[str, Any]:
    ordered_at = o.ordered_at - timedelta(days=1) if corrected else o.ordered_at
    return {
        "order_id": o.order_id,
        "customer_id": customer or o.customer_id,
        "status": status,
        "ordered_at": _iso(ordered_at),
        "updated_at": _iso(updated_at),
    }


def _item_record(o: _Order, line: tuple[int, str, str, int, Decimal], updated_at: datetime) -> dict[str, Any]:
    line_no, product, category, quantity, price = line
    return {
        "order_id": o.order_id,
        "line_no": line_no,
        "product_id": product,
        "category": category,
        "quantity": quantity,
        "unit_price": f"{price:.2f}",
        "updated_at": _iso(updated_at),
    }


def _dumps(records: list[Any]) -> bytes:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return ("\n".join(lines) + "\n").encode()


def _window(
    seed: int, start: datetime, interval: timedelta, n: int, bad: bool
) -> tuple[dict[str, bytes], int, int]:
    """The files of one window: key → bytes, and the order and item line counts."""
    rng = _rng(seed, start, interval, "window")
    half = max(timedelta(minutes=1), interval / 2)
    last = interval - timedelta(minutes=1)

    def at(offset: timedelta) -> datetime:
        return start + min(offset, last)

    def update_time() -> datetime:
        return start + timedelta(seconds=rng.randrange(0, int(half.total_seconds())))

    created = _orders_of(seed, start, interval, n)
    new_orders = [_order_record(o, "placed", o.ordered_at, corrected=False) for o in created]
    new_items = [_item_record(o, line, o.ordered_at) for o in created for line in o.lines]
    # faults in the new-orders files: duplicates, malformed lines, rows breaking checks
    new_orders.insert(4, new_orders[3])
    new_orders.append('{"order_id": "' + created[0].order_id + '", "customer_id": ')
    new_items.insert(1, new_items[0])
    new_items.append("not json at all")
    bogus = _item_record(created[0], (99, PRODUCTS[0][0], PRODUCTS[0][1], -1, PRODUCTS[0][2]), created[0].ordered_at)
    missing_product = dict(_item_record(created[1], (98, "", "", 1, Decimal("1.00")), created[1].ordered_at), product_id=None)
    new_items += [bogus, missing_product]

    updates: list[Any] = []
    late_items: list[Any] = []
    tie: list[Any] = []
    for back in range(1, LOOKBACK + 1):
        earlier = _orders_of(seed, start - back * interval, interval, n)
        for o in earlier:
            for after, status in o.events:
                if after == back:
                    updates.append(_order_record(o, status, update_time(), corrected=o.corrected))
        if back == 1:
            # a late line of an order of the previous window
            o = earlier[1]
            extra = (len(o.lines) + 1, *PRODUCTS[7][:2], 2, PRODUCTS[7][2])
            late_items.append(_item_record(o, extra, update_time()))  # type: ignore[arg-type]
            # an invalid status on a newer version: quarantined, the older version stays
            updates.append(_order_record(earlier[2], "lost", start + half - timedelta(seconds=1), corrected=earlier[2].corrected))
        if back == 2:
            # out of order: the original version of an order updated since arrives again
            o = next(o for o in earlier if o.events[0][0] == 1)
            updates.append(_order_record(o, "placed", o.ordered_at, corrected=False))
    if updates:
        # a tie: the same updated_at as the first update, delivered later, different customer
        first = dict(updates[0])
        first["customer_id"] = "C-9999"
        tie.append(first)

    if bad:
        for records in (new_orders, updates, tie):
            for i, rec in enumerate(records):
                if isinstance(rec, dict) and i % 10 < 7:
                    records[i] = {k: v for k, v in rec.items() if k != "order_id"}

    files = {
        _key("orders", at(timedelta(minutes=1)), 0): _dumps(new_orders),
        _key("order_items", at(timedelta(minutes=1)), 0): _dumps(new_items),
    }
    if updates:
        files[_key("orders", at(half), 1)] = _dumps(updates)
    if late_items:
        files[_key("order_items", at(half), 1)] = _dumps(late_items)
    if tie:
        files[_key("orders", at(half + timedelta(minutes=1)), 2)] = _dumps(tie)
    # the new-orders file delivered a second time, same bytes, another key
    files[_key("orders", at(half + timedelta(minutes=2)), 9)] = files[_key("orders", at(timedelta(minutes=1)), 0)]
    n_orders = sum(len(v.splitlines()) for k, v in files.items() if k.startswith("orders/"))
    n_items = sum(len(v.splitlines()) for k, v in files.items() if k.startswith("order_items/"))
    return files, n_orders, n_items


def simulate(
    store: ObjectStore,
    *,
    start: datetime,
    windows: int,
    interval: timedelta = timedelta(minutes=15),
    seed: int = 7,
    bad_window: int | None = None,
    orders_per_window: int = 40,
) -> list[SimulatedWindow]:
    """Write the landing files of ``windows`` consecutive windows from ``start``.

    Example::

        simulate(LocalStore("/tmp/landing"), start=parse_time("2026-01-01T00:00:00Z"), windows=4)
    """
    if start.tzinfo is None:
        raise ValueError(f"start {start.isoformat()} has no time zone")
    if interval < timedelta(minutes=1):
        raise ValueError(f"interval must be at least 1 minute, got {interval}")
    if orders_per_window < 5:
        raise ValueError("orders_per_window must be at least 5")
    start = start.astimezone(UTC)
    out = []
    for k in range(1, windows + 1):
        w_start = start + (k - 1) * interval
        files, n_orders, n_items = _window(seed, w_start, interval, orders_per_window, bad_window == k)
        for key, data in sorted(files.items()):
            store.put(key, data)
        out.append(SimulatedWindow(w_start, w_start + interval, tuple(sorted(files)), n_orders, n_items))
    return out


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp with a zone (``2026-01-01T00:15:00Z``), as an aware datetime."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp such as 2026-01-01T00:15:00Z") from exc
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: write it as 2026-01-01T00:15:00Z or with +01:00")
    return value


_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")


def parse_interval(text: str) -> timedelta:
    """A duration such as ``90s``, ``15m`` or ``1h``."""
    m = _INTERVAL.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not an interval such as 5m, 15m, 1h or 90s")
    amount, unit = int(m.group(1)), m.group(2)
    return {"s": timedelta(seconds=amount), "m": timedelta(minutes=amount), "h": timedelta(hours=amount)}[unit]
