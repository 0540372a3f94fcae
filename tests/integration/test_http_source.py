"""The ``http_api`` source against a real loopback HTTP server (lakehouse/dev/shop_api.py).

The server serves the simulator's orders (new orders, later versions, an out-of-order old
version, ties, duplicate records and a file's records twice), published window by window;
the pipeline is declared only in YAML and run by :func:`lakehouse.engine.run_window` on a
local warehouse (real Delta tables). What a clean run leaves is computed once per module;
a run with injected 429/500/slow answers, and a run killed with SIGKILL between two bronze
batches and then run again, must leave the same bronze records and the same silver table.
A 401 fails the run with one line naming the status and the redacted URL and advances
nothing, and no secret appears anywhere.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from lakehouse.commit import latest_metadata
from lakehouse.config import Settings
from lakehouse.declaration.build import parse
from lakehouse.dev.shop_api import ShopApi, shop_orders
from lakehouse.engine import run_window
from lakehouse.errors import SourceRefused, SourceUnavailable, is_transient
from lakehouse.layers import bronze
from lakehouse.pipeline import Pipeline
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
WINDOWS = 3
TOKEN = "tok-5c81f0e2-a9d4-shop-api-never-print"
"""The bearer token the server requires: a string no output may contain."""
TOKEN_ENV = "LAKEHOUSE_TEST_SHOP_API_TOKEN"
ORDERS = shop_orders(WINDOWS, start=START)
"""Each window's order records (28, 25 and 26 of them)."""
COLUMNS = ("order_id", "customer_id", "status", "ordered_at", "updated_at")
BRONZE = ("_raw", "_source_position", "_source_version", "_line", "_landed_at")
"""What bronze keeps of a record, but the batch it came in, when it was appended and the server's URL."""

YAML = """
pipelines:
  shop_api:
    sources:
      api:
        kind: http_api
        base_url: BASE_URL
        auth: AUTH
        records: data
        pagination: {style: STYLE, page_size: 4, page_size_param: limit}
        incremental: {field: updated_at, param: updated_since}
        max_batch_records: 10
        timeout: 0.5
        retries: 3
        backoff: 0.01
        max_wait: 1
    datasets:
      orders:
        source: api
        columns:
          order_id: string
          customer_id: string
          status: string
          ordered_at: timestamp
          updated_at: timestamp
        key: order_id
        order_by: updated_at
"""
BEARER = f"{{type: bearer, token: {{env: {TOKEN_ENV}}}}}"


def declare(api: ShopApi, *, style: str = "cursor", auth: str = BEARER) -> str:
    return YAML.replace("BASE_URL", api.url).replace("STYLE", style).replace("AUTH", auth)


def pipeline_of(yaml: str) -> Pipeline:
    return parse(yaml).pipeline("shop_api")


def window(k: int) -> Any:
    return window_ending_at(START + k * QUARTER, QUARTER)


def run(api: ShopApi, pipeline: Pipeline, k: int) -> None:
    """Window ``k``: its orders reach the API, then the window runs."""
    if len(api.published) < sum(map(len, ORDERS[:k])):
        api.publish(ORDERS[k - 1])
    run_window(Settings(), pipeline, window(k))


def silver_orders() -> pl.DataFrame:
    return pl.read_delta(Settings().table_uri("silver", "orders")).select(COLUMNS).sort("order_id")


def bronze_records() -> pl.DataFrame:
    return pl.read_delta(Settings().table_uri("bronze", "orders_raw")).select(BRONZE).sort("_source_position", "_line")


def bronze_table() -> DeltaTable:
    return DeltaTable(Settings().table_uri("bronze", "orders_raw"))


def expected_silver(records: list[dict[str, Any]]) -> pl.DataFrame:
    """The latest version of each order: the last one the API serves ((updated_at, arrival) order)."""
    latest = {r["order_id"]: r for r in records}
    frame = pl.DataFrame([{c: r[c] for c in COLUMNS} for r in latest.values()])
    return frame.with_columns(
        pl.col("ordered_at", "updated_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC"),
    ).sort("order_id")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopApi]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ShopApi(token=TOKEN) as server:
        yield server


