"""The Kinesis source end to end, against the session's moto server (which serves Kinesis too).

A pipeline declared only in YAML reads the shop's inventory events (lakehouse/dev/shop_stream.py)
from a stream: several windows, with duplicates and bad records, land in silver exactly once
(the bad ones in quarantine, with their reasons); a shard split and a merge mid-run lose and
double nothing, and no child shard is read before its parents are finished; a SIGKILL between
two bronze batches, then the window run again, leaves what a clean run leaves. The windows
run through the engine in this process (``run_window``); only the killed run has a process
of its own. Windows end in the future (arrival times are the moto server's clock): a window
reads every record that arrived before its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, free_port
from lakehouse.dev.shop_stream import NOT_JSON, NOT_UTF8, Put, ShopStream, Throttle
from lakehouse.engine import run_window
from lakehouse.errors import SourceRefused, SourceUnavailable, is_transient
from lakehouse.layers import bronze
from lakehouse.storage import storage_options
from lakehouse.window import Window, window_ending_at
from tests.conftest import environment, new_warehouse

QUARTER = timedelta(minutes=15)
COLUMNS = ["event_id", "product_id", "kind", "quantity", "event_time"]
DECLARATION = """
pipelines:
  stock:
    sources:
      inventory:
        kind: kinesis
        stream: {stream}
        region: us-east-1
        start_at: trim_horizon
        max_batch_records: {batch}
        max_attempts: 3
        timeout: 10
    datasets:
      inventory_events:
        source: inventory
        columns:
          event_id: {{type: string, nullable: false}}
          product_id: {{type: string, nullable: false}}
          kind: string
          quantity: int64
          event_time: timestamp
        key: event_id
        order_by: event_time
        checks:
          - valid_values: kind
            values: [received, sold, adjusted]
