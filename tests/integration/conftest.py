"""Reference warehouses shared by the integration tests: built once per session.

A crash, fan-out or resume test compares what it ends with against the tables of the
same windows run once, uninterrupted, one task at a time. Building that reference once
instead of in every test (and every parametrisation) is most of what such tests cost.
"""

from __future__ import annotations

import polars as pl
import pytest

from lakehouse.moto_server import MotoServer
from tests.conftest import new_warehouse
from tests.integration.helpers import contents, land, run


@pytest.fixture(scope="session")
def two_windows(moto: MotoServer, prefect_api: str) -> dict[str, pl.DataFrame]:
    """Every table after ``land(2)`` and windows 1 and 2 run in order, on moto S3 (read-only)."""
    with pytest.MonkeyPatch.context() as mp:
        new_warehouse(moto, mp, "reference")
        land(2)
        for k in (1, 2):
            state = run(k)
            assert state.is_completed(), state.message
        return contents()
