"""Backfill: the windows of a range in order, idempotent, and resumable after a SIGKILL.

Against the session's moto server process and Prefect API; the interrupted backfill is the
``lakehouse backfill`` command in a subprocess, killed with SIGKILL halfway and started again.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from flows.backfill import WindowDone, backfill, listening
from flows.cli import app
from lakehouse.catalog import table_names
from lakehouse.declaration import load
from tests.integration.helpers import START, contents, land, read, versions, window_end

pytestmark = pytest.mark.usefixtures("prefect_api")

WINDOWS = int(os.environ.get("LAKEHOUSE_TEST_BACKFILL_WINDOWS", "24"))
"""Windows of the interrupted-backfill test: the six hours of issue 6's acceptance. A window
costs about 3 s on a quiet 2-core machine; ``LAKEHOUSE_TEST_BACKFILL_WINDOWS=6`` for a
quicker local loop."""
HALF = WINDOWS // 2
ORDERS = 10  # a small volume (the test is about windows, not rows) that keeps faults under 10 %


def lakehouse_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("lakehouse")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]


def backfill_args(windows: int) -> list[str]:
    return ["backfill", "--start", START.isoformat(), "--end", window_end(windows).isoformat(), "--interval", "15m"]


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


class Lines:
    """The stdout lines of a subprocess, read on a thread so the test can wait for them."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, count: int, *, prefix: str, timeout: float) -> list[str]:
        """Block until ``count`` lines starting with ``prefix`` were printed (or the output ended)."""
        deadline = time.monotonic() + timeout
        while sum(line.startswith(prefix) for line in self.seen) < count:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return [line for line in self.seen if line.startswith(prefix)]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_backfill_killed_halfway_resumes_to_the_same_tables(warehouse: str, moto, monkeypatch) -> None:
    # warehouse A: one uninterrupted backfill, in this process
    land(WINDOWS, orders=ORDERS)
    finished: list[WindowDone] = []
    with listening(finished.append):
        state = backfill(start=START, end=window_end(WINDOWS), interval="15m", return_state=True)
    assert state.is_completed(), state.message
    summaries = state.result()
    assert [s["window_end"] for s in summaries] == [window_end(k).isoformat() for k in range(1, WINDOWS + 1)]
    assert [d.index for d in finished] == list(range(1, WINDOWS + 1))
    assert all(s["files"] > 0 for s in summaries)
    flow_run = get_client(sync_client=True).read_flow_run(state.state_details.flow_run_id)
    assert flow_run.name == f"shop backfill 2026-01-01 00:00 → {window_end(WINDOWS):%H:%M}"
    assert Artifact.get("backfill-progress").data == 100.0
    assert f"{WINDOWS} of {WINDOWS} windows done" in Artifact.get("backfill-summary").data
    reference = contents()
    assert_no_file_ingested_twice()

    # warehouse B: `lakehouse backfill` killed with SIGKILL halfway, then run again
    for key, value in moto.env(warehouse + "-resumed").items():
        monkeypatch.setenv(key, value)
    land(WINDOWS, orders=ORDERS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*lakehouse_command(), *backfill_args(WINDOWS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        done = Lines(proc).wait_for(HALF, prefix="2026-01-01 ", timeout=60 * HALF)
        assert len(done) >= HALF, done
        time.sleep(0.5)  # into the next window, somewhere between its steps
        proc.kill()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -9
    interrupted = bronze_batches()
    assert all(HALF <= n < WINDOWS for n in interrupted.values()), interrupted

    resumed = subprocess.run(
        [*lakehouse_command(), *backfill_args(WINDOWS)], env=env, capture_output=True, text=True, timeout=60 * WINDOWS,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = [line for line in resumed.stdout.splitlines() if line.startswith("2026-01-01 ")]
    assert len(lines) == WINDOWS, resumed.stdout
    assert f"backfill done: {WINDOWS} windows" in resumed.stdout
    # the windows that had finished before the kill ran again and found no new file (the
    # first of them may carry the cut-off window's silver or gold step: that is the resume)
    assert all(": 0 files," in line for line in lines[:HALF]), lines

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
