"""Reference warehouses shared by the integration tests: built once per session.

Many tests start from the same windows run in order (1, then 2, then 3 …) and then go on
differently: a crash in window 2, a re-run of windows 1–3, a replay after window 4. Running
that prefix again in every test (and every parametrisation) was most of what such tests
cost. The session runs it once instead, in one warehouse (``in_order``), and keeps a copy
of the warehouse after the windows tests start from; a test that only reads uses a copy as
it is, a test that writes gets a fresh copy of its own (a bucket copy in the moto server
takes a fraction of a window's time).
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from flows.backfill import WindowDone
from lakehouse.moto_server import MotoServer
from tests.conftest import new_warehouse
from tests.integration.helpers import START, contents, land, replay, scan_results, window_end

WINDOWS = 6
"""Windows of the session's in-order warehouse (all landed before window 1 runs); the
interrupted backfill of test_backfill.py compares against it too."""
SNAPSHOTS = (1, 3, 4)
"""Windows after which the in-order warehouse is copied, for the tests that start there."""
PREFIX = "warehouse"  # tests.conftest.new_warehouse: s3://<bucket>/warehouse
_LANDED_AT = re.compile(r"/landing/.*?(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/")


def _s3(moto: MotoServer) -> Any:
    import boto3

    from lakehouse.moto_server import ACCESS_KEY, REGION, SECRET_KEY

    return boto3.client("s3", endpoint_url=moto.endpoint_url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name=REGION)


def _landed_before(key: str, end: datetime) -> bool:
    """Whether ``key`` is not a landing file, or one that landed before ``end`` (time from its key)."""
    m = _LANDED_AT.search(key)
    return m is None or datetime(*(int(g) for g in m.groups()), tzinfo=UTC) < end


def copy_bucket(moto: MotoServer, source: str, target: str, *, landed: int | None = None) -> None:
    """Copy every object of bucket ``source`` into the new bucket ``target``.

    With ``landed``, landing files of windows after window ``landed`` are left out, so the
    copy holds the landing of ``land(landed)`` exactly (the simulator writes each window's
    bytes independently of the others). Delta tables address their files relative to the
    table, so the copy is a warehouse of its own. A copied object keeps its key and ETag
    (what the landing cursor identifies a file by) but gets a new last-modified time; that
    only matters for a file older than the cursor's look-back horizon (one hour, four
    windows), which no test that starts from a copy reaches.
    """
    client = _s3(moto)
    moto.create_bucket(target)
    keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=source)
            for obj in page.get("Contents", [])]
    if landed is not None:
        keys = [k for k in keys if _landed_before(k, window_end(landed))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.copy_object(Bucket=target, Key=k, CopySource={"Bucket": source, "Key": k}),
                      keys))


def point_at(moto: MotoServer, mp: pytest.MonkeyPatch, bucket: str) -> str:
    """Configure the environment for the warehouse in ``bucket``; returns its URI."""
    uri = f"s3://{bucket}/{PREFIX}"
    for key, value in moto.env(uri).items():
        mp.setenv(key, value)
    mp.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri


@dataclass
class InOrder:
    """``land(6)``, then windows 1..6 run in order by one ``backfill`` flow (one ``micro-batch``
    subflow per window), once per session.

    ``summary(k)`` is what window k's run returned, ``contents(2)`` every table after
    window 2, ``use(k)`` points a test at the warehouse as it was after window k
    (read-only: other tests use it too), ``clone(k, landed=n)`` gives a test a copy of it
    of its own, holding the landing of windows 1..n. ``state``, ``finished``, ``flow_run``
    and ``artifacts`` are what the backfill left: its final state, the windows its listener
    heard of, its flow run and its artifacts' data, read as soon as it ended.
    """

    moto: MotoServer
    bucket: str
    state: Any = None
    finished: list[WindowDone] = field(default_factory=list)
    flow_run: Any = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[int, str] = field(default_factory=dict)
    """Window → bucket of the copy taken after it."""
    tables: dict[int, dict[str, pl.DataFrame]] = field(default_factory=dict)
    scans: dict[int, pl.DataFrame] = field(default_factory=dict)
    """Window → ``quality.scan_results`` after it (:func:`~tests.integration.helpers.scan_results`)."""

    def _done(self, done: WindowDone) -> None:
        """After each window, inside the backfill: record what later tests start from."""
        self.finished.append(done)
        if done.index == 2:
            self.tables[2] = contents()
            self.scans[2] = scan_results()
        if done.index in SNAPSHOTS:
            self.snapshots[done.index] = f"in-order-{done.index}-{uuid.uuid4().hex[:8]}"
            copy_bucket(self.moto, self.bucket, self.snapshots[done.index])

    def summary(self, k: int) -> dict[str, Any]:
        return self.finished[k - 1].summary

    def contents(self, k: int) -> dict[str, pl.DataFrame]:
        return self.tables[k]

    def _bucket(self, k: int) -> str:
        if k == WINDOWS:
            return self.bucket  # the last window: nothing runs after it
        assert k in self.snapshots, f"window {k} is not one of the snapshots {SNAPSHOTS}"
        return self.snapshots[k]

    def use(self, k: int, monkeypatch: pytest.MonkeyPatch) -> str:
        """Point the environment at the warehouse after window ``k``, to read only."""
        return point_at(self.moto, monkeypatch, self._bucket(k))

    def clone(self, k: int, monkeypatch: pytest.MonkeyPatch, *, landed: int) -> str:
        """A fresh copy of the warehouse after window ``k``, landing of windows 1..``landed``."""
        assert landed >= k, (k, landed)
        bucket = f"lake-{uuid.uuid4().hex[:12]}"
        copy_bucket(self.moto, self._bucket(k), bucket, landed=landed)
        return point_at(self.moto, monkeypatch, bucket)


@pytest.fixture(scope="session")
def in_order(moto: MotoServer, prefect_api: str) -> InOrder:
    """The session's in-order windows (see :class:`InOrder`)."""
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client

    from flows.backfill import backfill, listening

    with pytest.MonkeyPatch.context() as mp:
        uri = new_warehouse(moto, mp, "in-order")
        land(WINDOWS)
        ref = InOrder(moto, uri.split("/")[2])
        with listening(ref._done):
            ref.state = backfill(start=START, end=window_end(WINDOWS), interval="15m", return_state=True)
        assert ref.state.is_completed(), ref.state.message
        ref.flow_run = get_client(sync_client=True).read_flow_run(ref.state.state_details.flow_run_id)
        ref.artifacts = {key: Artifact.get(key).data for key in ("backfill-progress", "backfill-summary")}
    return ref


@pytest.fixture(scope="session")
def two_windows(in_order: InOrder) -> dict[str, pl.DataFrame]:
    """Every table after ``land(2)`` and windows 1 and 2 run in order, on moto S3 (read-only)."""
    return in_order.contents(2)


@dataclass(frozen=True)
class Replayed:
    """The warehouse after window 4 (``in_order.clone(4, landed=4)``), then one uninterrupted
    quarantine replay: every table, and the scan results."""

    tables: dict[str, pl.DataFrame]
    scans: pl.DataFrame


@pytest.fixture(scope="session")
def replayed(in_order: InOrder) -> Replayed:
    """A quarantine replay after the in-order window 4, once per session (see :class:`Replayed`)."""
    with pytest.MonkeyPatch.context() as mp:
        in_order.clone(4, mp, landed=4)
        state = replay()
        assert state.is_completed(), state.message
        assert any(r["replayed"] for r in state.result()["replayed"]), "nothing to replay after window 4"
        return Replayed(contents(), scan_results())
