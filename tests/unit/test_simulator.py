from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from lakehouse.simulator import parse_interval, parse_time, simulate
from lakehouse.storage import LocalStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def files(store: LocalStore) -> dict[str, bytes]:
    return {o.key: store.get(o.key) for o in store.list()}


def records(data: dict[str, bytes], prefix: str) -> list[tuple[str, dict | None, str]]:
    out = []
    for key in sorted(data):
        if key.startswith(prefix + "/"):
            for line in data[key].decode().splitlines():
                try:
                    out.append((key, json.loads(line), line))
                except json.JSONDecodeError:
                    out.append((key, None, line))
    return out


def test_same_seed_same_bytes_and_windows_are_independent(tmp_path) -> None:
    a, b, c = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b"), LocalStore(tmp_path / "c")
    simulate(a, start=START, windows=6)
    simulate(b, start=START, windows=6)
    simulate(c, start=START, windows=3)
    simulate(c, start=START + 3 * timedelta(minutes=15), windows=3)
    assert files(a) == files(b) == files(c)
    d = LocalStore(tmp_path / "d")
    simulate(d, start=START, windows=6, seed=8)
    assert files(d) != files(a)


def test_keys_carry_a_landing_time_inside_their_window(tmp_path) -> None:
    store = LocalStore(tmp_path)
    for w in simulate(store, start=START, windows=3):
        for key in w.keys:
            y, mo, d, h, mi = (int(p) for p in key.split("/")[1:6])
            landed = datetime(y, mo, d, h, mi, tzinfo=UTC)
            assert w.start <= landed < w.end


def test_every_fault_is_present(tmp_path) -> None:
    store = LocalStore(tmp_path)
    simulate(store, start=START, windows=6)
    data = files(store)
    orders, items = records(data, "orders"), records(data, "order_items")
    # exact duplicate lines within one file
    assert any(n > 1 for n in Counter((k, line) for k, _, line in orders).values())
    assert any(n > 1 for n in Counter((k, line) for k, _, line in items).values())
    # a file delivered twice under another key
    assert len(set(data.values())) < len(data)
    # malformed lines
    assert any(r is None for _, r, _ in orders) and any(r is None for _, r, _ in items)
    # rows breaking checks
    assert any(r and r["status"] == "lost" for _, r, _ in orders)
    assert any(r and r["quantity"] == -1 for _, r, _ in items)
    assert any(r and r["product_id"] is None for _, r, _ in items)
    # an ordered_at correction, an older version arriving after a newer one, and a tie
    versions: dict[str, list[tuple[str, dict]]] = {}
    for key, r, _ in orders:
        if r and "order_id" in r:
            versions.setdefault(r["order_id"], []).append((key, r))
    assert any(len({r["ordered_at"] for _, r in vs}) > 1 for vs in versions.values())
    assert any(
        any(later["updated_at"] < earlier["updated_at"] for (_, earlier), (_, later) in zip(vs, vs[1:], strict=False))
        for vs in versions.values()
    )
    assert any(
        len({(r["updated_at"], r["customer_id"]) for _, r in vs}) > len({r["updated_at"] for _, r in vs})
        for vs in versions.values()
    )
    # a late line: an item of an order created in an earlier window
    def window_of_key(key: str) -> datetime:
        y, mo, d, h, mi = (int(p) for p in key.split("/")[1:6])
        return datetime(y, mo, d, h, mi - mi % 15, tzinfo=UTC)

    def window_of_order(order_id: str) -> datetime:
        return datetime.strptime(order_id[2:14], "%Y%m%d%H%M").replace(tzinfo=UTC)

    assert any(
        r and r["order_id"] and window_of_order(r["order_id"]) < window_of_key(k) for k, r, _ in items
    )


def test_a_bad_window_mostly_lacks_the_key(tmp_path) -> None:
    store = LocalStore(tmp_path)
    simulate(store, start=START, windows=2, bad_window=2)
    window2 = [r for k, r, _ in records(files(store), "orders") if "/2026/01/01/00/" in k and int(k.split("/")[5]) >= 15]
    lacking = sum(1 for r in window2 if r is not None and "order_id" not in r)
    assert lacking / len(window2) >= 0.6


def test_parse_time_and_interval() -> None:
    assert parse_time("2026-01-01T00:15:00Z") == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert parse_time("2026-01-01T01:15:00+01:00") == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        parse_time("2026-01-01T00:15:00")
    with pytest.raises(ValueError):
        parse_time("yesterday")
    assert parse_interval("15m") == timedelta(minutes=15)
    assert parse_interval("1h") == timedelta(hours=1)
    assert parse_interval("90s") == timedelta(seconds=90)
    for bad in ("15", "0m", "m", "15 minutes"):
        with pytest.raises(ValueError):
            parse_interval(bad)
