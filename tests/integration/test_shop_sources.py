"""The built-in shop pipeline (lakehouse/pipelines/shop.yaml) with every source it declares.

Its landing files come from the simulator, its customers from the shop's SQLite database
(lakehouse/dev/shop_db.py), its inventory events from a Kinesis stream
(lakehouse/dev/shop_stream.py) on a moto server of this module with a simulated clock, so the
windows of January 2026 receive their events, as in `lakehouse demo`, and its shipments from
the shop's HTTP API (lakehouse/dev/shop_api.py, lakehouse/dev/shop_shipments.py) on a
loopback port. The connections come from the environment through the declaration's
``${VAR:-default}`` values (``SHOP_DB_URL``, ``SHOP_STREAM``, ``SHOP_STREAM_ENDPOINT``,
``SHOP_API_URL``) and the API's token by reference (``SHOP_API_TOKEN``). Several windows run
through the engine (``run_window``) on a local warehouse: every source record lands in silver
exactly once at its latest version or in quarantine with its reason, a soft-deleted customer
leaves silver, and the files' datasets still promote beside them. `lakehouse run` without the
database, or with the API unreachable or refusing the token, is one line naming the source,
and nothing is written.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.dev import shop_db
from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, start_moto_server
from lakehouse.dev.shop import SHOP_YAML
from lakehouse.dev.shop_api import ShopApi
from lakehouse.dev.shop_shipments import distinct, shipments
from lakehouse.dev.shop_stream import NOT_JSON, ShopStream
from lakehouse.dev.simulator import simulate
from lakehouse.engine import run_window
from lakehouse.storage import open_store, storage_options
from lakehouse.window import Window, window_ending_at

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
WINDOWS = 3
EVENTS = ["event_id", "product_id", "kind", "quantity", "event_time"]
SHIPMENTS = ["shipment_id", "order_id", "carrier", "status", "shipped_at", "updated_at"]
TOKEN = "tok-3f9a-shop-api-in-the-shop-never-print"


def window(k: int) -> Window:
    return window_ending_at(START + k * QUARTER, QUARTER)


def read(settings: Settings, layer: str, name: str) -> pl.DataFrame:
    return pl.read_delta(settings.table_uri(layer, name), storage_options=storage_options(settings))


def customer_rows(database: Any) -> pl.DataFrame:
    """Every row of the shop database's customers table as it is now, soft-deleted ones included."""
    import sqlalchemy as sa

    with database.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(shop_db.customers)).mappings()]
    return pl.DataFrame(rows).with_columns(pl.col("is_deleted").cast(pl.Boolean))


def scd2_versions(snapshots: list[pl.DataFrame]) -> pl.DataFrame:
    """The SCD2 versions of the customers from snapshots of their table, in DuckDB (independent of the engine).

    The distinct rows of the snapshots are the records a watermark reader sees (one per
    ``updated_at``); a record whose (deleted, name, email, segment) differs from the record
    before it opens a version, unless it is a delete, which only closes the version before it.
    """
    records = pl.concat(snapshots).unique()  # noqa: F841  (read by DuckDB below)
    return duckdb.sql("""
        WITH marked AS (
          SELECT *, (is_deleted, CASE WHEN NOT is_deleted THEN (name, email, segment) END)
                    IS DISTINCT FROM lag((is_deleted, CASE WHEN NOT is_deleted THEN (name, email, segment) END))
                    OVER (PARTITION BY customer_id ORDER BY updated_at) AS opens
          FROM records),
        openers AS (
          SELECT *, lead(updated_at) OVER (PARTITION BY customer_id ORDER BY updated_at) AS valid_to
          FROM marked WHERE opens)
        SELECT customer_id, updated_at AS valid_from, valid_to, valid_to IS NULL AS is_current
        FROM openers WHERE NOT is_deleted ORDER BY customer_id, valid_from
    """).pl()


@pytest.fixture(scope="module")
def clocked() -> Iterator[MotoServer]:
    """A moto server whose Kinesis records arrive at the time the test sets (the demo's)."""
    with start_moto_server(simulated_clock=True) as server:
        yield server


@pytest.fixture
def stream(clocked: MotoServer, monkeypatch: pytest.MonkeyPatch) -> ShopStream:
    import boto3

    name = f"shop-inventory-{uuid.uuid4().hex[:8]}"
    for key, value in {"SHOP_STREAM": name, "SHOP_STREAM_ENDPOINT": clocked.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                       "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    kinesis: Any = boto3.session.Session().client("kinesis", endpoint_url=clocked.endpoint_url, region_name=REGION,
                                                  aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    return ShopStream(kinesis, name, start=START).create(shards=2)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopApi]:
    """The shop's API on a loopback port, named by the declaration's ``${SHOP_API_URL}``, its token by ``SHOP_API_TOKEN``."""
    with ShopApi(token=TOKEN) as server:
        monkeypatch.setenv("SHOP_API_URL", server.url)
        monkeypatch.setenv("SHOP_API_TOKEN", TOKEN)
        yield server


