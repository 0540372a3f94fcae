"""moto and prefect-dask are extras (demo, dask): without them, the error names the extra."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from lakehouse.config import Settings
from lakehouse.dev import moto_server
from lakehouse.errors import ConfigError


def test_the_moto_server_without_moto_names_the_demo_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a))
    with pytest.raises(ConfigError, match=r"lakehouse\[demo\]"):
        moto_server.start_moto_server()


def test_the_dask_runner_without_prefect_dask_names_the_dask_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.microbatch import task_runner

    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # an import of it raises ImportError
    monkeypatch.setitem(sys.modules, "prefect_dask.task_runners", None)
    with pytest.raises(ConfigError, match=r"lakehouse\[dask\]"):
        task_runner(Settings(task_runner="dask"))
