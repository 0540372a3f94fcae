"""The shape every cursor-read source shares: declared by ``kind:``, batches bounded by the
declaration, the cursor committed with each batch, a re-run a no-op, silver exactly once.

The source here is a feed of numbered records held in memory: the smallest system that has
a cursor (the number of the last record read), so what is tested is bronze's side.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl
import pytest
from deltalake import DeltaTable

from lakehouse.commit import latest_metadata
from lakehouse.config import Settings
from lakehouse.declaration import sources as declared
from lakehouse.declaration.build import parse
from lakehouse.errors import ConfigError
from lakehouse.layers import bronze, silver
from lakehouse.sources import base
from lakehouse.specs import Dataset
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
FEED: list[dict[str, Any]] = []
"""The fake system: records in arrival order (a record's position is its index + 1)."""


class FeedDecl(declared.RecordSourceDecl):
    kind: Literal["feed"] = "feed"
    name: str = "feed"


@dataclass(frozen=True)
class FeedCursor(base.Cursor):
    last: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"last": self.last}


class Feed(base.RecordSource[FeedCursor]):
    kind = "feed"

    def start(self) -> FeedCursor:
        return FeedCursor()

    def cursor_from(self, data: dict[str, Any]) -> FeedCursor:
        return FeedCursor(int(data["last"]))

    def read(self, cursor: FeedCursor, *, limit: base.Limit, until: datetime) -> Iterator[base.Batch[FeedCursor]]:
        last = cursor.last
        while last < len(FEED):
            chunk = FEED[last:last + limit.records]
            positions = pl.Series([f"feed:{last + i + 1}" for i in range(len(chunk))])
            records = base.records([json.dumps(r) for r in chunk], position=positions, landed_at=until)
            last += len(chunk)
            yield base.Batch(records, FeedCursor(last), {"records": len(chunk)})


YAML = """
pipelines:
  p:
    sources:
      events: {kind: feed, max_batch_records: 4}
    datasets:
      items:
        source: events
        columns: {item_id: string, qty: int64, updated_at: timestamp}
        key: item_id
        order_by: updated_at
"""


@pytest.fixture
def feed() -> Iterator[Dataset]:
    declared.register(FeedDecl)
    base.register("feed")(lambda dataset, settings: Feed())
    FEED.clear()
    try:
        yield parse(YAML).pipeline("p").dataset("items")
    finally:
        declared.KINDS.pop("feed")
        base._FACTORIES.pop("feed")  # pyright: ignore[reportPrivateUsage]


def add(n: int, *, qty: int = 1) -> None:
    at, first = START.isoformat().replace("+00:00", "Z"), len(FEED)
    FEED.extend([{"item_id": f"I{first + i}", "qty": qty, "updated_at": at} for i in range(n)])


def test_a_declared_kind_reads_its_resource_in_batches_with_the_cursor_in_each_commit(tmp_path, monkeypatch, feed: Dataset) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, landing = Settings(), LocalStore(tmp_path / "landing")
    assert (feed.kind, feed.resource, feed.connection.max_batch_records) == ("feed", "items", 4)
    add(10)
    window = window_ending_at(START + QUARTER, QUARTER)
    first = bronze.ingest(settings, feed, window, landing=landing)
    assert (first.rows, first.commits) == (10, 3)  # 4 + 4 + 2: bounded by the declaration
    table = DeltaTable(settings.table_uri("bronze", "items_raw"))
    assert latest_metadata(table, bronze.CURSOR_KEY) == {"last": 10}
    assert bronze.ingest(settings, feed, window, landing=landing).skipped  # a re-run reads nothing new

    add(3, qty=2)
    second = bronze.ingest(settings, feed, window_ending_at(START + 2 * QUARTER, QUARTER), landing=landing)
    assert (second.rows, second.commits) == (3, 1)
    rows = pl.read_delta(settings.table_uri("bronze", "items_raw"))
    assert rows.height == 13 and rows.get_column("_source_position").n_unique() == 13
    assert set(rows.get_column("_source")) == {"feed"}

    batch = silver.prepare(settings, feed, {})
    assert batch is not None
    assert (batch.counts.read, batch.counts.merged, batch.counts.conflicts) == (13, 13, 0)
    silver.commit(settings, batch)
    merged = pl.read_delta(settings.table_uri("silver", "items")).sort("item_id")
    assert merged.height == 13 and merged.get_column("qty").sum() == 10 + 3 * 2


def test_a_batch_that_did_not_commit_is_read_again_from_the_cursor_before_it(tmp_path, monkeypatch, feed: Dataset) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, landing = Settings(), LocalStore(tmp_path / "landing")
    add(6)
    window = window_ending_at(START + QUARTER, QUARTER)

    original = bronze.append
    calls = 0

    def fail_second(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("the store went away before the second batch's commit")
        return original(*args, **kwargs)

    monkeypatch.setattr(bronze, "append", fail_second)
    with pytest.raises(OSError, match="went away"):
        bronze.ingest(settings, feed, window, landing=landing)
    monkeypatch.setattr(bronze, "append", original)
    assert pl.read_delta(settings.table_uri("bronze", "items_raw")).height == 4  # the first batch only

    resumed = bronze.ingest(settings, feed, window, landing=landing)
    assert (resumed.rows, resumed.commits) == (2, 1)
    positions = pl.read_delta(settings.table_uri("bronze", "items_raw")).get_column("_source_position")
    assert positions.len() == 6 and positions.n_unique() == 6


def test_a_dataset_of_a_record_source_names_a_resource_not_a_prefix(feed: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"datasets\.items\.prefix: a feed source has no landing prefix"):
        parse(YAML.replace("source: events", "source: events\n        prefix: x"))
    custom = parse(YAML.replace("source: events", "source: events\n        resource: v2/items"))
    assert custom.pipeline("p").dataset("items").resource == "v2/items"


def test_a_source_declaration_is_checked_against_its_kind(feed: Dataset) -> None:
    with pytest.raises(ConfigError) as bad:
        parse(YAML.replace("{kind: feed, max_batch_records: 4}", "{kind: feed, max_batch_records: 0, prefix: x}"))
    message = str(bad.value)
    assert "pipelines.p.sources.events.max_batch_records: Input should be greater than or equal to 1" in message
    assert "pipelines.p.sources.events.prefix: unknown field" in message  # a files option on another kind
    with pytest.raises(ConfigError, match=r"sources\.events: unknown kind \(kinds: landing_files, (\w+, )*feed\)"):
        parse(YAML.replace("kind: feed", "kind: fed"))
