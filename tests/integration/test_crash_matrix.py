"""The crash matrix (issue 11): a SIGKILL at every write boundary, then (a) the same window
run again or (b) the next window; either way every table ends as an uninterrupted run left it.

A run is killed with SIGKILL at a crash point (``LAKEHOUSE_CRASH_AT`` and
``LAKEHOUSE_CRASH_AT_HIT``, lakehouse/dev/faults.py): window 2 of the session's in-order
warehouse after window 1, or a quarantine replay after window 4. Each point is killed once,
in a ``lakehouse`` subprocess, while the tests before it run (fixture ``killed``); the killed
warehouse is then copied, so both variants start from the same killed state. The follow-ups
run in the test, in this process, as the CLI's ``lakehouse run`` runs a window
(flows/inprocess.py): what a crash tests is the process that was killed, and a follow-up is
an ordinary run of what it left (a process of its own for each cost a Python and Prefect
start-up apiece, 18 in all, for nothing the other tests do not already show).
The next window lands nothing new: with window 3's files, a kill before order lines reach
silver makes window 3 promote window 2's lines together with window 3's catalogue, so the
line selling a product that arrives late (the simulator's fault 10) is promoted instead of
quarantined: a different, correct outcome that no uninterrupted run has (the out-of-order
test of test_pipeline.py shows a replay makes them equal). What the next window must do
here is consume the killed window's leftovers exactly once.

References are the session's (tests/integration/conftest.py): the tables and scan results
after the in-order window 2 (``in_order``), and after an uninterrupted replay (``replayed``).
Scan results are compared as what makes them exactly once: (a) re-runs the batches the
killed run gated, so it records nothing new and the table equals the uninterrupted one;
(b) gates, in the next window, the batches the killed run did not reach, so the killed
window's scans plus the next window's hold each gate's checks once, as the uninterrupted
run's window does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.dev.faults import POINTS
from lakehouse.dev.moto_server import MotoServer
from tests.conftest import environment
from tests.integration.conftest import InOrder, Replayed, copy_bucket, point_at
from tests.integration.helpers import contents, replay, run, scan_results, window_end

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


@dataclass(frozen=True)
class Crash:
    """Where a run is killed: the ``hit``-th time it reaches ``point``."""

    point: str
    hit: int = 1

    @property
    def replay(self) -> bool:
        return self.point.startswith("replay.")

    @property
    def name(self) -> str:
        return self.point if self.hit == 1 else f"{self.point}#{self.hit}"


CRASHES = (
    Crash("bronze.committed"),  # every bronze append, nothing gated
    Crash("quality.recorded"),  # silver.products' scan, before any other gate
    Crash("silver.quarantined", 2),  # orders' rejects, before its merge
    Crash("silver.committed"),  # products merged, orders and order lines not
    Crash("silver.committed", 2),  # orders merged, order lines not
    Crash("silver.committed", 3),  # every silver merge, no gold scan
    Crash("gold.prepared"),  # gold recomputed and every scan recorded, no gold commit
    Crash("gold.committed"),  # the gold overwrite, before the run's end
    Crash("replay.appended"),  # the replayed rows in bronze, not promoted
)
KILLED = 2
"""The window killed (from the in-order warehouse after window 1, its landing only)."""
AFTER_REPLAY = 4
"""The window after which a replay is killed (window 1's late product has arrived since)."""
GATES = ["table", "stage", "rows", "check"]
"""What a scan result says of which gate ran on which batch."""
AT_ONCE = 2
"""Crashes prepared at a time, beside the test running its re-run: on two cores, more only queue."""


def test_the_matrix_has_every_crash_point() -> None:
    assert {c.point for c in CRASHES} == set(POINTS)


def _following(crash: Crash) -> int:
    """The next window after the one the crash killed (after the replay's window)."""
    return AFTER_REPLAY + 1 if crash.replay else KILLED + 1


def _lakehouse(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", *args]


@dataclass(frozen=True)
class Killed:
    """A crash's killed warehouse, and a copy of it for the next window."""

    bucket: str
    """As the kill left it: variant (a) runs here."""
    twin: str
    """Variant (b): a copy of ``bucket`` taken right after the kill; the test runs the next window in it."""


def _kill(crash: Crash, in_order: InOrder, moto: MotoServer, base: dict[str, str]) -> Killed:
    """Copy the warehouse the crash starts from, kill its run there, and copy what the kill left."""
    k = AFTER_REPLAY if crash.replay else KILLED - 1
    bucket = in_order.copy(k, landed=k if crash.replay else KILLED)
    command = _lakehouse("quarantine", "replay") if crash.replay else _lakehouse("run", "--at", window_end(KILLED).isoformat())
    env = {**environment(moto, base, bucket), "LAKEHOUSE_CRASH_AT": crash.point, "LAKEHOUSE_CRASH_AT_HIT": str(crash.hit)}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, f"{crash.name}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    twin = f"lake-{uuid.uuid4().hex[:12]}"
    copy_bucket(moto.endpoint_url, bucket, twin)
    return Killed(bucket, twin)


@pytest.fixture(scope="module")
def killed(in_order: InOrder, moto: MotoServer, prefect_api: str) -> Iterator[dict[Crash, Future[Killed]]]:
    """Per crash, its :class:`Killed` warehouses, when they are ready.

    The kills run in threads beside the tests, ``AT_ONCE`` at a time, in the order of
    ``CRASHES``: while a test runs its follow-ups in this process, the next crashes' runs
    are being killed in theirs. The threads never touch this
    process's environment; they start from the one the session had when the module began.
    """
    base = dict(os.environ)
    with ThreadPoolExecutor(max_workers=AT_ONCE, thread_name_prefix="kill") as pool:
        yield {crash: pool.submit(_kill, crash, in_order, moto, base) for crash in CRASHES}


def _killed_window(scans: pl.DataFrame, crash: Crash) -> pl.DataFrame:
    """The scans of the window the run was killed in (a replay's have no window)."""
    if crash.replay:
        return scans.filter(pl.col("window_end").is_null())
    return scans.filter(pl.col("window_end") == window_end(KILLED))


def _gates(scans: pl.DataFrame) -> pl.DataFrame:
    return scans.select(GATES).sort(GATES)


def assert_same(got: pl.DataFrame, expected: pl.DataFrame, what: str) -> None:
    try:
        assert_frame_equal(got, expected, check_row_order=True)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def assert_same_tables(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        assert_same(got[name], expected[name], name)


@pytest.mark.parametrize("crash", CRASHES, ids=lambda c: c.name)
def test_a_kill_then_a_rerun_or_the_next_window_gives_the_uninterrupted_tables(
    crash: Crash, killed: dict[Crash, Future[Killed]], in_order: InOrder, replayed: Replayed, moto: MotoServer, monkeypatch
) -> None:
    warehouses = killed[crash].result(timeout=900)
    if crash.replay:
        tables, scans = replayed.tables, replayed.scans
    else:
        tables, scans = in_order.contents(KILLED), in_order.scans[KILLED]

    # (a) the same window again (the same replay): nothing the killed run committed twice
    point_at(moto, monkeypatch, warehouses.bucket)
    before = scan_results()  # as the kill left them, in (b)'s copy too
    state = replay() if crash.replay else run(KILLED)
    assert state.is_completed(), state.message
    assert_same_tables(contents(), tables)
    assert_same(scan_results(), scans, "quality.scan_results")

    # (b) the next window, with nothing new landed (run in the copy): it finishes what the
    # killed run left
    point_at(moto, monkeypatch, warehouses.twin)
    state = run(_following(crash))
    assert state.is_completed(), f"{crash.name}, the next window: {state.message}"
    assert_same_tables(contents(), tables)
    after = scan_results()
    gated_next = after.filter(pl.col("window_end") == window_end(_following(crash)))
    assert after.height == before.height + gated_next.height  # nothing but the next window's scans added
    assert_same(_gates(pl.concat([_killed_window(before, crash), gated_next])), _gates(_killed_window(scans, crash)),
                "each gate's checks, once per batch")
