"""Retries only for what a retry can cure, proved per class on real Prefect flow runs.

Each test runs the real tasks in a real flow run against the session's Prefect API and
the moto server, with a real failure, and reads back from the API how many times each
task ran. The backoff delays are set to 0 for these runs (what is under test is whether
a task is retried, not how long it waits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from lakehouse.dev.moto_server import MotoServer
from lakehouse.dev.s3proxy import ProxyProcess
from tests.conftest import new_warehouse
from tests.integration.helpers import land, run, window_end
from tests.integration.test_unreadable_files import task_attempts
from tests.shop_files import SHOP

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.layers as layers

    for name in ("ingest_bronze", "prepare_silver", "commit_silver", "prepare_gold", "commit_gold"):
        t = getattr(layers, name)
        monkeypatch.setattr(t, "retry_delay_seconds", [0, 0, 0])
        monkeypatch.setattr(t, "retry_jitter_factor", None)


def attempts(state: Any) -> dict[str, int]:
    return asyncio.run(task_attempts(state.state_details.flow_run_id))


def _bronze_only(dataset: Any) -> Any:
    """A flow that runs the real bronze task of ``dataset`` for window 1; its final state."""
    from datetime import timedelta

    from prefect import flow

    from lakehouse.config import Settings
    from lakehouse.window import window_ending_at
    from tasks.layers import ingest_bronze

    chosen = SHOP.dataset(dataset) if isinstance(dataset, str) else dataset

    @flow(name="bronze-only", validate_parameters=False)
    def bronze_only() -> Any:
        return ingest_bronze(Settings(), chosen, window_ending_at(window_end(1), timedelta(minutes=15)))

    return bronze_only(return_state=True)


def test_a_storage_outage_is_retried_and_the_task_completes(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = new_warehouse(moto, monkeypatch)
    land(1)
    # the landing listing of products answers 503 SlowDown once; boto3 is told not to retry it itself
    proxy = ProxyProcess(moto.endpoint_url)
    proxy.fail_first(f"prefix={uri.removeprefix('s3://').split('/', 1)[1]}/landing/products/", 1)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        monkeypatch.setenv("AWS_RETRY_MODE", "standard")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        state = _bronze_only("products")
    finally:
        proxy.stop()
    assert state.is_completed(), state.message
    assert state.result().rows > 0
    assert attempts(state) == {"bronze products": 2}


def test_a_missing_bucket_fails_at_once_with_one_clean_line(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    new_warehouse(moto, monkeypatch)
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://no-such-bucket-here/warehouse")
    began = time.monotonic()
    state = run(1)
    took = time.monotonic() - began
    assert state.is_failed()
    assert max(attempts(state).values()) == 1, attempts(state)
    message = state.message or ""
    assert "\x1b" not in message, message  # no colour codes from delta-rs
    assert "bucket 'no-such-bucket-here' does not exist (s3://no-such-bucket-here/warehouse" in message, message
    assert "\n" not in message, message
    assert took < 30, took


def test_a_bug_is_not_retried(warehouse: str) -> None:
    """A ``ValueError`` (here: a format the reader does not know) fails the same way every time."""
    land(1)
    state = _bronze_only(dataclasses.replace(SHOP.dataset("orders"), format="xml"))  # type: ignore[arg-type]
    assert state.is_failed()
    assert "unknown format 'xml'" in (state.message or "")
    assert attempts(state) == {"bronze orders": 1}


def test_a_blocked_gate_is_not_retried(warehouse: str) -> None:
    land(1, bad_window=1)
    state = run(1)
    assert state.is_failed() and "promotion blocked" in (state.message or "")
    assert max(attempts(state).values()) == 1, attempts(state)
