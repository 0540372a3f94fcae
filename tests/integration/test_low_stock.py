"""Low-stock alerts of the built-in shop pipeline, end to end through the micro-batch flow.

One product's inventory events go onto a real Kinesis stream (a moto server process of this
module, with a simulated clock so the windows of January 2026 receive them), its reorder
level comes from the shop's SQLite database (``stock_policies``), the other sources from
their local siblings, and every window runs as a Prefect flow against the session's real
Prefect API. Its stock falls below the level (one row in ``gold.low_stock_alerts``, one
``lakehouse.stock.low`` event), stays low the next window (nothing new), recovers and falls
again (exactly one more of each). The events are read back from the API; a re-run of the
last window adds no row and no event, and sending a commit's events again (a retried task)
records none twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from prefect import flow

from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.dev import shop_db
from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, start_moto_server
from lakehouse.dev.shop import SHOP_YAML
from lakehouse.dev.shop_api import ShopApi
from lakehouse.dev.shop_stream import ShopStream
from lakehouse.dev.simulator import PRODUCTS, simulate
from lakehouse.layers.gold import GoldResult
from lakehouse.storage import open_store, storage_options
from tasks.events import emit_gold_events, event_id

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
PRODUCT = "P-007"
LEVEL = shop_db.reorder_level(7)  # 10
TOKEN = "tok-low-stock-5e1b-never-print"
MOVES = {  # window → (minutes into it, quantity): the product's stock after each event
    1: [(1, 15), (3, -3), (5, -4)],   # 15, 12, 8: falls below 10 at the third event
    2: [(2, -2), (4, 1)],             # 6, 7: stays low
    3: [(1, 10), (6, -5)],            # 17 (recovered), 12
    4: [(2, -3)],                     # 9: falls again (this window's event alone crosses nothing)
}

pytestmark = [pytest.mark.slow, pytest.mark.in_order_shard]  # the shards' balance (tests/shards.py)


def window_end(k: int) -> datetime:
    return START + k * QUARTER


def put_moves(stream: ShopStream, k: int) -> list[dict[str, Any]]:
    """Put window ``k``'s events of the product on the stream, in order; the events."""
    found = [{"event_id": f"E-LOW-{k}-{n}", "product_id": PRODUCT, "kind": "received" if q > 0 else "sold",
              "quantity": q, "event_time": (START + (k - 1) * QUARTER + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")}
             for n, (m, q) in enumerate(MOVES[k])]
    stream.put([(json.dumps(e).encode(), PRODUCT) for e in found])
    return found


def run(k: int) -> Any:
    from flows.microbatch import micro_batch

    return micro_batch(at=window_end(k), interval="15m", return_state=True)


def read(layer: str, name: str) -> pl.DataFrame:
    settings = Settings()
    return pl.read_delta(settings.table_uri(layer, name), storage_options=storage_options(settings))


def stock_events(api: str, since: datetime, *, expect: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The ``lakehouse.stock.low`` events of the product the API holds since ``since``: polled until
    there are ``expect`` of them (they arrive asynchronously), then a little longer, so that one more
    than expected would be seen."""
    body = {"filter": {"occurred": {"since": since.isoformat()}, "event": {"name": ["lakehouse.stock.low"]},
                       "resource": {"id_prefix": [f"lakehouse.gold.low_stock_alerts.{PRODUCT}."]}}, "limit": 50}
    deadline, settled = time.monotonic() + timeout, None
    while True:
        answer = httpx.post(f"{api}/events/filter", json=body)
        answer.raise_for_status()
        found = answer.json()["events"]
        if len(found) >= expect and settled is None:
            settled = time.monotonic() + 2.0
        if (settled is not None and time.monotonic() > settled) or time.monotonic() > deadline:
            return sorted(found, key=lambda e: e["payload"]["crossed_at"])
        time.sleep(0.3)


@pytest.fixture(scope="module")
def clocked() -> Iterator[MotoServer]:
    """A moto server whose Kinesis records arrive at the time the test sets (the demo's)."""
    with start_moto_server(simulated_clock=True) as server:
        yield server


@pytest.fixture
def shop(local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clocked: MotoServer) -> Iterator[ShopStream]:
    """The whole shop's sources, named by the declaration's variables; the stream to put events on."""
    import boto3

    name = f"shop-inventory-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "shop.yaml"
    config.write_text(SHOP_YAML)
    shop_db.create(tmp_path / "shop.db")
    with ShopApi(token=TOKEN) as api:
        for key, value in {"LAKEHOUSE_CONFIG": str(config), "SHOP_DB_URL": shop_db.url(tmp_path / "shop.db"),
                           "SHOP_STREAM": name, "SHOP_STREAM_ENDPOINT": clocked.endpoint_url, "SHOP_API_URL": api.url,
                           "SHOP_API_TOKEN": TOKEN, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                           "AWS_REGION": REGION}.items():
            monkeypatch.setenv(key, value)
        kinesis: Any = boto3.session.Session().client("kinesis", endpoint_url=clocked.endpoint_url, region_name=REGION,
                                                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        yield ShopStream(kinesis, name, start=START).create(shards=1)


def test_a_crossing_alerts_once_staying_low_adds_nothing_and_a_second_crossing_alerts_once_more(
    shop: ShopStream, clocked: MotoServer, prefect_api: str,
) -> None:
    assert (PRODUCTS[7][0], 10) == (PRODUCT, LEVEL)
    since = datetime.now(UTC) - timedelta(seconds=1)
    settings = Settings()
    simulate(open_store(settings.landing_root, settings), start=START, windows=1, orders_per_window=5)  # the catalogue
    alerts: dict[int, pl.DataFrame] = {}
    for k in (1, 2, 3, 4):
        clocked.set_clock(START + (k - 1) * QUARTER + timedelta(minutes=1))
        put_moves(shop, k)
        state = run(k)
        assert state.is_completed(), state.message
        alerts[k] = read("gold", "low_stock_alerts").filter(pl.col("product_id") == PRODUCT).sort("crossed_at")
        if k == 1:
            first = stock_events(prefect_api, since, expect=1)
            assert len(first) == 1, first  # the crossing: one row, one event
        if k in (2, 3):
            assert stock_events(prefect_api, since, expect=2, timeout=4.0) == first  # stayed low, recovered: no event

    assert alerts[1].select("event_id", "stock", "stock_before", "reorder_level").rows() == [("E-LOW-1-2", 8, 12, 10)]
    assert alerts[2].equals(alerts[1])  # stayed low: no new row
    assert alerts[3].equals(alerts[1])  # recovered: no new row
    assert alerts[4].select("event_id", "stock", "stock_before", "reorder_level").rows() == [
        ("E-LOW-1-2", 8, 12, 10), ("E-LOW-4-0", 9, 12, 10)]
    assert alerts[4].get_column("crossed_at").to_list() == [START + timedelta(minutes=5), START + 3 * QUARTER + timedelta(minutes=2)]
    levels = read("gold", "stock_levels").filter(pl.col("product_id") == PRODUCT)
    assert levels.select("stock", "events", "reorder_level", "low").rows() == [(9, 8, 10, True)]

    sent = stock_events(prefect_api, since, expect=2)
    assert len(sent) == 2, sent  # recovered and fell again: exactly one more
    model = next(m for m in load().pipeline("shop").models if m.spec.name == "low_stock_alerts")
    for event, row in zip(sent, alerts[4].to_dicts(), strict=True):
        assert event["event"] == "lakehouse.stock.low"
        assert event["id"] == str(event_id(model, row))  # deterministic: table and key
        assert event["resource"]["prefect.resource.id"] == (
            f"lakehouse.gold.low_stock_alerts.{PRODUCT}.{row['crossed_at'].isoformat()}.{row['event_id']}")
        assert event["resource"]["prefect.resource.name"] == PRODUCT
        assert {k: event["payload"][k] for k in ("product_id", "event_id", "stock", "reorder_level")} == {
            k: row[k] for k in ("product_id", "event_id", "stock", "reorder_level")}
        assert event["payload"]["crossed_at"] == row["crossed_at"].isoformat()

    # the same window again: nothing new to consume, no commit, no row and no event
    version = _version("low_stock_alerts")
    state = run(4)
    assert state.is_completed(), state.message
    assert _version("low_stock_alerts") == version
    assert read("gold", "low_stock_alerts").filter(pl.col("product_id") == PRODUCT).sort("crossed_at").equals(alerts[4])
    # the last commit's events sent again by the task, as a retry of it would: the server records none twice
    result = GoldResult("gold.low_stock_alerts", [PRODUCT], 0, version, [])

    @flow(name="send-again")
    def send_again() -> int:
        return emit_gold_events(settings, model, result)

    assert send_again() == 1  # the commit of window 4 inserted one row: its event is sent again
    assert stock_events(prefect_api, since, expect=3, timeout=5.0) == sent


def _version(name: str) -> int:
    from deltalake import DeltaTable

    settings = Settings()
    return DeltaTable(settings.table_uri("gold", name), storage_options=storage_options(settings)).version()
