"""Fan-out on a local Dask cluster (prefect-dask) lands the same tables as one task at a time."""

from __future__ import annotations

import pytest
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from tests.integration.conftest import InOrder
from tests.integration.helpers import contents, window_end, without

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


def test_a_dask_fan_out_lands_the_same_tables(in_order: InOrder, two_windows, monkeypatch) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.microbatch import micro_batch, task_runner

    runner = task_runner(Settings(task_runner="dask"))
    assert isinstance(runner, DaskTaskRunner)
    on_dask = micro_batch.with_options(task_runner=runner)
    # window 1 as the session ran it, one task at a time; window 2 (new rows, updates, rejects
    # and gold partitions in every layer) fans out on a local cluster of its own
    in_order.clone(1, monkeypatch, landed=2)
    state = on_dask(at=window_end(2), interval="15m", return_state=True)
    assert state.is_completed(), state.message
    assert all(t.read > 0 for t in state.result().tables) and state.result().gold
    fanned_out = contents(drop=("_ingested_at", "_batch_id"))

    sequential = without(two_windows, "_batch_id")  # the same windows, one task at a time, once per session
    assert fanned_out.keys() == sequential.keys() and "gold.daily_sales" in sequential
    for name in sequential:
        assert_frame_equal(fanned_out[name], sequential[name])


def test_the_setting_chooses_the_runner() -> None:
    from prefect_dask import DaskTaskRunner

    from flows.microbatch import Sequential, task_runner

    assert isinstance(task_runner(Settings()), Sequential)
    assert task_runner(Settings(task_runner="threads"))._max_workers == 8
    remote = task_runner(Settings(task_runner="dask", dask_address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
