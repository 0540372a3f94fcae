"""A declaration that changes under an existing silver table: a new nullable column evolves it, anything else refuses."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from deltalake import DeltaTable

from lakehouse.config import Settings
from lakehouse.errors import SchemaDrift
from lakehouse.layers import bronze, silver
from lakehouse.specs import Column
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at
from tests.shop_files import SHOP

START = datetime(2026, 1, 1, tzinfo=UTC)
ORDERS = SHOP.dataset("orders")


def land(store: LocalStore, window: int, **extra: object) -> None:
    at = START + timedelta(minutes=15 * window + 1)
    rec = {"order_id": f"O{window}", "customer_id": "C1", "status": "paid", "ordered_at": "2026-01-01T00:01:00Z",
           "updated_at": at.isoformat().replace("+00:00", "Z"), **extra}
    store.put(f"orders/{at:%Y/%m/%d/%H/%M}/part-0.jsonl", (json.dumps(rec) + "\n").encode())


def promote(settings: Settings, store: LocalStore, dataset, window: int):  # type: ignore[no-untyped-def]
    w = window_ending_at(START + timedelta(minutes=15 * (window + 1)), timedelta(minutes=15))
    bronze.ingest(settings, dataset, w, landing=store)
    batch = silver.prepare(settings, dataset, now=w.end)
    assert batch is not None
    return silver.commit(settings, batch)


def with_column(column: Column):  # type: ignore[no-untyped-def]
    spec = ORDERS.spec
    return replace(ORDERS, spec=replace(spec, columns=(*spec.columns, column)))


def test_a_new_nullable_column_evolves_the_silver_table_in_the_merge(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, store = Settings(), LocalStore(tmp_path / "landing")
    land(store, 0)
    promote(settings, store, ORDERS, 0)
    uri = settings.table_uri("silver", "orders")
    before = DeltaTable(uri).version()
    land(store, 1, channel="web")
    result = promote(settings, store, with_column(Column("channel", "string")), 1)
    table = DeltaTable(uri)
    assert table.version() == before + 1  # the schema change is part of the merge's one commit
    assert "channel" in [f.name for f in table.schema().fields]
    rows = pl.read_delta(uri).sort("order_id").select("order_id", "channel")
    assert rows.to_dicts() == [{"order_id": "O0", "channel": None}, {"order_id": "O1", "channel": "web"}]
    assert result.inserted == 1


def test_a_changed_type_or_a_dropped_column_refuses_naming_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, store = Settings(), LocalStore(tmp_path / "landing")
    land(store, 0)
    promote(settings, store, ORDERS, 0)
    spec = ORDERS.spec
    retyped = replace(ORDERS, spec=replace(spec, columns=tuple(
        replace(c, dtype="int64") if c.name == "customer_id" else c for c in spec.columns)))
    land(store, 1, customer_id=7)
    with pytest.raises(SchemaDrift, match=r"silver.orders: the declaration does not match the existing table: column customer_id is string in the table, int64 in the declaration"):
        promote(settings, store, retyped, 1)
    dropped = replace(ORDERS, spec=replace(spec, columns=tuple(c for c in spec.columns if c.name != "customer_id")))
    with pytest.raises(SchemaDrift, match=r"column customer_id is in the table but not in the declaration"):
        promote(settings, store, dropped, 1)
    required = with_column(Column("channel", "string", nullable=False))
    with pytest.raises(SchemaDrift, match=r"column channel is new and declared nullable: false"):
        promote(settings, store, required, 1)
