"""The shop simulator: seeded, deterministic products, orders and order items as landing JSONL files.

Window k covers ``[start + (k-1)·interval, start + k·interval)``. Its content depends only
on the seed, its own start and the interval (and on ``bad_window`` naming it), never on
which other windows one call writes: every window draws from its own ``random.Random``,
seeded with a SHA-256 of ``seed:start:interval`` (Python's ``hash()`` is salted per process
and is never used). So simulating windows 1..3 and then 4..6 writes exactly the bytes of
one call for 1..6.

Every order has a deterministic lifecycle (placed → paid → shipped → delivered, or
cancelled, or placed → paid only). The updates a window emits are those of the orders of
the previous :data:`LOOKBACK` windows, which it regenerates from their own seeds. The
first windows of a run therefore also update orders of windows before the run (the shop
existed before the simulation started); that is what keeps windows independent.

Files of a window (interval 15 minutes, window start ``S``)::

    products/…/S+1m/part-0.jsonl      the catalogue (50 products) and fault 10's new product
    orders/…/S+1m/part-0.jsonl        new orders (status placed)
    order_items/…/S+1m/part-0.jsonl   their lines (1–4 per order)
    orders/…/S+7m/part-1.jsonl        later versions of earlier windows' orders
    order_items/…/S+7m/part-1.jsonl   a late line of an earlier window's order
    orders/…/S+8m/part-2.jsonl        a version tying with one in part-1
    orders/…/S+9m/part-9.jsonl        part-0 of the orders delivered a second time

Landing times are whole minutes inside the window, written in the key
(``YYYY/MM/DD/HH/MM``, UTC); every record's time is before its file's landing time.

Faults, each in every window (so in any run of a few windows), and how they are made:

1. updates: ``orders/…/part-1`` holds the next version of every order of the previous
   four windows whose lifecycle has a step due (``paid`` after one window, ``shipped``
   after two, ``delivered`` after three; about 8 % are ``cancelled`` after one window),
   with ``updated_at`` inside the current window;
2. out-of-order updates: ``part-1`` also carries the original ``placed`` version of the
   first order of two windows back, older than its ``paid`` version delivered by the
   previous window; it must lose in silver;
3. exact duplicate records: the fourth order line and the first item line appear twice,
   byte for byte, in their ``part-0`` file;
4. a file delivered twice: ``orders/…/part-0`` again, same bytes, as ``part-9`` eight
   minutes later;
5. malformed lines: a truncated JSON object in ``orders/…/part-0``, the text
   ``not json at all`` in ``order_items/…/part-0``;
6. rows that break row checks: a version of an order of the previous window with status
   ``lost`` (newer than its valid versions, so it is quarantined and the valid one
   stays), an item with quantity ``-1`` (line 99 of the first order) and one with a null
   ``product_id`` (line 98 of the second order);
7. an update that corrects ``ordered_at`` to the previous day: every version after
   ``placed`` of orders 3, 20, 37 … (``n % 17 == 3``) moves them one day back, so their
   ``order_date`` partition changes;
8. late lines: ``order_items/…/part-1`` holds a new line (next ``line_no``) of the second
   order of the previous window;
9. ties: ``orders/…/part-2`` repeats the first version of ``part-1`` with the same
   ``updated_at`` but another ``customer_id`` (``C-9999``): ingestion order (the later
   landing) must break the tie;
10. a product that arrives late: line 97 of the third new order sells product
   ``P-N<window start>``, which is in the catalogue file of the next window only; the
   line is quarantined as an unknown product, and ``lakehouse quarantine replay`` after
   the next window promotes it (its record is dated from the window it was first sold in);
11. a late product change: each catalogue file also holds a new version of one product
   (:func:`recategorised`), dated half a window before the window's start.

Order lines carry a ``discount`` (:func:`discount`); orders' customers are those of
:mod:`lakehouse.dev.shop_db` (:data:`CUSTOMERS`), so gold finds their versions.

Faulty rows stay well under 10 % of each file's rows (about 5 % with the default 40
orders per window). With ``bad_window=k``, 70 % of the order records of window k lack the
``order_id`` field, so the batch-level missing-key check fails; window k writes the same
keys as without it, so a corrected re-delivery overwrites them.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from lakehouse.storage import ObjectStore

CATEGORIES = ("books", "toys", "garden", "kitchen", "games")
PRODUCTS: tuple[tuple[str, str, Decimal], ...] = tuple(
    (f"P-{i:03d}", CATEGORIES[i % len(CATEGORIES)], Decimal(i * 731 % 9000 + 199) / 100)
    for i in range(50)
)
"""(product_id, category, unit price) of the 50 products: fixed, independent of the seed."""
CATALOGUE_UPDATED_AT = datetime(2025, 12, 1, tzinfo=UTC)
"""``updated_at`` of the 50 products of the catalogue (they never change)."""
LOOKBACK = 4
"""How many earlier windows an order keeps getting updates from."""
TIE_CUSTOMER = "C-9999"
CUSTOMERS = 12
"""How many customers orders are drawn from: ``C-0000`` … ``C-0011``, the starting customers of the shop's database."""
MIN_ORDERS, MAX_ORDERS = 5, 9999

