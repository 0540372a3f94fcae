"""Backfill: the windows of a range in order, idempotent, and resumable after a SIGKILL.

Against the session's moto server process and Prefect API; the interrupted backfill is the
``lakehouse backfill`` command in a subprocess, killed with SIGKILL at a crash point in a
chosen window (``LAKEHOUSE_CRASH_AT`` + ``LAKEHOUSE_CRASH_AT_HIT``, lakehouse/dev/faults.py),
and started again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from prefect.artifacts import Artifact
from typer.testing import CliRunner

from flows.cli import app
from lakehouse.catalog import table_names
from lakehouse.commit import app_id, open_table
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.storage import storage_options
from tests.integration.conftest import WINDOWS as IN_ORDER_WINDOWS
from tests.integration.conftest import InOrder
from tests.integration.helpers import START, contents, land, read, versions, window_end

pytestmark = pytest.mark.usefixtures("prefect_api")

BACKFILL = 4
"""Windows of the interrupted backfill, started from the session's in-order warehouse after
window 1 (so window 1 re-runs as a no-op), compared with its copy after window 4. Four prove
what the 24 of issue 6's acceptance did (windows before the kill re-run as no-ops, the
cut-off window resumes mid-way, a later window runs for the first time) at a sixth of the
cost; a window costs about 3 s."""
KILLED_IN = 3
"""The window in which the backfill process is killed: after its silver merges committed,
before its gold commit (``gold.prepared`` is reached once per window, a no-op one too)."""
ORDERS = 10  # a small volume (a blocked window is about windows, not rows) that keeps faults under 10 %


def lakehouse_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("lakehouse")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]


def backfill_args(windows: int) -> list[str]:
    return ["backfill", "--start", START.isoformat(), "--end", window_end(windows).isoformat(), "--interval", "15m"]


def window_lines(output: str) -> list[str]:
    """The one line per finished window that ``lakehouse backfill`` prints."""
    return [line for line in output.splitlines() if line.startswith("2026-01-01 ")]


def bronze_batches() -> dict[str, int]:
    """How many bronze batches (one per window that found files) each bronze table holds."""
    out = {}
    for layer, name in table_names(load()):
        if layer == "bronze":
            out[name] = read(layer, name)["_batch_id"].n_unique()
    return out


def assert_no_file_ingested_twice() -> None:
    for layer, name in table_names(load()):
        if layer != "bronze":
            continue
        frame = read(layer, name)
        per_file = frame.group_by("_source_position", "_source_version").agg(pl.col("_batch_id").n_unique().alias("batches"))
        assert per_file["batches"].max() == 1, per_file.filter(pl.col("batches") > 1)
        assert frame.select("_source_position", "_source_version", "_line").is_unique().all(), name


def gold_behind_silver() -> dict[str, tuple[int, int]]:
    """Per silver input of each gold model: (version gold consumed, silver's version) where gold lags."""
    settings = Settings()
    options = storage_options(settings)
    behind = {}
    for model in load().pipeline(None).models:
        target = open_table(settings.table_uri("gold", model.spec.name), options)
        for layer, name in table_names(load()):
            if layer != "silver":
                continue
            consumed = target.transaction_version(app_id(f"gold/{model.spec.name}", f"silver/{name}"))
            current = open_table(settings.table_uri(layer, name), options).version()
            if consumed is not None and consumed < current:
                behind[f"{model.spec.name}<-{name}"] = (consumed, current)
    return behind


@pytest.mark.slow
def test_a_backfill_killed_midway_resumes_to_the_same_tables(in_order: InOrder, moto, monkeypatch) -> None:
    # warehouse A: one uninterrupted backfill, in this process: the session's in-order
    # windows (tests/integration/conftest.py), land(IN_ORDER_WINDOWS) then one `backfill` flow
    # (in a process of its own, tests/integration/in_order.py, which recorded what it returned)
    in_order.use(IN_ORDER_WINDOWS, monkeypatch)
    built = in_order.built
    assert built.completed, built.message
    assert built.returned is not None and built.returned.planned == IN_ORDER_WINDOWS
    summaries = built.returned.windows
    assert [s.window_end for s in summaries] == [window_end(k).isoformat() for k in range(1, IN_ORDER_WINDOWS + 1)]
    assert [d.index for d in built.finished] == list(range(1, IN_ORDER_WINDOWS + 1))
    assert [d.summary for d in built.finished] == summaries  # the listener heard what the flow returned
    assert all(s.files > 0 for s in summaries)
    flow_run = in_order.flow_run
    assert flow_run.name == f"shop backfill 2026-01-01 00:00 → {window_end(IN_ORDER_WINDOWS):%H:%M}"
    assert flow_run.state.is_completed()  # as the API has it
    # the artifacts as they were when the backfill ended (read then: later backfills reuse the keys)
    assert built.artifacts["backfill-progress"] == 100.0
    assert f"{IN_ORDER_WINDOWS} of {IN_ORDER_WINDOWS} windows done" in built.artifacts["backfill-summary"]
    assert_no_file_ingested_twice()
    in_order.use(BACKFILL, monkeypatch)  # its copy after window BACKFILL
    reference = contents()

    # warehouse B: a copy of A after window 1 holding the landing of windows 1..BACKFILL;
    # `lakehouse backfill` of windows 1..BACKFILL killed with SIGKILL in window KILLED_IN,
    # between its silver and gold commits, then run again
    in_order.clone(1, monkeypatch, landed=BACKFILL)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LAKEHOUSE_CRASH_AT": "gold.prepared", "LAKEHOUSE_CRASH_AT_HIT": str(KILLED_IN)}
    killed = subprocess.run(
        [*lakehouse_command(), *backfill_args(BACKFILL)], env=env, capture_output=True, text=True, timeout=60 * BACKFILL,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    finished = window_lines(killed.stdout)
    assert len(finished) == KILLED_IN - 1, killed.stdout  # windows 1 and 2 finished
    assert ": 0 files," in finished[0] and ": 0 files," not in finished[1], finished  # window 1 had run: a no-op
    assert bronze_batches() == dict.fromkeys(bronze_batches(), KILLED_IN)  # window 3's bronze landed, 4 never ran
    assert gold_behind_silver(), "the kill should leave silver committed and gold behind it"

    # the resume runs in this process: nothing but the Delta tables carries over from the killed one
    resumed = CliRunner().invoke(app, backfill_args(BACKFILL))
    assert resumed.exit_code == 0, resumed.output[-3000:]
    lines = window_lines(resumed.stdout)
    assert len(lines) == BACKFILL, resumed.stdout
    assert f"backfill done: {BACKFILL} windows" in resumed.stdout
    # the windows up to the cut-off one found no new file (the cut-off window's gold step is
    # the resume); the later one ran for the first time
    assert all(": 0 files," in line for line in lines[:KILLED_IN]), lines
    assert not any(": 0 files," in line for line in lines[KILLED_IN:]), lines
    assert gold_behind_silver() == {}

    assert_no_file_ingested_twice()
    after = contents()
    assert after.keys() == reference.keys()
    for name in reference:
        assert_frame_equal(after[name], reference[name], check_row_order=True)


def test_a_blocked_window_stops_the_backfill_there(warehouse: str) -> None:
    land(3, bad_window=2, orders=ORDERS)
    result = CliRunner().invoke(app, backfill_args(3))
    assert result.exit_code == 1, result.output
    assert "backfill stopped at window 2026-01-01 00:15–00:30 (2/3): blocked" in result.stderr
    assert "missing(order_id)" in result.stderr
    assert "2026-01-01 00:00–00:15: " in result.stdout  # the first window finished
    assert "**Stopped at 2026-01-01 00:15–00:30**" in Artifact.get("backfill-summary").data
    batches = bronze_batches()
    assert set(batches.values()) == {2}, batches  # one batch per window run: window 3 never ran


def test_a_bad_range_is_refused_before_anything_runs(warehouse: str) -> None:
    result = CliRunner().invoke(app, ["backfill", "--start", "2026-01-01T00:07:00Z", "--end", "2026-01-01T01:00:00Z"])
    assert result.exit_code == 2
    text = " ".join(result.output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())  # unwrap the error box
    assert "start 2026-01-01T00:07:00+00:00 is not on the 15m window grid" in text
    assert versions() == dict.fromkeys(versions())  # no table was created