def test_windows_of_the_whole_shop_land_every_source_record_once_and_close_the_deleted_customers(
    local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clocked: MotoServer, stream: ShopStream,
    api: ShopApi, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    database = shop_db.create(tmp_path / "shop.db")
    monkeypatch.setenv("SHOP_DB_URL", shop_db.url(tmp_path / "shop.db"))
    pipeline = parse(SHOP_YAML, path="shop.yaml").pipeline("shop")
    assert {ds.kind for ds in pipeline.datasets} == {"landing_files", "sql", "kinesis", "http_api"}
    settings = Settings()
    landing = open_store(settings.landing_root, settings)
    steps, runs, puts, snapshots = [], [], [], []  # the rows each window's reader saw
    for k in range(1, WINDOWS + 1):
        simulate(landing, start=window(k).start, windows=1, orders_per_window=8)
        steps.append(shop_db.step(database, window(k).start, window(k).end))
        clocked.set_clock(window(k).start + timedelta(minutes=1))
        puts += stream.put_window(k, bad=k == 2)  # two events put twice each window; two bad records in window 2
        api.publish(shipments(window(k).start, orders_per_window=8), resource="shipments")  # one of them twice
        runs.append(run_window(settings, pipeline, window(k)))
        snapshots.append(customer_rows(database))

    customers = read(settings, "silver", "customers").with_columns(
        pl.col("updated_at", "valid_from", "valid_to").dt.replace_time_zone(None)
    )
    live = pl.DataFrame(shop_db.live_customers(database)).drop("is_deleted", "updated_at").sort("customer_id")
    current = customers.filter("is_current").sort("customer_id")
    assert current.select(live.columns).equals(live)  # each live customer's current version holds its latest values
    deleted = {key for s in steps for key in s["customers"].deleted}
    assert len(deleted) == WINDOWS and not deleted & set(current.get_column("customer_id"))
    # a soft delete closes the current version and keeps the history; a key deleted before the reader
    # first saw it (window 1 reads the database after the window changed it) has no version to close
    seen = set(snapshots[0].filter(~pl.col("is_deleted")).get_column("customer_id"))
    assert len(deleted & seen) == WINDOWS - 1 and deleted & seen <= set(customers.get_column("customer_id"))
    # every version, as recomputed from what the database held after each window (SCD2 on name, email, segment)
    expected = scd2_versions(snapshots)
    got = customers.select(expected.columns).sort("customer_id", "valid_from")
    assert got.equals(expected), (got, expected)
    assert expected.filter(pl.col("customer_id").is_in(list(deleted & seen))).get_column("valid_to").null_count() == 0
    assert customers.height > live.height  # tracked changes opened versions
    raw = read(settings, "bronze", "customers_raw")
    assert raw.get_column("_source_position").n_unique() == raw.height  # no row read twice
    merged = {m.table: m for m in runs[-1].merged}
    assert merged["silver.customers"].counts is not None and merged["silver.customers"].counts.deleted == 1

    # every event put once in bronze, each distinct event once in silver, the bad ones quarantined with reasons
    events = read(settings, "bronze", "inventory_events_raw")
    assert Counter(events.get_column("_raw").to_list()) == Counter(p.data.decode("utf-8", errors="replace") for p in puts)
    expected = (pl.DataFrame([e for k in range(1, WINDOWS + 1) for e in stream.window(k)]).select(EVENTS)
                .with_columns(pl.col("event_time").str.to_datetime(time_zone="UTC", time_unit="us")).sort("event_id"))
    assert read(settings, "silver", "inventory_events").select(EVENTS).sort("event_id").equals(expected)
    reasons = Counter(read(settings, "quarantine", "inventory_events").get_column("_reject_reason").to_list())
    assert reasons == {"malformed: not a parseable JSON object": 1,
                       "encoding: not valid UTF-8; missing product_id: declared nullable: false; "
                       "missing event_time: declared nullable: false": 1}, reasons
    assert [r.rows for r in runs[1].landed if r.table == "bronze.inventory_events_raw"] == [16]
    assert NOT_JSON.decode() in set(read(settings, "quarantine", "inventory_events").get_column("_raw"))
    assert read(settings, "silver", "orders").height > 0 and read(settings, "gold", "daily_sales").height > 0

    # category sales equal a recomputation in Polars from silver: each order line in the category of its
    # product's version and the segment of its customer's version valid at its order's time ('unknown' where
    # the database held no version of the customer then: a deleted one, the simulator's tie customer)
    def valid_at(frame: pl.DataFrame, versions: pl.DataFrame, key: str, value: str) -> pl.DataFrame:
        at = versions.select(key, pl.col(value).alias(value + "_at"), "valid_from", "valid_to")
        found = frame.join(at, on=key).filter(
            pl.col("valid_from") <= pl.col("ordered_at"), pl.col("valid_to").is_null() | (pl.col("ordered_at") < pl.col("valid_to")))
        return frame.join(found.select("order_id", "line_no", value + "_at"), on=["order_id", "line_no"], how="left")

    sold = (read(settings, "silver", "order_items").join(
        read(settings, "silver", "orders").filter(pl.col("status") != "cancelled")
        .select("order_id", "customer_id", "ordered_at", "order_date"), on="order_id"))
    sold = valid_at(sold, read(settings, "silver", "product_history"), "product_id", "category")
    sold = valid_at(sold, read(settings, "silver", "customers"), "customer_id", "segment")
    want = (sold.with_columns(pl.coalesce("category_at", "category").alias("category"), pl.col("segment_at").fill_null("unknown").alias("segment"))
            .group_by("order_date", "category", "segment")
            .agg(pl.col("quantity").sum(), (pl.col("quantity") * pl.col("unit_price") - pl.col("discount")).sum().alias("revenue"),
                 pl.col("order_id").n_unique().cast(pl.Int64).alias("orders"))
            .sort("order_date", "category", "segment"))
    got = read(settings, "gold", "category_sales").select(want.columns).sort("order_date", "category", "segment")
    assert got.with_columns(pl.col("revenue").cast(pl.Decimal(18, 2))).equals(want.with_columns(pl.col("revenue").cast(pl.Decimal(18, 2)))), (got, want)
    assert {"unknown", "new", "regular", "vip"} & set(got.get_column("segment")) > {"unknown"}  # customers were found

    # stock policies: each product's current version holds the database's level (one changes a window); gold's
    # stock levels and low-stock crossings equal a recomputation in Polars from silver (the level valid at each event)
    policies = read(settings, "silver", "stock_policies")
    want_levels = pl.DataFrame(shop_db.policies(database)).select("product_id", "reorder_level").sort("product_id")
    assert policies.filter("is_current").select(want_levels.columns).sort("product_id").equals(want_levels)
    # a version per level change the reader saw after its first read (window 1 reads after window 1's change)
    assert policies.height == want_levels.height + sum(len(s["stock_policies"].updated) for s in steps[1:])
    moves = (read(settings, "silver", "inventory_events").sort("product_id", "event_time", "event_id")
             .with_columns(stock=pl.col("quantity").fill_null(0).cum_sum().over("product_id"))
             .with_columns(stock_before=pl.col("stock").shift(1).over("product_id").fill_null(0)))
    levels = (moves.group_by("product_id").agg(pl.col("quantity").sum().alias("stock"), pl.len().cast(pl.Int64).alias("events"))
              .join(policies.filter("is_current").select("product_id", "reorder_level"), on="product_id", how="left")
              .sort("product_id"))
    assert read(settings, "gold", "stock_levels").select(levels.columns).sort("product_id").equals(levels)
    crossings = (moves.join(policies.select("product_id", "reorder_level", "valid_from", "valid_to"), on="product_id")
                 .filter(pl.col("valid_from") <= pl.col("event_time"),
                         pl.col("valid_to").is_null() | (pl.col("event_time") < pl.col("valid_to")),
                         pl.col("stock_before") >= pl.col("reorder_level"), pl.col("stock") < pl.col("reorder_level"))
                 .select("product_id", pl.col("event_time").alias("crossed_at"), "event_id", "stock", "stock_before", "reorder_level")
                 .sort("product_id", "crossed_at", "event_id"))
    alerts = read(settings, "gold", "low_stock_alerts").sort("product_id", "crossed_at", "event_id")
    assert crossings.height >= 1 and alerts.select(crossings.columns).equals(crossings), (alerts, crossings)

    # every shipment the API served landed once in bronze (the duplicate twice), each once in silver at its latest
    # version (delivered after in transit), its order found in silver.orders: nothing quarantined
    published = api.published_of("shipments")
    assert any(r["status"] == "delivered" and any(
        p["shipment_id"] == r["shipment_id"] and p["status"] == "in_transit" for p in published) for r in published)
    assert len(distinct(published)) < len(published)
    landed = read(settings, "bronze", "shipments_raw").get_column("_raw").str.json_decode().struct.unnest()
    assert Counter(map(str, landed.select(SHIPMENTS).rows())) == Counter(str(tuple(r[c] for c in SHIPMENTS)) for r in published)
    latest = {r["shipment_id"]: r for r in published}  # served by updated_at: the last is the latest
    expected_shipments = (pl.DataFrame(list(latest.values())).select(SHIPMENTS)
                          .with_columns(pl.col("shipped_at", "updated_at").str.to_datetime(time_zone="UTC", time_unit="us"))
                          .sort("shipment_id"))
    assert read(settings, "silver", "shipments").select(SHIPMENTS).sort("shipment_id").equals(expected_shipments)
    assert not (Path(local_warehouse) / "quarantine" / "shipments").exists() or \
        read(settings, "quarantine", "shipments").is_empty()
    assert 401 not in api.answers  # the token was sent (as a bearer header)
    out, err = capfd.readouterr()
    assert TOKEN not in caplog.text + out + err
    for path in Path(local_warehouse).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_run_without_the_shop_database_is_one_line_naming_the_source_and_writes_nothing(
    local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(SHOP_YAML)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(config))  # --config exports it: restored after the test
    monkeypatch.setenv("SHOP_DB_URL", shop_db.url(tmp_path / "absent.db"))
    settings = Settings()
    simulate(open_store(settings.landing_root, settings), start=START, windows=1)
    out = CliRunner().invoke(app, ["run", "--at", "2026-01-01T00:15:00Z", "--config", str(config)])
    assert out.exit_code == 1, out.output
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "source shop_db unavailable (customers)" in lines[0], out.stderr
    assert "absent.db does not exist" in lines[0]
    assert not (Path(local_warehouse) / "bronze").exists()  # no dataset advanced, files' ones included


@pytest.mark.parametrize("fault", ["unreachable", "401"])
def test_run_with_the_api_down_or_refusing_the_token_is_one_line_naming_the_source_and_writes_nothing(
    fault: str, local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: ShopApi,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], stream: ShopStream,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "shop.yaml"
    config.write_text(SHOP_YAML)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(config))
    shop_db.create(tmp_path / "shop.db")
    monkeypatch.setenv("SHOP_DB_URL", shop_db.url(tmp_path / "shop.db"))  # the database and the stream are there: the API is the fault
    settings = Settings()
    simulate(open_store(settings.landing_root, settings), start=START, windows=1)
    api.publish(shipments(START, orders_per_window=8), resource="shipments")
    if fault == "unreachable":
        with ShopApi(token=TOKEN) as gone:
            monkeypatch.setenv("SHOP_API_URL", gone.url)  # stopped at the end of the block: its port refuses connections
    else:
        monkeypatch.setenv("SHOP_API_TOKEN", "tok-wrong-7d2e-never-print")
    out = CliRunner().invoke(app, ["run", "--at", "2026-01-01T00:15:00Z", "--config", str(config)])
    assert out.exit_code == 1, out.output
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("source shop_api unavailable (shipments): sources.shop_api (shipments): GET http://127.0.0.1:"), out.stderr
    if fault == "unreachable":
        assert "/shipments?limit=1 failed 2 times; last: ConnectError" in lines[0], lines[0]
    else:
        assert "/shipments?limit=1 answered 401 Unauthorized (check the source's auth and its secret)" in lines[0], lines[0]
        assert api.answers[-1] == 401  # the wrong token reached the API: the test could fail
    assert not (Path(local_warehouse) / "bronze").exists()  # no dataset advanced, the files' and the database's included
    captured = capfd.readouterr()
    for text in (out.output, caplog.text, captured.out, captured.err):
        assert TOKEN not in text and "tok-wrong-7d2e-never-print" not in text