_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)

Line = tuple[int, str, str, int, Decimal]
"""(line_no, product_id, category, quantity, unit_price)."""


@dataclass(frozen=True)
class SimulatedWindow:
    """What :func:`simulate` wrote for one window: its keys and its line counts."""

    start: datetime
    end: datetime
    keys: tuple[str, ...]
    orders: int
    order_items: int


def _rng(seed: int, *parts: object) -> random.Random:
    """A ``Random`` seeded from a stable hash of ``seed`` and ``parts`` (never ``hash()``)."""
    text = ":".join([str(seed), *(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)])
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(prefix: str, landed: datetime, part: int) -> str:
    return f"{prefix}/{landed:%Y/%m/%d/%H/%M}/part-{part}.jsonl"


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ceil_minute(t: datetime) -> datetime:
    return t if _floor_minute(t) == t else _floor_minute(t) + _MINUTE


def _seconds_until(start: datetime, end: datetime) -> int:
    """Whole seconds in ``[start, end)``, at least 1 (so ``randrange`` always has a choice)."""
    return max(1, int((end - start).total_seconds()))


@dataclass(frozen=True)
class _Order:
    order_id: str
    customer_id: str
    ordered_at: datetime
    lines: tuple[Line, ...]
    events: tuple[tuple[int, str], ...]
    """(windows after creation, status) of each later version."""
    corrected: bool
    """Whether the versions after ``placed`` move ordered_at to the previous day."""


def _orders_of(
    seed: int, start: datetime, interval: timedelta, n: int, placed_before: datetime
) -> list[_Order]:
    """The orders created in the window starting at ``start`` (a pure function of its arguments)."""
    rng = _rng(seed, start, interval, "orders")
    span = _seconds_until(start, placed_before)
    out = []
    for i in range(n):
        order_id = f"O-{start:%Y%m%d%H%M}-{i:04d}"
        ordered_at = start + timedelta(seconds=rng.randrange(span))
        lines = []
        for line_no in range(1, rng.randint(1, 4) + 1):
            product, category, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
            lines.append((line_no, product, category, rng.randint(1, 5), price))
        roll = rng.random()
        if i == 0:
            roll = 0.5  # the first order always runs the full lifecycle: faults 2 and 9 use it
        if roll < 0.08:
            events: tuple[tuple[int, str], ...] = ((1, "cancelled"),)
        elif roll < 0.7:
            events = ((1, "paid"), (2, "shipped"), (3, "delivered"))
        else:
            events = ((2, "paid"),)
        customer = f"C-{rng.randrange(9999) % CUSTOMERS:04d}"  # one draw as before (the later draws stay); C-9999 is the tie
        out.append(_Order(order_id, customer, ordered_at, tuple(lines), events, i % 17 == 3))
    return out


def _order_record(
    o: _Order, status: str, updated_at: datetime, *, corrected: bool
) -> dict[str, Any]:
    ordered_at = o.ordered_at - timedelta(days=1) if corrected else o.ordered_at
    return {
        "order_id": o.order_id,
        "customer_id": o.customer_id,
        "status": status,
        "ordered_at": _iso(ordered_at),
        "updated_at": _iso(updated_at),
    }


