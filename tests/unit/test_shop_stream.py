"""The shop's inventory events (lakehouse/dev/shop_stream.py): seeded, deterministic per window, with faults."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from lakehouse.dev.shop_stream import KINDS, NOT_JSON, NOT_UTF8, ShopStream, events

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_window_s_events_depend_on_its_seed_and_number_only() -> None:
    assert events(3, start=START) == events(3, start=START)
    assert events(3, start=START) != events(4, start=START) != events(3, start=START, seed=8)
    window = events(2, start=START, count=30)
    assert len({e["event_id"] for e in window}) == 30 and {e["kind"] for e in window} <= set(KINDS)
    for e in window:
        sign = {"received": 1, "sold": -1}.get(e["kind"])
        assert e["quantity"] != 0 and (sign is None or e["quantity"] * sign > 0)
        assert START <= datetime.fromisoformat(e["event_time"]) < START + timedelta(minutes=15)


def test_a_window_puts_two_events_twice_and_on_request_two_bad_records() -> None:
    stream = ShopStream(None, "s", per_window=5)
    plain, bad = stream.records(1), stream.records(1, bad=True)
    assert len(plain) == 7 and plain[5:] == plain[:2]  # a producer's retries
    assert [json.loads(data)["product_id"] for data, _ in plain[:5]] == [key for _, key in plain[:5]]  # keyed by product
    assert bad[:7] == plain and [data for data, _ in bad[7:]] == [NOT_JSON, NOT_UTF8]
