"""The shop simulator: determinism, window independence, record shapes and every fault."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest

from lakehouse.dev.shop import ORDER_STATUSES
from lakehouse.dev.simulator import (
    CATEGORIES,
    CUSTOMERS,
    PRODUCTS,
    TIE_CUSTOMER,
    SimulatedWindow,
    simulate,
)
from lakehouse.storage import LocalStore
from lakehouse.window import parse_interval, parse_time

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)

ORDER_ID = re.compile(r"^O-(\d{12})-\d{4}$")
CUSTOMER_ID = re.compile(r"^C-\d{4}$")
PRODUCT_ID = re.compile(r"^P-\d{3}$")
PRICE = re.compile(r"^\d+\.\d{2}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def files(store: LocalStore) -> dict[str, bytes]:
    return {o.key: store.get(o.key) for o in store.list()}


def landed(key: str) -> datetime:
    y, mo, d, h, mi = (int(p) for p in key.split("/")[1:6])
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_of(t: datetime) -> int:
    """The 1-based window (from START, 15 minutes) holding ``t``; 0 or less before START."""
    return (t - START) // INTERVAL + 1


def created_in(order_id: str) -> datetime:
    m = ORDER_ID.match(order_id)
    assert m, order_id
    return datetime.strptime(m.group(1), "%Y%m%d%H%M").replace(tzinfo=UTC)


def records(data: dict[str, bytes], prefix: str) -> list[tuple[str, dict | None, str]]:
    """(key, parsed record or None when not a JSON object, raw line) of every line, by landing."""
    out = []
    for key in sorted(data, key=lambda k: (landed(k), k)):
        if key.startswith(prefix + "/"):
            for line in data[key].decode("utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    rec = None
                out.append((key, rec if isinstance(rec, dict) else None, line))
    return out


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> tuple[list[SimulatedWindow], dict[str, bytes]]:
    """A default run of six windows."""
    store = LocalStore(tmp_path_factory.mktemp("six"))
    written = simulate(store, start=START, windows=6)
    return written, files(store)


# --- determinism --------------------------------------------------------------------------


def test_same_seed_same_bytes_and_split_calls_equal_one_call(tmp_path, six) -> None:
    _, expected = six
    again = LocalStore(tmp_path / "again")
    simulate(again, start=START, windows=6)
    assert files(again) == expected

    split = LocalStore(tmp_path / "split")
    simulate(split, start=START, windows=3)
    simulate(split, start=START + 3 * INTERVAL, windows=3)
    assert files(split) == expected

    # the same instant in another zone is the same run
    zoned = LocalStore(tmp_path / "zoned")
    simulate(zoned, start=parse_time("2026-01-01T01:00:00+01:00"), windows=6)
    assert files(zoned) == expected


def test_a_different_seed_writes_different_bytes(tmp_path, six) -> None:
    _, expected = six
    other = LocalStore(tmp_path / "other")
    simulate(other, start=START, windows=6, seed=8)
    data = files(other)
    assert data.keys() == expected.keys()  # the layout does not depend on the seed
    assert all(data[k] != expected[k] for k in data if not k.startswith("products/"))  # the catalogue is fixed


def test_a_bad_window_changes_only_that_window_and_keeps_its_keys(tmp_path, six) -> None:
    _, expected = six
    store = LocalStore(tmp_path / "bad")
    written = simulate(store, start=START, windows=6, bad_window=3)
    data = files(store)
    assert data.keys() == expected.keys()
    bad_keys = set(written[2].keys)
    for key in data:
        assert (data[key] != expected[key]) == (key in bad_keys and key.startswith("orders/")), key


# --- layout -------------------------------------------------------------------------------


def test_the_files_of_two_windows(six) -> None:
    written, _ = six
    assert [(w.start, w.end) for w in written[:2]] == [
        (START, START + INTERVAL),
        (START + INTERVAL, START + 2 * INTERVAL),
    ]
    assert written[0].keys == (
        "order_items/2026/01/01/00/01/part-0.jsonl",
        "order_items/2026/01/01/00/07/part-1.jsonl",
        "orders/2026/01/01/00/01/part-0.jsonl",
        "orders/2026/01/01/00/07/part-1.jsonl",
        "orders/2026/01/01/00/08/part-2.jsonl",
        "orders/2026/01/01/00/09/part-9.jsonl",
        "products/2026/01/01/00/01/part-0.jsonl",
    )
    assert written[1].keys == (
        "order_items/2026/01/01/00/16/part-0.jsonl",
        "order_items/2026/01/01/00/22/part-1.jsonl",
        "orders/2026/01/01/00/16/part-0.jsonl",
        "orders/2026/01/01/00/22/part-1.jsonl",
        "orders/2026/01/01/00/23/part-2.jsonl",
        "orders/2026/01/01/00/24/part-9.jsonl",
        "products/2026/01/01/00/16/part-0.jsonl",
    )


@pytest.mark.parametrize(
    "start, interval",
    [
        (START, INTERVAL),
        (START, timedelta(minutes=5)),
        (START, timedelta(hours=1)),
        (START, timedelta(seconds=90)),
        (START, timedelta(minutes=1)),
        (START + timedelta(seconds=10), timedelta(seconds=70)),
        (
            datetime(2026, 3, 29, 0, 30, 45, tzinfo=timezone(timedelta(hours=2))),
            timedelta(minutes=15),
        ),
    ],
)
def test_keys_carry_a_landing_time_inside_their_window_after_their_records(
    tmp_path, start, interval
) -> None:
    store = LocalStore(tmp_path)
    written = simulate(store, start=start, windows=4, interval=interval)
    assert len(written) == 4
    all_keys = [k for w in written for k in w.keys]
    assert len(all_keys) == len(set(all_keys)) == len(store.list())
    for k, w in enumerate(written):
        assert w.start == start.astimezone(UTC) + k * interval and w.end == w.start + interval
        for key in w.keys:
            assert re.fullmatch(
                r"(products|orders|order_items)/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}/part-\d+\.jsonl", key
            )
            assert w.start <= landed(key) < w.end, key
            for line in store.get(key).decode().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("updated_at"):
                    assert ts(rec["updated_at"]) <= landed(key), (key, line)


def test_files_are_utf8_jsonl_ending_with_a_newline_and_counts_match(six) -> None:
    written, data = six
    for w in written:
        lines = {
            p: sum(len(data[k].splitlines()) for k in w.keys if k.startswith(p + "/"))
            for p in ("orders", "order_items")
        }
        assert (w.orders, w.order_items) == (lines["orders"], lines["order_items"])
    for key, content in data.items():
        assert content.endswith(b"\n") and not content.endswith(b"\n\n"), key
        content.decode("utf-8")


def test_records_have_the_declared_shape(six) -> None:
    written, data = six
    orders = [(k, r) for k, r, _ in records(data, "orders") if r is not None]
    items = [(k, r) for k, r, _ in records(data, "order_items") if r is not None]
    for _, r in orders:
        assert set(r) == {"order_id", "customer_id", "status", "ordered_at", "updated_at"}
        assert ORDER_ID.match(r["order_id"]) and CUSTOMER_ID.match(r["customer_id"])
        assert r["status"] in (*ORDER_STATUSES, "lost")
        assert ISO_Z.match(r["ordered_at"]) and ISO_Z.match(r["updated_at"])
        assert ts(r["updated_at"]) >= ts(r["ordered_at"])
    # new orders: placed in their own window, updated_at = ordered_at
    new = [
        r
        for k, r in orders
        if window_of(created_in(r["order_id"])) == window_of(landed(k)) and r["status"] == "placed"
    ]
    assert len({r["order_id"] for r in new}) == 6 * 40
    for r in new:
        start = created_in(r["order_id"])
        assert start <= ts(r["ordered_at"]) < start + INTERVAL
        assert r["updated_at"] == r["ordered_at"]

    products: dict[str, set[tuple[str, str]]] = defaultdict(set)
    lines_per_order: Counter[str] = Counter()
    discounts: Counter[bool] = Counter()
    for key, r in items:
        assert set(r) == {
            "order_id",
            "line_no",
            "product_id",
            "category",
            "quantity",
            "unit_price",
            "discount",
            "updated_at",
        }
        assert ORDER_ID.match(r["order_id"]) and isinstance(r["line_no"], int) and r["line_no"] >= 1
        assert PRICE.match(r["unit_price"]) and PRICE.match(r["discount"]) and ISO_Z.match(r["updated_at"])
        gross = r["quantity"] * Decimal(r["unit_price"])
        discounted = r["quantity"] >= 2 and (int(r["order_id"][-4:]) + r["line_no"]) % 2 == 0
        want = (gross / 10).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if discounted else Decimal("0.00")
        assert Decimal(r["discount"]) == want, r
        discounts[Decimal(r["discount"]) > 0] += 1
        if r["product_id"] is None or r["quantity"] < 1 or r["line_no"] == 97:
            continue  # the rows breaking checks, asserted below
        assert PRODUCT_ID.match(r["product_id"]) and 1 <= r["quantity"] <= 5
        assert r["category"] in ("books", "toys", "garden", "kitchen", "games")
        products[r["product_id"]].add((r["category"], r["unit_price"]))
        if key.endswith("/part-0.jsonl") and r["line_no"] < 90:
            lines_per_order[r["order_id"]] += 1
    assert all(len(v) == 1 for v in products.values()), "an order line's own category and price are fixed per product"
    assert 20 <= len(products) <= 50
    # the first item line is duplicated in its file: count distinct lines per order
    distinct = Counter(
        r["order_id"]
        for r in {
            json.dumps(r, sort_keys=True): r
            for k, r in items
            if k.endswith("/part-0.jsonl") and r["product_id"] and 1 <= r["line_no"] < 90
        }.values()
    )
    assert set(distinct.values()) <= {1, 2, 3, 4} and len(distinct) == 6 * 40
    assert 0.1 < discounts[True] / sum(discounts.values()) < 0.5  # some lines are discounted, most not
    customers = {r["customer_id"] for _, r in orders}
    assert customers <= {f"C-{i:04d}" for i in range(CUSTOMERS)} | {TIE_CUSTOMER} and len(customers) > CUSTOMERS // 2
    assert sum(lines_per_order.values()) == sum(distinct.values()) + 6  # one duplicate per window


# --- faults -------------------------------------------------------------------------------


def is_faulty(rec: dict | None) -> bool:
    if rec is None:
        return True
    if "name" in rec:
        return False  # a product of the catalogue
    if "status" in rec:
        return rec["status"] not in ORDER_STATUSES or "order_id" not in rec
    if rec.get("line_no") == 97:
        return True  # fault 10: a product the catalogue lists only a window later
    return rec.get("product_id") is None or not 1 <= rec.get("quantity", 0) <= 1000


def test_faulty_rows_are_a_small_minority_of_every_file(six) -> None:
    _, data = six
    for key, content in data.items():
        lines = content.decode().splitlines()
        duplicates = len(lines) - len(set(lines))
        faulty = 0
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            faulty += is_faulty(rec if isinstance(rec, dict) else None)
        assert (faulty + duplicates) / len(lines) < 0.1, key


def test_updates_follow_the_lifecycle_within_later_windows(six) -> None:
    _, data = six
    statuses: dict[str, list[str]] = defaultdict(list)
    for key, r, _ in records(data, "orders"):
        if r is None or r["status"] == "lost":
            continue
        if r["status"] != "placed":
            # an update: updated_at inside the window of its file, after the order's window
            assert (
                window_of(ts(r["updated_at"]))
                == window_of(landed(key))
                > window_of(created_in(r["order_id"]))
            )
        if not statuses[r["order_id"]] or statuses[r["order_id"]][-1] != r["status"]:
            statuses[r["order_id"]].append(r["status"])
    full = [s for o, s in statuses.items() if s == ["placed", "paid", "shipped", "delivered"]]
    assert full, "some orders run the whole lifecycle in a 6-window run"
    assert any(s == ["placed", "cancelled"] for s in statuses.values())
    order = {s: i for i, s in enumerate(("placed", "paid", "shipped", "delivered"))}
    for s in statuses.values():
        known = [x for x in s if x in order]
        # progression only moves forward, except the replayed original "placed" version
        forward = [x for x in known if x != "placed"]
        assert forward == sorted(forward, key=order.__getitem__), s


def test_exact_duplicate_lines_in_one_file(six) -> None:
    _, data = six
    for prefix in ("orders", "order_items"):
        dup = [
            (k, line)
            for (k, line), n in Counter((k, line) for k, _, line in records(data, prefix)).items()
            if n > 1
        ]
        assert dup and all(json.loads(line) for _, line in dup)


def test_a_file_delivered_twice_under_another_key(six) -> None:
    _, data = six
    by_bytes: dict[bytes, list[str]] = defaultdict(list)
    for key, content in data.items():
        by_bytes[content].append(key)
    twice = [sorted(keys, key=landed) for keys in by_bytes.values() if len(keys) > 1]
    assert len(twice) == 6  # one per window
    for first, again in twice:
        assert first != again and landed(first) < landed(again)
        assert window_of(landed(first)) == window_of(landed(again))


def test_malformed_lines(six) -> None:
    _, data = six
    for prefix in ("orders", "order_items"):
        bad = [line for _, r, line in records(data, prefix) if r is None]
        assert bad
        for line in bad:
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
    assert any(
        line.startswith("{") for _, r, line in records(data, "orders") if r is None
    )  # truncated JSON
    assert any(
        not line.startswith("{") for _, r, line in records(data, "order_items") if r is None
    )  # not JSON


def test_rows_breaking_row_checks(six) -> None:
    _, data = six
    orders = [r for _, r, _ in records(data, "orders") if r]
    items = [r for _, r, _ in records(data, "order_items") if r]
    assert any(r["status"] == "lost" for r in orders)
    assert any(r["quantity"] == -1 for r in items)
    assert any(r["product_id"] is None for r in items)
    # "lost" is the newest version of its order when it arrives, so quarantining it keeps the valid one
    latest: dict[str, str] = {}
    for _, r, _ in records(data, "orders"):
        if r and "order_id" in r:
            if r["status"] == "lost":
                assert r["updated_at"] > latest.get(r["order_id"], "")
            latest[r["order_id"]] = max(latest.get(r["order_id"], ""), r["updated_at"])


def test_an_update_moves_ordered_at_to_the_previous_day(six) -> None:
    _, data = six
    ordered_at: dict[str, set[datetime]] = defaultdict(set)
    for _, r, _ in records(data, "orders"):
        if r and "order_id" in r:
            ordered_at[r["order_id"]].add(ts(r["ordered_at"]))
    moved = {o: v for o, v in ordered_at.items() if len(v) > 1}
    assert moved
    for values in moved.values():
        early, late = sorted(values)
        assert late - early == timedelta(days=1) and early.date() != late.date()


def test_an_older_version_arrives_in_a_later_file(six) -> None:
    _, data = six
    found = []
    by_file: dict[str, list[dict]] = defaultdict(list)
    for key, r, _ in records(data, "orders"):
        if r and "order_id" in r and r["status"] in ORDER_STATUSES:
            by_file[key].append(r)
    seen: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for key in sorted(by_file, key=lambda k: (landed(k), k)):
        for r in by_file[key]:
            earlier = [u for t, u in seen[r["order_id"]] if t < landed(key)]
            if earlier and max(earlier) > r["updated_at"]:
                found.append((key, r))
        for r in by_file[key]:
            seen[r["order_id"]].append((landed(key), r["updated_at"]))
    assert found
    assert all(r["status"] == "placed" for _, r in found)


def test_a_tie_on_updated_at_across_two_files(six) -> None:
    _, data = six
    versions: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for key, r, _ in records(data, "orders"):
        if r and "order_id" in r:
            versions[(r["order_id"], r["updated_at"])][json.dumps(r, sort_keys=True)].add(key)
    ties = [v for v in versions.values() if len(v) > 1]
    assert ties
    for v in ties:
        (a, keys_a), (b, keys_b) = sorted(v.items())
        assert not keys_a & keys_b, "the two versions are in different files"
        assert json.loads(a)["customer_id"] != json.loads(b)["customer_id"]


def test_a_late_line_of_an_earlier_windows_order(six) -> None:
    _, data = six
    first_lines: dict[str, set[int]] = defaultdict(set)
    late = []
    for key, r, _ in records(data, "order_items"):
        if not r or not r["order_id"]:
            continue
        if window_of(created_in(r["order_id"])) == window_of(landed(key)):
            first_lines[r["order_id"]].add(r["line_no"])
        else:
            late.append((key, r))
    assert late
    for key, r in late:
        assert window_of(created_in(r["order_id"])) < window_of(landed(key))
        if r["order_id"] in first_lines:  # orders created before the run have no first lines here
            assert r["line_no"] not in first_lines[r["order_id"]]
            assert r["line_no"] == max(n for n in first_lines[r["order_id"]] if n < 90) + 1


def test_a_bad_window_mostly_lacks_the_key(tmp_path) -> None:
    store = LocalStore(tmp_path)
    written = simulate(store, start=START, windows=3, bad_window=2)
    data = files(store)

    def lacking(w: SimulatedWindow) -> float:
        lines = [
            json.loads(line) if line.endswith("}") else None
            for k in w.keys
            if k.startswith("orders/")
            for line in data[k].decode().splitlines()
        ]
        return sum(1 for r in lines if r is not None and "order_id" not in r) / len(lines)

    assert lacking(written[1]) >= 0.6
    assert lacking(written[0]) == lacking(written[2]) == 0


# --- arguments ----------------------------------------------------------------------------


def test_invalid_arguments(tmp_path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(ValueError, match="time zone"):
        simulate(store, start=datetime(2026, 1, 1), windows=1)
    with pytest.raises(ValueError, match="interval"):
        simulate(store, start=START, windows=1, interval=timedelta(seconds=30))
    with pytest.raises(ValueError, match="orders_per_window"):
        simulate(store, start=START, windows=1, orders_per_window=2)
    assert simulate(store, start=START, windows=0) == [] and store.list() == []


def test_parse_time_and_interval() -> None:
    assert parse_time("2026-01-01T00:15:00Z") == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert parse_time("2026-01-01T00:15:00+00:00") == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert parse_time("2026-01-01T01:15:00+01:00") == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert parse_time(" 2026-01-01T00:15:00z ").tzinfo is not None
    with pytest.raises(ValueError, match="no time zone"):
        parse_time("2026-01-01T00:15:00")
    for bad in ("yesterday", "", "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_time(bad)
    assert parse_interval("15m") == timedelta(minutes=15)
    assert parse_interval("5m") == timedelta(minutes=5)
    assert parse_interval("1h") == timedelta(hours=1)
    assert parse_interval("90s") == timedelta(seconds=90)
    for bad in ("15", "0m", "m", "15 minutes", "-5m", "1.5h", "1d", ""):
        with pytest.raises(ValueError, match="not an interval"):
            parse_interval(bad)


def test_a_product_sold_before_the_catalogue_lists_it(six) -> None:
    written, data = six
    for k, w in enumerate(written):
        catalogue = {
            r["product_id"] for key in w.keys if key.startswith("products/")
            for r in map(json.loads, data[key].decode().splitlines())
        }
        sold = {
            r["product_id"] for key, r, _ in records(data, "order_items")
            if r is not None and r["line_no"] == 97 and key in w.keys
        }
        assert sold == {f"P-N{w.start:%Y%m%d%H%M}"}
        assert not sold & catalogue and {f"P-{i:03d}" for i in range(50)} <= catalogue
        if k + 1 < len(written):
            later = written[k + 1]
            listed = {
                r["product_id"] for key in later.keys if key.startswith("products/")
                for r in map(json.loads, data[key].decode().splitlines())
            }
            assert sold <= listed


def test_a_late_product_change_in_every_catalogue(six) -> None:
    written, data = six
    seen = set()
    for w in written:
        (key,) = [k for k in w.keys if k.startswith("products/")]
        versions = defaultdict(list)
        for r in map(json.loads, data[key].decode().splitlines()):
            versions[r["product_id"]].append(r)
        (changed,) = [p for p, rs in versions.items() if len(rs) == 2]
        original, late = sorted(versions[changed], key=lambda r: r["updated_at"])
        category = dict((p, c) for p, c, _ in PRODUCTS)[changed]
        assert original["category"] == category and late["category"] == CATEGORIES[(CATEGORIES.index(category) + 1) % 5]
        assert ts(late["updated_at"]) == w.start - INTERVAL / 2 < landed(key)  # dated before the window delivering it
        assert late["unit_price"] == original["unit_price"]
        seen.add(changed)
    assert len(seen) > 1