def discount(order_id: str, line_no: int, quantity: int, price: Decimal) -> Decimal:
    """A line's discount: 10 % of its gross for lines of 2 or more units whose order number + line_no is even."""
    if quantity < 2 or (int(order_id.rsplit("-", 1)[-1]) + line_no) % 2:
        return Decimal("0.00")
    return (quantity * price * Decimal("0.10")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _item_record(o: _Order, line: Line, updated_at: datetime) -> dict[str, Any]:
    line_no, product, category, quantity, price = line
    return {
        "order_id": o.order_id,
        "line_no": line_no,
        "product_id": product,
        "category": category,
        "quantity": quantity,
        "unit_price": f"{price:.2f}",
        "discount": f"{discount(o.order_id, line_no, quantity, price):.2f}",
        "updated_at": _iso(updated_at),
    }


def recategorised(window_start: datetime, interval: timedelta) -> tuple[tuple[str, str, Decimal], datetime]:
    """Fault 11's product (the window's minutes since the epoch modulo 50) in the next category, and its time."""
    i = int(window_start.timestamp() // 60) % len(PRODUCTS)
    product_id, category, price = PRODUCTS[i]
    moved = CATEGORIES[(CATEGORIES.index(category) + 1) % len(CATEGORIES)]
    return (product_id, moved, price), window_start - interval / 2


def new_product(window_start: datetime) -> tuple[str, str, Decimal]:
    """The product first sold in the window starting at ``window_start`` (fault 10)."""
    return (f"P-N{window_start:%Y%m%d%H%M}", "new", Decimal("5.00"))


def _product_record(product: tuple[str, str, Decimal], updated_at: datetime) -> dict[str, Any]:
    product_id, category, price = product
    return {
        "product_id": product_id,
        "name": f"{category.title()} item {product_id}",
        "category": category,
        "unit_price": f"{price:.2f}",
        "updated_at": _iso(updated_at),
    }


def _dumps(records: list[Any]) -> bytes:
    """JSONL: dicts as JSON, strings (the malformed lines) as they are; ends with a newline."""
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    return ("\n".join(lines) + "\n").encode("utf-8")


class _Landings:
    """Landing times of one window's files: whole minutes inside ``[start, end)``."""

    def __init__(self, start: datetime, interval: timedelta) -> None:
        self.start = start
        self.first = _ceil_minute(start)
        self.last = _floor_minute(start + interval - timedelta(microseconds=1))
        if self.first > self.last:
            msg = f"the window from {start.isoformat()} of {interval} holds no whole minute"
            raise ValueError(msg)

    def at(self, offset: timedelta) -> datetime:
        """The whole minute at or before ``start + offset``, kept inside the window."""
        return min(max(_floor_minute(self.start + offset), self.first), self.last)


def _window(seed: int, start: datetime, interval: timedelta, n: int, bad: bool) -> tuple[dict[str, bytes], int, int]:
    """The files of one window: key → bytes, and the order and item line counts."""
    rng = _rng(seed, start, interval, "window")
    landings = _Landings(start, interval)
    half = max(_MINUTE, interval / 2)
    new_at = landings.at(_MINUTE)
    updates_at = landings.at(half)
    tie_at = landings.at(half + _MINUTE)
    again_at = landings.at(half + 2 * _MINUTE)

    def update_time() -> datetime:
        """A time before the updates file lands (and before the ``lost`` version)."""
        return start + timedelta(seconds=rng.randrange(max(1, _seconds_until(start, updates_at) - 1)))

    def orders_of(window_start: datetime) -> list[_Order]:
        return _orders_of(seed, window_start, interval, n, _Landings(window_start, interval).at(_MINUTE))

    # new orders and their lines, with faults 3 (duplicates), 5 (malformed), 6 (-1, null)
    created = orders_of(start)
    new_orders: list[Any] = [_order_record(o, "placed", o.ordered_at, corrected=False) for o in created]
    new_items: list[Any] = [_item_record(o, line, o.ordered_at) for o in created for line in o.lines]
    new_orders.insert(4, new_orders[3])
    new_orders.append('{"order_id": "' + created[0].order_id + '", "customer_id": ')
    new_items.insert(1, new_items[0])
    new_items.append("not json at all")
    product, category, price = PRODUCTS[0]
    new_items.append(
        _item_record(created[0], (99, product, category, -1, price), created[0].ordered_at)
    )
    missing_product = _item_record(
        created[1], (98, "", "", 1, Decimal("1.00")), created[1].ordered_at
    )
    new_items.append({**missing_product, "product_id": None, "category": None})

    # fault 10: a line of the third order sells a product that reaches the catalogue only
    # with the next window's products file
    product, category, price = new_product(start)
    new_items.append(_item_record(created[2], (97, product, category, 1, price), created[2].ordered_at))

    # the catalogue: every product, plus the one the previous window sold too early
    previous = new_product(start - interval)
    products = [_product_record(p, CATALOGUE_UPDATED_AT) for p in PRODUCTS]
    products.append(_product_record(previous, start - interval))  # dated from its first sale's window
    products.append(_product_record(*recategorised(start, interval)))  # fault 11

    # later versions of earlier windows' orders: faults 1, 2, 6 (lost), 7, 8 and 9
    updates: list[Any] = []
    late_items: list[Any] = []
    for back in range(1, LOOKBACK + 1):
        earlier = orders_of(start - back * interval)
        for o in earlier:
            for after, status in o.events:
                if after == back:
                    updates.append(_order_record(o, status, update_time(), corrected=o.corrected))
        if back == 1:
            o = earlier[1]
            product, category, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
            late_items.append(
                _item_record(o, (len(o.lines) + 1, product, category, 2, price), update_time())
            )
            lost = earlier[2]
            lost_at = max(start, updates_at - _SECOND)
            updates.append(_order_record(lost, "lost", lost_at, corrected=lost.corrected))
        if back == 2:
            o = earlier[0]  # its "paid" version came one window ago; "placed" is older
            updates.append(_order_record(o, "placed", o.ordered_at, corrected=False))
    tie = [{**updates[0], "customer_id": TIE_CUSTOMER}]

    if bad:
        for records in (new_orders, updates, tie):
            for i, rec in enumerate(records):
                if isinstance(rec, dict) and i % 10 < 7:
                    records[i] = {k: v for k, v in rec.items() if k != "order_id"}

    files = {
        _key("products", new_at, 0): _dumps(products),
        _key("orders", new_at, 0): _dumps(new_orders),
        _key("order_items", new_at, 0): _dumps(new_items),
        _key("orders", updates_at, 1): _dumps(updates),
        _key("order_items", updates_at, 1): _dumps(late_items),
        _key("orders", tie_at, 2): _dumps(tie),
    }
    files[_key("orders", again_at, 9)] = files[_key("orders", new_at, 0)]  # fault 4
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

    ``start`` must be timezone-aware; ``bad_window`` (1-based) names the window whose
    order lines mostly lack ``order_id``. Returns what each window wrote.

    Example::

        simulate(LocalStore("/tmp/landing"), start=parse_time("2026-01-01T00:00:00Z"), windows=4)
    """
    if start.tzinfo is None or start.utcoffset() is None:
        msg = f"start {start.isoformat()} has no time zone: give e.g. 2026-01-01T00:00:00Z"
        raise ValueError(msg)
    if windows < 0:
        msg = f"windows must be 0 or more, got {windows}"
        raise ValueError(msg)
    if interval < _MINUTE:
        msg = f"interval must be at least 1 minute (keys have minute precision), got {interval}"
        raise ValueError(msg)
    if not MIN_ORDERS <= orders_per_window <= MAX_ORDERS:
        msg = f"orders_per_window must be between {MIN_ORDERS} and {MAX_ORDERS}, got {orders_per_window}"
        raise ValueError(msg)
    start = start.astimezone(UTC)
    out = []
    for k in range(1, windows + 1):
        w_start = start + (k - 1) * interval
        files, n_orders, n_items = _window(
            seed, w_start, interval, orders_per_window, bad_window == k
        )
        for key, data in sorted(files.items()):
            store.put(key, data)
        out.append(
            SimulatedWindow(w_start, w_start + interval, tuple(sorted(files)), n_orders, n_items)
        )
    return out
