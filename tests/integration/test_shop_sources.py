"""The built-in shop pipeline (lakehouse/pipelines/shop.yaml) with every source it declares.

Its landing files come from the simulator and its customers from the shop's SQLite database
(lakehouse/dev/shop_db.py), found through ``SHOP_DB_URL`` (the declaration's
``${SHOP_DB_URL:-…}``), as `lakehouse demo` and `lakehouse serve` feed them. Several windows
run through the engine (``run_window``) on a local warehouse: every customer row lands in
silver exactly once at its latest version, a soft-deleted customer leaves silver, and the
files' datasets still promote beside it. `lakehouse run` without the database is one line
naming the source, and nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.dev import shop_db
from lakehouse.dev.shop import SHOP_YAML
from lakehouse.dev.simulator import simulate
from lakehouse.engine import run_window
from lakehouse.storage import open_store, storage_options
from lakehouse.window import Window, window_ending_at

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
WINDOWS = 3


def window(k: int) -> Window:
    return window_ending_at(START + k * QUARTER, QUARTER)


def read(settings: Settings, layer: str, name: str) -> pl.DataFrame:
    return pl.read_delta(settings.table_uri(layer, name), storage_options=storage_options(settings))


def test_windows_of_the_whole_shop_land_customers_exactly_once_and_drop_the_deleted(
    local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = shop_db.create(tmp_path / "shop.db")
    monkeypatch.setenv("SHOP_DB_URL", shop_db.url(tmp_path / "shop.db"))
    pipeline = parse(SHOP_YAML, path="shop.yaml").pipeline("shop")
    assert {ds.kind for ds in pipeline.datasets} == {"landing_files", "sql"}
    settings = Settings()
    landing = open_store(settings.landing_root, settings)
    steps, runs = [], []
    for k in range(1, WINDOWS + 1):
        simulate(landing, start=window(k).start, windows=1, orders_per_window=8)
        steps.append(shop_db.step(database, window(k).start, window(k).end))
        runs.append(run_window(settings, pipeline, window(k)))

    customers = read(settings, "silver", "customers").sort("customer_id")
    live = pl.DataFrame(shop_db.live_customers(database)).drop("is_deleted")
    got = customers.select(live.columns).with_columns(pl.col("updated_at").dt.replace_time_zone(None))
    assert got.equals(live)  # each live customer once, at its latest version
    deleted = {key for s in steps for key in s["customers"].deleted}
    assert len(deleted) == WINDOWS and not deleted & set(customers.get_column("customer_id"))
    raw = read(settings, "bronze", "customers_raw")
    assert raw.get_column("_source_position").n_unique() == raw.height  # no row read twice
    merged = {m.table: m for m in runs[-1].merged}
    assert merged["silver.customers"].counts is not None and merged["silver.customers"].counts.deleted == 1
    assert read(settings, "silver", "orders").height > 0 and read(settings, "gold", "daily_sales").height > 0


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