@dataclass(frozen=True)
class Clean:
    """What an uninterrupted run of the windows left."""

    silver: pl.DataFrame
    bronze: pl.DataFrame
    published: list[dict[str, Any]]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """Windows 1..3 run in order against a server that never fails, once per module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path_factory.mktemp("clean") / "warehouse"))
        mp.delenv("LAKEHOUSE_LANDING", raising=False)
        mp.setenv(TOKEN_ENV, TOKEN)
        with ShopApi(token=TOKEN) as server:
            pipeline = pipeline_of(declare(server))
            for k in range(1, WINDOWS + 1):
                run(server, pipeline, k)
            assert 429 not in server.answers and 500 not in server.answers
            return Clean(silver_orders(), bronze_records(), server.published)


def test_windows_of_updates_and_duplicates_reach_silver_exactly_once_reading_only_what_changed(clean: Clean) -> None:
    published = clean.published
    assert len(published) == sum(map(len, ORDERS))
    assert_frame_equal(clean.silver, expected_silver(published))  # every order once, at its latest version
    assert clean.silver.get_column("order_id").n_unique() == clean.silver.height == len({r["order_id"] for r in published})
    # incremental: no record was read twice (a record that the API holds twice lands twice, never more)
    landed = clean.bronze.group_by("_raw").len()
    held = pl.DataFrame({"_raw": [bronze_text(r) for r in published]}).group_by("_raw").len()
    over = landed.join(held, on="_raw", how="left", suffix="_held").filter(pl.col("len") > pl.col("len_held").fill_null(0))
    assert over.is_empty(), over
    assert clean.bronze.height < len(published)  # the old version sent late, behind the watermark, is not asked for
    # positions name the page, in reading order, and never repeat
    positions = clean.bronze.get_column("_source_position").unique().sort().to_list()
    assert positions[0].startswith("page 0000000001 GET orders?limit=4") and len(positions) == len(set(positions))
    assert any("updated_since=2026-01-01T00%3A" in p for p in positions)


def bronze_text(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("style", ["page", "offset"])
def test_page_and_offset_pagination_land_what_cursor_pagination_lands(style: str, api: ShopApi, clean: Clean, local_warehouse: str,
                                                                      tmp_path: Path) -> None:
    pipeline = pipeline_of(declare(api, style=style))
    for k in range(1, WINDOWS + 1):
        api.publish(ORDERS[k - 1])
        bronze.ingest(Settings(), pipeline.dataset("orders"), window(k), landing=LocalStore(tmp_path / "landing"))
    got = bronze_records()
    assert sorted(got.get_column("_raw").to_list()) == sorted(clean.bronze.get_column("_raw").to_list())
    assert any(f"&{'page=2' if style == 'page' else 'offset=4'}" in p for p in got.get_column("_source_position").to_list())


def test_429_500_and_slow_answers_are_retried_and_give_the_clean_result(api: ShopApi, clean: Clean, local_warehouse: str,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    pipeline = pipeline_of(declare(api))
    caplog.set_level(logging.WARNING, logger="lakehouse.sources.http")
    api.fail(500, times=2)
    api.fail(429, retry_after="1")  # honoured: max_wait is 1 s
    api.slow(1.5, after=2)  # beyond the 0.5 s timeout, on the third page
    run(api, pipeline, 1)
    api.fail(503, after=1)
    api.slow(0.2, times=3)  # slow but inside the timeout
    run(api, pipeline, 2)
    api.fail(502)
    run(api, pipeline, 3)
    assert {500, 429, 503, 502} <= set(api.answers)
    assert_frame_equal(silver_orders(), clean.silver)
    assert_frame_equal(bronze_records(), clean.bronze)
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert any("answered 429 Too Many Requests; retry" in m and "in 1.00 s" in m for m in retries), retries
    assert any("ReadTimeout" in m for m in retries), retries


def test_an_api_down_beyond_its_retries_is_unavailable_a_transient_error_and_nothing_advances(api: ShopApi, local_warehouse: str) -> None:
    pipeline = pipeline_of(declare(api))
    run(api, pipeline, 1)
    version = bronze_table().version()
    api.publish(ORDERS[1])
    with api.failing(500), pytest.raises(SourceUnavailable) as down:
        run_window(Settings(), pipeline, window(2))
    assert is_transient(down.value)
    assert f"GET {api.url}/orders?limit=4&updated_since=" in str(down.value) and "answered 500 Internal Server Error 4 times" in str(down.value)
    assert bronze_table().version() == version


def test_a_401_fails_the_run_with_one_line_naming_status_and_redacted_url_and_advances_nothing(
    api: ShopApi, local_warehouse: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    pipeline = pipeline_of(declare(api))
    run(api, pipeline, 1)
    table = bronze_table()
    version, cursor, silver = table.version(), latest_metadata(table, bronze.CURSOR_KEY), silver_orders()
    api.publish(ORDERS[1])
    with api.failing(401), pytest.raises(SourceRefused) as refused:
        run_window(Settings(), pipeline, window(2))
    message = str(refused.value)
    assert "\n" not in message and not is_transient(refused.value)
    assert message.startswith(f"sources.api (orders): GET {api.url}/orders?limit=4&updated_since=2026-01-01T00%3A")
    assert "answered 401 Unauthorized (check the source's auth and its secret): nothing was committed" in message
    assert bronze_table().version() == version and latest_metadata(bronze_table(), bronze.CURSOR_KEY) == cursor
    assert_frame_equal(silver_orders(), silver)

    # an API key in a query parameter, and a wrong one: the URL shown has no key
    monkeypatch.setenv("LAKEHOUSE_TEST_SHOP_API_KEY", "key-0b7e-wrong-never-print")
    keyed = pipeline_of(declare(api, auth="{type: api_key, key: {env: LAKEHOUSE_TEST_SHOP_API_KEY}, query: api_key}"))
    with pytest.raises(SourceRefused) as wrong:
        run_window(Settings(), keyed, window(2))
    assert "&api_key=REDACTED answered 401 Unauthorized" in str(wrong.value)
    assert any("key-0b7e-wrong-never-print" in p for p in api.requests)  # it was sent: the test could fail
    out, err = capfd.readouterr()
    for text in (str(wrong.value), message, caplog.text, out, err):
        assert "key-0b7e-wrong-never-print" not in text and TOKEN not in text


def test_no_secret_reaches_output_logs_bronze_commits_or_cursors(
    api: ShopApi, local_warehouse: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LAKEHOUSE_TEST_SHOP_API_KEY", TOKEN)  # the right key, sent as a query parameter: in every URL
    pipeline = pipeline_of(declare(api, auth="{type: api_key, key: {env: LAKEHOUSE_TEST_SHOP_API_KEY}, query: api_key}"))
    api.fail(500)
    run(api, pipeline, 1)
    run(api, pipeline, 2)
    assert sum(f"api_key={TOKEN}" in p for p in api.requests) > 3  # it went over the wire
    assert any("HTTP Request: GET" in r.getMessage() for r in caplog.records)  # the client logged its URLs
    out, err = capfd.readouterr()
    assert TOKEN not in caplog.text and TOKEN not in out and TOKEN not in err
    frame = pl.read_delta(local_warehouse + "/bronze/orders_raw")
    for column in frame.columns:
        assert not frame.get_column(column).cast(pl.String).str.contains(TOKEN, literal=True).any(), column
    assert "api_key=REDACTED" in frame.get_column("_source_position").to_list()[0]
    for path in Path(local_warehouse).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path  # _delta_log (commit metadata, cursors) included


def test_a_kill_between_two_bronze_batches_then_a_rerun_equals_a_clean_run(api: ShopApi, clean: Clean, local_warehouse: str,
                                                                         tmp_path: Path) -> None:
    config = tmp_path / "lakehouse.yaml"
    config.write_text(declare(api))
    api.publish(ORDERS[0])
    code = (
        "import sys; from datetime import datetime; from lakehouse.config import Settings; "
        "from lakehouse.declaration import load; from lakehouse.engine import run_window; "
        "from lakehouse.window import window_ending_at, parse_interval; "
        "run_window(Settings(), load(sys.argv[1]).pipeline('shop_api'), "
        "window_ending_at(datetime.fromisoformat(sys.argv[2]), parse_interval('15m')))"
    )
    env = {**os.environ, "LAKEHOUSE_CRASH_AT": "bronze.batch_committed", "LAKEHOUSE_CRASH_AT_HIT": "2"}
    proc = subprocess.run([sys.executable, "-c", code, str(config), window(1).end.isoformat()], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-3000:]
    cursor = latest_metadata(bronze_table(), bronze.CURSOR_KEY)
    assert cursor is not None and cursor["listing"] is not None and cursor["pages"] == 4  # killed inside a listing
    assert bronze_records().height == 16  # two batches of two pages of four
    assert TOKEN not in proc.stdout + proc.stderr

    pipeline = pipeline_of(declare(api))
    for k in range(1, WINDOWS + 1):  # window 1 again, then the next ones
        run(api, pipeline, k)
    assert_frame_equal(silver_orders(), clean.silver)
    assert_frame_equal(bronze_records(), clean.bronze)  # the same pages, each landed once


def test_a_record_written_later_at_the_watermark_is_landed_and_one_answered_again_there_is_not(
    api: ShopApi, local_warehouse: str, tmp_path: Path,
) -> None:
    pipeline = pipeline_of(declare(api))
    at = "2026-01-01T00:05:00Z"
    first = [{"order_id": "O-1", "customer_id": "C-1", "status": "placed", "ordered_at": at, "updated_at": at},
             {"order_id": "O-2", "customer_id": "C-2", "status": "placed", "ordered_at": at, "updated_at": at}]
    api.publish(first)
    landing = LocalStore(tmp_path / "landing")
    bronze.ingest(Settings(), pipeline.dataset("orders"), window(1), landing=landing)
    # the API answers updated_since inclusively: O-1 and O-2 come back, beside O-3 of the same second
    api.publish([{**first[0], "order_id": "O-3"}])
    second = bronze.ingest(Settings(), pipeline.dataset("orders"), window(2), landing=landing)
    assert any("updated_since=2026-01-01T00%3A05%3A00Z" in r for r in api.requests[-1:])
    assert second.rows == 1
    assert bronze.ingest(Settings(), pipeline.dataset("orders"), window(2), landing=landing).skipped  # nothing new: no commit
    ids = sorted(pl.read_delta(Settings().table_uri("bronze", "orders_raw")).get_column("_raw").str.json_path_match("$.order_id"))
    assert ids == ["O-1", "O-2", "O-3"]


def test_a_connection_refused_is_retried_then_unavailable(local_warehouse: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ShopApi(token=TOKEN) as gone:
        yaml = declare(gone)
    # the server is stopped: its port refuses connections
    with pytest.raises(SourceUnavailable) as down:
        bronze.ingest(Settings(), pipeline_of(yaml).dataset("orders"), window(1), landing=LocalStore(tmp_path / "landing"))
    assert "failed 4 times; last: ConnectError" in str(down.value) and is_transient(down.value)
    assert TOKEN not in str(down.value)