"""


@pytest.fixture(scope="session")
def kinesis(moto: MotoServer) -> Any:
    """A boto3 Kinesis client of the session's moto server."""
    import boto3

    return boto3.session.Session().client("kinesis", endpoint_url=moto.endpoint_url, region_name=REGION,
                                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


@pytest.fixture
def stream(kinesis: Any) -> ShopStream:
    """A fresh two-shard stream of the shop's inventory events."""
    return ShopStream(kinesis, f"inventory-{uuid.uuid4().hex[:8]}").create(shards=2)


def window(k: int) -> Window:
    """Window k of a test: it ends at least k quarters from now, after every record the test puts."""
    now = datetime.now(UTC)
    return window_ending_at(now + (k + 1) * QUARTER, QUARTER)


def declared(stream: ShopStream, *, batch: int = 8) -> Any:
    return parse(DECLARATION.format(stream=stream.stream, batch=batch)).pipeline("stock")


def table(layer: str, name: str) -> pl.DataFrame:
    settings = Settings()
    return pl.read_delta(settings.table_uri(layer, name), storage_options=storage_options(settings))


def expected(stream: ShopStream, windows: range) -> pl.DataFrame:
    rows = [e for k in windows for e in stream.window(k)]
    return (pl.DataFrame(rows).select(COLUMNS)
            .with_columns(pl.col("event_time").str.to_datetime(time_zone="UTC", time_unit="us")).sort("event_id"))


def silver_events() -> pl.DataFrame:
    return table("silver", "inventory_events").select(COLUMNS).sort("event_id")


def put_texts(puts: list[Put]) -> Counter[str]:
    return Counter(p.data.decode("utf-8", errors="replace") for p in puts)


def commits(name: str = "inventory_events_raw") -> list[dict[str, Any]]:
    """Bronze's batch commits, oldest first: version and the cursor after it."""
    settings = Settings()
    history = DeltaTable(settings.table_uri("bronze", name), storage_options=storage_options(settings)).history()
    out = [{"version": int(e["version"]), "cursor": json.loads(e["lakehouse.cursor"])}
           for e in history if "lakehouse.cursor" in e]
    return sorted(out, key=lambda c: c["version"])


def test_windows_with_duplicates_land_in_silver_exactly_once(warehouse: str, stream: ShopStream) -> None:
    pipeline = declared(stream)
    puts: list[Put] = []
    for k in (1, 2, 3):
        puts += stream.put_window(k, bad=True)  # 12 events, 2 of them again, 2 bad records
        run = run_window(Settings(), pipeline, window(k))
        assert [(r.rows, r.commits) for r in run.landed] == [(16, 2)]  # bounded: 8 records a commit

    raw = table("bronze", "inventory_events_raw")
    assert Counter(raw.get_column("_raw").to_list()) == put_texts(puts)  # every record put, once
    assert raw.get_column("_source_position").n_unique() == raw.height
    assert set(raw.get_column("_source")) == {f"kinesis:us-east-1/{stream.stream}"}
    assert_frame_equal(silver_events(), expected(stream, range(1, 4)))  # each event once, duplicates collapsed

    rejected = table("quarantine", "inventory_events")
    reasons = Counter(rejected.get_column("_reject_reason").to_list())
    assert reasons == {"malformed: not a parseable JSON object": 3,
                       "encoding: not valid UTF-8; missing product_id: declared nullable: false": 3}, reasons
    assert set(rejected.get_column("_raw")) == {NOT_JSON.decode(), NOT_UTF8.decode("utf-8", errors="replace")}

    again = run_window(Settings(), pipeline, window(3))  # nothing new on the stream: nothing committed
    assert [r.skipped for r in again.landed] == [True]
    assert table("bronze", "inventory_events_raw").height == raw.height


def test_a_split_and_a_merge_mid_run_lose_and_double_nothing_and_children_follow_parents(
    warehouse: str, stream: ShopStream,
) -> None:
    pipeline = declared(stream, batch=4)
    dataset = pipeline.dataset("inventory_events")
    first, other = (s["ShardId"] for s in stream.open_shards())
    puts = stream.put_window(1)
    bronze.ingest(Settings(), dataset, window(1), landing=None)  # pyright: ignore[reportArgumentType]
    records = stream.records(2)
    puts += stream.put(records[:7])  # the parents hold these, unread when the stream is split
    children = stream.split_shard(first)
    puts += stream.put(records[7:])
    bronze.ingest(Settings(), dataset, window(2), landing=None)  # pyright: ignore[reportArgumentType]
    merged = stream.merge_shards(children[1])  # the second child and the other original shard
    puts += stream.put_window(3)
    run_window(Settings(), pipeline, window(3))  # bronze, then silver promotes the three windows at once

    parents = {children[0]: {first}, children[1]: {first}, merged: {children[1], other}}
    assert {p.shard for p in puts} == {first, other, *children, merged}  # every shard got records
    raw = table("bronze", "inventory_events_raw")
    assert Counter(raw.get_column("_raw").to_list()) == put_texts(puts)  # nothing lost, nothing doubled
    assert_frame_equal(silver_events(), expected(stream, range(1, 4)))

    # a child appears in a batch's cursor only once its parents are finished in it …
    for commit in commits():
        cursor = commit["cursor"]
        for child, of in parents.items():
            if child in cursor["shards"] or child in cursor["finished"]:
                assert of <= set(cursor["finished"]), commit
    assert set(commits()[-1]["cursor"]["finished"]) == {first, other, children[1]}
    # … and no record of a child lands in a bronze commit before the last of its parents'
    shard = pl.col("_source_position").str.split(":").list.first()
    landed = pl.read_delta(Settings().table_uri("bronze", "inventory_events_raw"),
                           storage_options=storage_options(Settings())).with_columns(shard.alias("shard"))
    versions = {s: (g.get_column("_batch_id").str.split(":").list.last().cast(pl.Int64).min(),
                    g.get_column("_batch_id").str.split(":").list.last().cast(pl.Int64).max())
                for (s,), g in landed.group_by("shard")}
    for child, of in parents.items():
        assert versions[child][0] >= max(versions[p][1] for p in of), (child, versions)


def test_a_sigkill_between_two_bronze_batches_then_a_rerun_equals_a_clean_run(
    moto: MotoServer, stream: ShopStream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Three windows read by two warehouses from one stream: window 2 of the second is killed.

    Silver promotes in the windows that need it only (the clean warehouse in window 3, the
    killed one in window 2's re-run and window 3): when bronze's batches are promoted does
    not change what silver ends with, and each promotion is a few seconds of the suite.
    """
    text = DECLARATION.format(stream=stream.stream, batch=5)
    pipeline = parse(text).pipeline("stock")
    path = tmp_path / "stock.yaml"
    path.write_text(text)
    clean, killed = (new_warehouse(moto, monkeypatch, name) for name in ("clean", "killed"))

    def use(warehouse: str) -> None:
        monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", warehouse)

    def ingest(k: int) -> None:
        bronze.ingest(Settings(), pipeline.dataset("inventory_events"), window(k), landing=None)  # pyright: ignore[reportArgumentType]

    stream.put_window(1, bad=True)  # each window: 16 records, 4 batches of at most 5
    for warehouse in (clean, killed):
        use(warehouse)
        ingest(1)

    stream.put_window(2, bad=True)
    use(clean)
    ingest(2)
    use(killed)
    before = len(commits())
    env = environment(moto, dict(os.environ), killed.removeprefix("s3://").split("/")[0])
    proc = subprocess.run([sys.executable, "-m", "tests.integration.kinesis_killed", str(path), window(2).end.isoformat(), "2"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert len(commits()) == before + 2  # two batches of window 2 committed, with their cursors
    assert table("bronze", "inventory_events_raw").height == 16 + 10  # the third batch never began
    rerun = run_window(Settings(), pipeline, window(2))
    assert [(r.rows, r.commits) for r in rerun.landed] == [(6, 2)]  # the rest, from the cursor

    stream.put_window(3, bad=True)
    for warehouse in (clean, killed):
        use(warehouse)
        run_window(Settings(), pipeline, window(3))

    tables = (("bronze", "inventory_events_raw"), ("silver", "inventory_events"), ("quarantine", "inventory_events"))
    got = {t: table(*t) for t in tables}  # the killed warehouse's
    use(clean)
    assert_frame_equal(silver_events(), expected(stream, range(1, 4)))
    for t in tables:
        mine, want = got[t], table(*t)
        key = ["_source_position"] if "_source_position" in mine.columns else COLUMNS[:1]
        drop = [c for c in ("_batch_id", "_ingested_at", "_quarantined_at", "_merged_at", "_updated_at") if c in mine.columns]
        assert_frame_equal(mine.drop(drop).sort(key), want.drop(drop).sort(key), check_column_order=False)


def test_a_missing_stream_is_a_terminal_error_that_advances_nothing(warehouse: str, kinesis: Any) -> None:
    missing = ShopStream(kinesis, f"absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(SourceRefused, match=rf"kinesis stream '{missing.stream}' in us-east-1: ListShards: the stream .* does not exist") as refused:
        run_window(Settings(), declared(missing), window(1))
    assert not is_transient(refused.value)
    assert commits() == []


def test_an_unreachable_endpoint_is_transient_after_botocore_retries(warehouse: str, stream: ShopStream) -> None:
    text = DECLARATION.format(stream=stream.stream, batch=8).replace(
        "timeout: 10", f"timeout: 2\n        endpoint_url: http://127.0.0.1:{free_port()}").replace("max_attempts: 3", "max_attempts: 2")
    with pytest.raises(SourceUnavailable, match=r"ListShards failed after retries: Could not connect") as down:
        run_window(Settings(), parse(text).pipeline("stock"), window(1))
    assert is_transient(down.value)
    assert commits() == []


def test_bronze_commits_carry_the_shards_cursor(warehouse: str, stream: ShopStream) -> None:
    puts = stream.put_window(1)
    result = bronze.ingest(Settings(), declared(stream, batch=100).dataset("inventory_events"), window(1), landing=None)  # pyright: ignore[reportArgumentType]
    assert (result.rows, result.commits) == (14, 1)
    last = {}
    for p in puts:
        last[p.shard] = max(int(p.sequence), int(last.get(p.shard, 0)))
    assert commits()[-1]["cursor"] == {"shards": {s: str(n) for s, n in sorted(last.items())}, "finished": []}


def test_start_at_latest_reads_what_arrives_after_the_first_read(warehouse: str, stream: ShopStream) -> None:
    stream.put_window(1)  # before the dataset's first read: skipped
    dataset = parse(DECLARATION.format(stream=stream.stream, batch=100).replace("start_at: trim_horizon", "start_at: latest")
                    ).pipeline("stock").dataset("inventory_events")
    first = bronze.ingest(Settings(), dataset, window(1), landing=None)  # pyright: ignore[reportArgumentType]
    assert first.rows == 0 and commits()[-1]["cursor"]["since"]  # the cursor remembers when reading began
    later = stream.put_window(2)
    second = bronze.ingest(Settings(), dataset, window(2), landing=None)  # pyright: ignore[reportArgumentType]
    assert second.rows == len(later)
    assert Counter(table("bronze", "inventory_events_raw").get_column("_raw").to_list()) == put_texts(later)


def test_throttled_reads_are_retried_by_botocore_and_land_as_a_clean_run_does(
    moto: MotoServer, warehouse: str, stream: ShopStream,
) -> None:
    puts = stream.put_window(1)
    with Throttle(moto.endpoint_url, count=1) as front:  # the first GetRecords: over the shard's throughput
        text = DECLARATION.format(stream=stream.stream, batch=100).replace(
            "timeout: 10", f"timeout: 10\n        endpoint_url: {front.endpoint_url}")
        result = bronze.ingest(Settings(), parse(text).pipeline("stock").dataset("inventory_events"), window(1),
                               landing=None)  # pyright: ignore[reportArgumentType]
    assert front.throttled == {"GetRecords": 1} and front.forwarded["GetRecords"] >= 1
    assert result.rows == len(puts)
    assert Counter(table("bronze", "inventory_events_raw").get_column("_raw").to_list()) == put_texts(puts)

    with Throttle(moto.endpoint_url, count=10) as front:  # more than max_attempts (2): the ingest fails, transient
        throttled = DECLARATION.format(stream=stream.stream, batch=100).replace(
            "timeout: 10", f"timeout: 10\n        endpoint_url: {front.endpoint_url}").replace("max_attempts: 3", "max_attempts: 2")
        stream.put_window(2)
        with pytest.raises(SourceUnavailable, match="GetRecords failed after retries: .*ProvisionedThroughputExceededException") as down:
            bronze.ingest(Settings(), parse(throttled).pipeline("stock").dataset("inventory_events"), window(2),
                          landing=None)  # pyright: ignore[reportArgumentType]
    assert is_transient(down.value) and front.throttled == {"GetRecords": 2}
    assert table("bronze", "inventory_events_raw").height == len(puts)  # nothing advanced


def test_a_stream_being_updated_is_transient(moto: MotoServer, warehouse: str, stream: ShopStream) -> None:
    with Throttle(moto.endpoint_url, operation="ListShards", count=1, code="ResourceInUseException") as front:
        text = DECLARATION.format(stream=stream.stream, batch=100).replace(
            "timeout: 10", f"timeout: 10\n        endpoint_url: {front.endpoint_url}")
        with pytest.raises(SourceUnavailable, match="ListShards failed after retries: ResourceInUseException") as busy:
            bronze.ingest(Settings(), parse(text).pipeline("stock").dataset("inventory_events"), window(1),
                          landing=None)  # pyright: ignore[reportArgumentType]
    assert is_transient(busy.value) and front.throttled == {"ListShards": 1}  # not botocore's to retry: the task's
