"""Two writers at once: no application transaction is committed twice, no line doubled.

Two real processes (``tests/integration/writer.py``) run windows against the same
warehouse, a local folder and moto S3 over HTTP. They meet at the rendezvous
``commit.checked`` (``lakehouse/dev/faults.py``) before every write: both have read the table
and found the batch not committed, and both then write. That is the race two ``lakehouse
run`` processes started together hit now and then (1 trial in 4 on a local path), made
deterministic so that one trial shows it: both check, then they write one after the other.
The loser must meet a commit conflict (or find the work done); a later run catches up, and
every table then equals one writer's. Before the fix every one of these failed: bronze
batch 1, quarantine version 1 and gold's input versions committed twice.

Slow (``@pytest.mark.slow``): each test starts two engine processes (imports alone take
seconds here) and builds its reference warehouse; 15–65 s each on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from lakehouse.catalog import table_names
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.dev.moto_server import MotoServer
from lakehouse.engine import run_window
from lakehouse.layers import bronze
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at
from tests.conftest import new_warehouse
from tests.integration.helpers import INTERVAL, contents, land, window_end

LINEAGE = ("_ingested_at", "_batch_id", "_bronze_version", "_source_version")
"""Columns that name a delivery (batch number, bronze version): the race may number them differently."""


def run_engine(k: int) -> None:
    run_window(Settings(), load().pipeline(), window_ending_at(window_end(k), INTERVAL))


def race(windows: tuple[int, int], folder: Path) -> list[str]:
    """Run the two windows in two processes that meet before every write; their outputs."""
    env = {
        **os.environ, "LAKEHOUSE_RENDEZVOUS_AT": "commit.checked",
        "LAKEHOUSE_RENDEZVOUS_DIR": str(folder), "LAKEHOUSE_RENDEZVOUS_PEERS": "2",
        "LAKEHOUSE_RENDEZVOUS_TIMEOUT": "30",  # a peer that lags on a loaded machine is still waited for
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.writer", window_end(k).isoformat()],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k in windows
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), err[-3000:]
        outs.append(out.strip().splitlines()[-1] if out.strip() else err[-500:])
    return outs


def committed_twice(settings: Settings) -> dict[str, list[tuple[str, int]]]:
    """Per table, every ``(app id, version)`` that more than one commit of its log carries."""
    store = open_store(settings.warehouse, settings)
    out = {}
    for layer, name in [*table_names(load()), ("_quality", "scan_results")]:
        seen: Counter[tuple[str, int]] = Counter()
        for info in store.list(f"{layer}/{name}/_delta_log/"):
            if not info.key.endswith(".json"):
                continue
            for line in store.get(info.key).decode().splitlines():
                action = json.loads(line)
                if "txn" in action:
                    seen[(action["txn"]["appId"], int(action["txn"]["version"]))] += 1
        doubled = [txn for txn, n in seen.items() if n > 1]
        if doubled:
            out[f"{layer}.{name}"] = doubled
    return out


def reference(monkeypatch: pytest.MonkeyPatch, root: Path, windows: tuple[int, ...]) -> dict[str, pl.DataFrame]:
    """Every table after ``windows`` run one after the other by one writer (a local folder)."""
    with monkeypatch.context() as mp:
        mp.setenv("LAKEHOUSE_WAREHOUSE", str(root))
        land(max(windows), orders=10)
        for k in windows:
            run_engine(k)
        return {name: frame.drop([c for c in LINEAGE if c in frame.columns]) for name, frame in contents().items()}


def land_bronze(k: int) -> None:
    """Land window k's files in bronze (one writer), so that the race starts at silver."""
    settings = Settings()
    landing = open_store(settings.landing_root, settings)
    for ds in load().pipeline().datasets:
        bronze.ingest(settings, ds, window_ending_at(window_end(k), INTERVAL), landing=landing)


def check(
    windows: tuple[int, int], expected: list[dict[str, pl.DataFrame]], folder: Path, *, bronze_first: bool
) -> list[str]:
    """Race the windows; then no doubled commit or line, and the tables equal one of ``expected``."""
    land(max(windows), orders=10)
    if bronze_first:
        land_bronze(min(windows))
    outs = race(windows, folder)
    assert "ok" in outs, outs  # one writer at least went through
    settings = Settings()
    assert committed_twice(settings) == {}
    for k in sorted(set(windows)):
        run_engine(k)  # the next runs catch up whatever the loser left
    assert committed_twice(settings) == {}
    got = contents()
    for name, frame in got.items():
        if name.startswith("bronze."):
            assert frame.height == frame.unique(["_source_position", "_source_version", "_line"]).height, name
        if name.startswith("quarantine."):
            assert frame.height == frame.unique(["_source_position", "_line", "_raw"]).height, name
    got = {name: frame.drop([c for c in LINEAGE if c in frame.columns]) for name, frame in got.items()}
    assert any(same(got, e) for e in expected), outs
    return outs


def same(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> bool:
    return got.keys() == expected.keys() and all(
        got[n].sort(got[n].columns).equals(expected[n]) for n in expected
    )


@pytest.mark.slow
def test_two_writers_of_one_window_on_a_local_path_promote_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = reference(monkeypatch, tmp_path / "reference", (1,))
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "raced"))
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    (tmp_path / "meet").mkdir()
    # both find the increment unconsumed, both quarantine, merge and overwrite gold at once
    outs = check((1, 1), [expected], tmp_path / "meet", bronze_first=True)
    assert outs == ["ok", "ok"]  # the loser of each commit finds the same versions committed


@pytest.mark.slow
def test_two_writers_of_consecutive_windows_on_a_local_path_commit_each_batch_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the winner of the first bronze commit decides: window 1 then 2, or both files at once
    # (a catch-up run, in which the late product reaches silver before the line that sells it)
    expected = [reference(monkeypatch, tmp_path / "one-by-one", (1, 2)), reference(monkeypatch, tmp_path / "catch-up", (2,))]
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "raced"))
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    (tmp_path / "meet").mkdir()
    check((1, 2), expected, tmp_path / "meet", bronze_first=False)


@pytest.mark.slow
def test_two_writers_of_one_window_on_moto_s3_promote_it_once(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = reference(monkeypatch, tmp_path / "reference", (1,))
    new_warehouse(moto, monkeypatch, "race")
    (tmp_path / "meet").mkdir()
    outs = check((1, 1), [expected], tmp_path / "meet", bronze_first=True)
    assert outs == ["ok", "ok"]
