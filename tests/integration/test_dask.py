"""Fan-out on a local Dask cluster (prefect-dask) lands the same tables as one task at a time."""

from __future__ import annotations

import pytest
from polars.testing import assert_frame_equal

from lakehouse.config import Settings
from tests.integration.helpers import contents, land, window_end, without

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


def test_a_dask_fan_out_lands_the_same_tables(warehouse: str, two_windows) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.microbatch import micro_batch, task_runner

    runner = task_runner(Settings(task_runner="dask"))
    assert isinstance(runner, DaskTaskRunner)
    on_dask = micro_batch.with_options(task_runner=runner)
    land(2)
    for k in (1, 2):
        state = on_dask(at=window_end(k), interval="15m", return_state=True)
        assert state.is_completed(), state.message
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
