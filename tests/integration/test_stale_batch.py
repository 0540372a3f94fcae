"""A silver batch that another writer's promotion overlaps is prepared again, once.

Writers interleave in this one process, deterministically, on a local warehouse with real
Delta tables: a batch is prepared, a second writer promotes part of the same bronze
versions first, then the first batch is committed. Before the change that commit failed
with ``StaleBatch`` and the next run caught up; now it re-prepares from the new snapshot
(re-gated), commits, and the tables equal one writer's. Stale a second time (a third writer
commits between the re-prepare and its commit) it fails saying so, and the next run catches up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from lakehouse.config import Settings
from lakehouse.errors import StaleBatch
from lakehouse.layers import bronze, gold, silver
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at
from tests.integration.helpers import INTERVAL, land, window_end
from tests.shop_files import SHOP

ORDERS = SHOP.dataset("orders")


def ingest(settings: Settings, k: int) -> None:
    window = window_ending_at(window_end(k), INTERVAL)
    bronze.ingest(settings, ORDERS, window, landing=open_store(settings.landing_root, settings))


def prepare(settings: Settings, k: int) -> silver.SilverBatch:
    batch = silver.prepare(settings, ORDERS, now=window_end(k))
    assert batch is not None
    return batch


def tables(settings: Settings) -> dict[str, pl.DataFrame]:
    out = {}
    for layer in ("silver", "quarantine"):
        frame = pl.read_delta(settings.table_uri(layer, "orders"))
        out[layer] = frame.sort(frame.columns)
    return out


def same(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> bool:
    return got.keys() == expected.keys() and all(got[n].equals(expected[n]) for n in expected)


def one_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, windows: int) -> dict[str, pl.DataFrame]:
    with monkeypatch.context() as mp:
        mp.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "one-writer"))
        settings = Settings()
        land(windows, orders=10)
        for k in range(1, windows + 1):
            ingest(settings, k)
            silver.commit(settings, prepare(settings, k))
        return tables(settings)


def test_a_stale_silver_batch_is_prepared_again_and_committed(local_warehouse: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    expected = one_writer(tmp_path, monkeypatch, 2)
    settings = Settings()
    land(2, orders=10)
    ingest(settings, 1)
    small = prepare(settings, 1)        # the other writer: bronze up to window 1
    ingest(settings, 2)
    big = prepare(settings, 2)          # this writer: bronze up to window 2
    silver.commit(settings, small)      # the other writer promotes first
    result = silver.commit(settings, big)
    assert result.bronze_version == big.bronze_to and not result.skipped
    assert result.counts is not None and result.counts.read < big.counts.read  # only what was left
    assert same(tables(settings), expected)


def test_a_batch_stale_again_after_its_re_prepare_fails_clearly_and_the_next_run_catches_up(
    local_warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = one_writer(tmp_path, monkeypatch, 4)
    settings = Settings()
    land(4, orders=10)
    ingest(settings, 1)
    silver.commit(settings, prepare(settings, 1))
    for k in (2, 3, 4):
        ingest(settings, k)
    one_version = dataclasses.replace(ORDERS, max_batch_rows=1)  # a promotion of one bronze version at a time
    late = prepare(settings, 4)             # this writer: bronze versions 2..4
    first = silver.prepare(settings, one_version, now=window_end(4))
    assert first is not None and (first.bronze_from, first.bronze_to) == (late.bronze_from, late.bronze_from)
    silver.commit(settings, first)          # another writer promotes version 2 first: this batch is stale

    real_prepare = silver.prepare
    raced = []

    def prepare_then_let_another_writer_in(*args, **kwargs):  # type: ignore[no-untyped-def]
        fresh = real_prepare(*args, **kwargs)  # this writer's re-prepare: versions 3..4
        if not raced:  # before it commits, a third writer promotes version 3
            raced.append(True)
            third = real_prepare(settings, one_version, now=window_end(4))
            assert third is not None and third.bronze_to == fresh.bronze_from
            silver.commit(settings, third)
        return fresh

    monkeypatch.setattr(silver, "prepare", prepare_then_let_another_writer_in)
    with pytest.raises(StaleBatch, match="stale again after one re-prepare from the new snapshot"):
        silver.commit(settings, late)
    monkeypatch.setattr(silver, "prepare", real_prepare)
    silver.commit(settings, prepare(settings, 4))  # the next run
    assert same(tables(settings), expected)


def promote_silver(settings: Settings, k: int) -> None:
    """Window k's bronze and silver for every dataset of the shop, in promotion order (no gold)."""
    window = window_ending_at(window_end(k), INTERVAL)
    landing = open_store(settings.landing_root, settings)
    prepared: dict[str, silver.SilverBatch] = {}
    for ds in SHOP.datasets:
        bronze.ingest(settings, ds, window, landing=landing)
        batch = silver.prepare(settings, ds, {n: prepared[n] for n in ds.upstream if n in prepared}, now=window.end)
        if batch is not None:
            prepared[ds.spec.name] = batch
    for batch in prepared.values():
        silver.commit(settings, batch)


def test_a_stale_gold_batch_is_prepared_again_and_committed(local_warehouse: str) -> None:
    model = SHOP.models[0]
    settings = Settings()
    land(2, orders=10)
    promote_silver(settings, 1)
    small = gold.prepare(settings, SHOP, model)   # the other writer: silver after window 1
    promote_silver(settings, 2)
    big = gold.prepare(settings, SHOP, model)     # this writer: silver after window 2
    assert small is not None and big is not None
    gold.commit(settings, small)                  # the other writer recomputes first
    result = gold.commit(settings, big)
    assert result.version is not None and result.touched
    got = pl.read_delta(settings.table_uri("gold", model.spec.name))
    # an incremental gold equals a rebuild from silver (the one-writer result)
    assert got.sort(got.columns).equals(gold.rebuild(settings, model).select(got.columns).sort(got.columns))
