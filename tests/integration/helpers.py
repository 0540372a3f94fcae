"""Shared helpers of the integration tests: run windows, read tables, compare states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from lakehouse.catalog import table_names
from lakehouse.commit import open_table
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.dev.simulator import simulate
from lakehouse.layers.bronze import bronze_name
from lakehouse.storage import open_store, storage_options

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


def window_end(k: int) -> datetime:
    """End of window k (1-based)."""
    return START + k * INTERVAL


def land(
    windows: int, *, first: int = 1, bad_window: int | None = None, seed: int = 7, orders: int = 40
) -> None:
    settings = Settings()
    simulate(
        open_store(settings.landing_root, settings),
        start=START + (first - 1) * INTERVAL,
        windows=windows,
        interval=INTERVAL,
        seed=seed,
        bad_window=bad_window,
        orders_per_window=orders,
    )


def run(k: int) -> Any:
    """Run window k as a Prefect flow; returns the final state."""
    from flows.microbatch import micro_batch

    return micro_batch(at=window_end(k), interval="15m", return_state=True)


def replay() -> Any:
    """Replay every quarantine as a Prefect flow; returns the final state."""
    from flows.replay import replay_quarantine

    return replay_quarantine(return_state=True)


def versions(settings: Settings | None = None) -> dict[str, int | None]:
    settings = settings or Settings()
    options = storage_options(settings)
    out = {}
    for layer, name in table_names(load()):
        table = open_table(settings.table_uri(layer, name), options)
        out[f"{layer}.{name}"] = None if table is None else table.version()
    return out


def read(layer: str, name: str, *, drop: tuple[str, ...] = ()) -> pl.DataFrame:
    settings = Settings()
    frame = pl.read_delta(settings.table_uri(layer, name), storage_options=storage_options(settings))
    frame = frame.drop([c for c in drop if c in frame.columns])
    return frame.sort(frame.columns)


def contents(*, drop: tuple[str, ...] = ("_ingested_at",)) -> dict[str, pl.DataFrame]:
    settings = Settings()
    options = storage_options(settings)
    out = {}
    for layer, name in table_names(load()):
        if open_table(settings.table_uri(layer, name), options) is not None:
            out[f"{layer}.{name}"] = read(layer, name, drop=drop)
    return out


def scan_results(*, drop: tuple[str, ...] = ("scanned_at", "run_id")) -> pl.DataFrame:
    """``quality.scan_results`` without what differs between two runs of one batch, sorted."""
    from lakehouse.quality.scan_log import scan_results_uri

    settings = Settings()
    frame = pl.read_delta(scan_results_uri(settings), storage_options=storage_options(settings)).drop(drop)
    return frame.sort(frame.columns, nulls_last=True)


def without(frames: dict[str, pl.DataFrame], *columns: str) -> dict[str, pl.DataFrame]:
    """``frames`` with ``columns`` dropped, each sorted again as :func:`read` sorts."""
    out = {}
    for name, frame in frames.items():
        frame = frame.drop([c for c in columns if c in frame.columns])
        out[name] = frame.sort(frame.columns)
    return out


__all__ = ["bronze_name"]