@pytest.mark.parametrize("fault", ["no credentials", "no stream"])
def test_run_without_aws_credentials_or_without_the_stream_is_one_line_naming_the_source_and_writes_nothing(
    fault: str, local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: ShopApi, stream: ShopStream,
) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(SHOP_YAML)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(config))
    shop_db.create(tmp_path / "shop.db")
    monkeypatch.setenv("SHOP_DB_URL", shop_db.url(tmp_path / "shop.db"))  # the database and the API are there
    settings = Settings()
    simulate(open_store(settings.landing_root, settings), start=START, windows=1)
    if fault == "no credentials":  # nothing botocore could find: no keys, no profile, no instance role
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    else:
        monkeypatch.setenv("SHOP_STREAM", f"shop-absent-{uuid.uuid4().hex[:8]}")
    out = CliRunner().invoke(app, ["run", "--at", "2026-01-01T00:15:00Z", "--config", str(config)])
    assert out.exit_code == 1, out.output
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("source shop_stream unavailable (inventory_events): kinesis stream "), out.stderr
    expected = "no AWS credentials found (NoCredentialsError)" if fault == "no credentials" else "the stream (or shard) does not exist"
    assert f"ListShards: {expected}" in lines[0], lines[0]
    assert not (Path(local_warehouse) / "bronze").exists()  # no dataset advanced, the files' included
