"""Flaky object storage: with faults injected into every kind of S3 request, a window ends in
the same tables as a clean run, and no row or commit lands twice (issue 11, item 4).

Every request of delta-rs, DuckDB and boto3 for the flaky warehouse passes through the
fault-injecting proxy in front of the moto server (lakehouse/dev/s3proxy.py): 10 % of requests fail
as object storage fails (500, 503 SlowDown, a reset connection, a slow answer), 30 % of the
commit PUTs are applied but answered with a 500 (a lost acknowledgement), and a landing
file's body is cut short. The window runs through the engine without Prefect; when it fails
anyway it is run again, as the next scheduled run (or Prefect's retry of the task) would.
"""

from __future__ import annotations

import polars as pl
import pytest

from lakehouse.config import Settings
from lakehouse.dev.s3proxy import ProxyProcess
from lakehouse.engine import run_window
from lakehouse.window import Window
from tests.integration.conftest import InOrder
from tests.integration.helpers import INTERVAL, contents, window_end
from tests.shop_files import SHOP

pytestmark = pytest.mark.slow

RERUNS = 6
VOLATILE = ("_ingested_at", "_batch_id", "_bronze_version")
"""Columns that may differ between two runs of the same data (the time, the batch sequence,
bronze's version numbers: a retried table creation can add a commit of no data)."""
ABSORBED = ("500", "503", "reset", "slow")
"""Faults the storage clients retry themselves (delta-rs' object_store, botocore)."""


def window(k: int) -> Window:
    return Window(window_end(k) - INTERVAL, window_end(k))


def _tables(monkeypatch: pytest.MonkeyPatch, warehouse: str) -> dict[str, pl.DataFrame]:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", warehouse)
    return contents(drop=VOLATILE)


def test_with_faults_on_every_kind_of_request_the_tables_equal_a_clean_run(
    moto, in_order: InOrder, two_windows: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session's warehouse after window 1 (landing of windows 1 and 2), then window 2
    # through the proxy; the clean run of the same window is the session's `two_windows`
    warehouse = in_order.clone(1, monkeypatch, landed=2)
    proxy = ProxyProcess(moto.endpoint_url)
    try:
        faulty = Settings(aws_endpoint_url=proxy.endpoint_url)
        # 10 % of requests fail as S3 fails and 30 % of commits lose their acknowledgement
        # (the clients retry the requests; write_once finds the landed commits), and the
        # first landing file read has its body cut short: no client retries a half-read
        # body, so the window fails part way and is run again, as the next run (or the
        # task's retry) would, until it completes
        proxy.set_faults(0.10, lost_ack=0.30, seed=11, kinds=ABSORBED,
                         pattern="/landing/orders/20", count=1, code="truncated")
        failed: list[str] = []
        for _ in range(RERUNS):
            try:
                run_window(faulty, SHOP, window(2))
                break
            except Exception as exc:  # noqa: BLE001 (what a run would fail with; it is run again)
                failed.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        else:
            pytest.fail(f"window 2 did not complete in {RERUNS} runs: {failed}")
        injected = proxy.tally().faults
        proxy.set_faults(0)
    finally:
        proxy.stop()

    assert set(injected) == {*ABSORBED, "lost_ack", "truncated"}, injected  # the faults were real
    assert failed, "the cut-short body did not fail the window: the resume was not exercised"
    expected = {name: frame.drop([c for c in VOLATILE if c in frame.columns]) for name, frame in two_windows.items()}
    got = _tables(monkeypatch, warehouse)
    assert got.keys() == expected.keys()
    for name, frame in expected.items():
        assert got[name].equals(frame), f"{name} differs from the clean run ({injected}; failed runs: {failed})"
        assert got[name].height == got[name].unique().height, f"{name} holds a row twice"
