"""Reference warehouses shared by the integration tests: built once per session.

Many tests start from the same windows run in order (1, then 2, then 3 …) and then go on
differently: a crash in window 2, a re-run of windows 1–3, a replay after window 4. Running
that prefix again in every test (and every parametrisation) was most of what such tests
cost. The session runs it once instead, in one warehouse (``in_order``), and keeps a copy
of the warehouse after the windows tests start from; a test that only reads uses a copy as
it is, a test that writes gets a fresh copy of its own (a bucket copy in the moto server
takes a fraction of a window's time). The windows run in a process of their own
(tests/integration/in_order.py) that starts with the session, so the first tests (the
e2e ones) run meanwhile.
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
from flows.summary import BackfillSummary, BatchSummary
from lakehouse.dev.moto_server import MotoServer
from tests.conftest import InOrderBuild
from tests.integration.helpers import contents, replay, scan_results, window_end

WINDOWS = 4
"""Windows of the session's in-order warehouse (all landed before window 1 runs); the
interrupted backfill of test_backfill.py resumes to its last window's tables."""
SNAPSHOTS = (1, 3)
"""Windows after which the in-order warehouse is copied, for the tests that start there
(after the last window, ``WINDOWS``, the warehouse itself: nothing runs in it later)."""
PREFIX = "warehouse"  # tests.conftest.new_warehouse: s3://<bucket>/warehouse
_LANDED_AT = re.compile(r"/landing/.*?(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/")


def _s3(endpoint: str) -> Any:
    """An S3 client of the moto server at ``endpoint``, from a session of its own (safe beside other threads)."""
    import boto3

    from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY

    return boto3.session.Session().client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                                          aws_secret_access_key=SECRET_KEY, region_name=REGION)


def _landed_before(key: str, end: datetime) -> bool:
    """Whether ``key`` is not a landing file, or one that landed before ``end`` (time from its key)."""
    m = _LANDED_AT.search(key)
    return m is None or datetime(*(int(g) for g in m.groups()), tzinfo=UTC) < end


def copy_bucket(endpoint: str, source: str, target: str, *, landed: int | None = None) -> None:
    """Copy every object of bucket ``source`` into the new bucket ``target`` (moto at ``endpoint``).

    With ``landed``, landing files of windows after window ``landed`` are left out, so the
    copy holds the landing of ``land(landed)`` exactly (the simulator writes each window's
    bytes independently of the others). Delta tables address their files relative to the
    table, so the copy is a warehouse of its own. A copied object keeps its key and ETag
    (what the landing cursor identifies a file by) but gets a new last-modified time; that
    only matters for a file older than the cursor's look-back horizon (one hour, four
    windows), which no test that starts from a copy reaches.
    """
    client = _s3(endpoint)
    client.create_bucket(Bucket=target)
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
class Built:
    """What the in-order backfill left, recorded in the process that ran it (tests/integration/in_order.py)."""

    bucket: str
    completed: bool = False
    message: str | None = None
    flow_run_id: Any = None
    returned: BackfillSummary | None = None
    """What the backfill flow returned (``state.result()``), with each window's summary."""
    finished: list[WindowDone] = field(default_factory=list)
    """The windows the backfill's listener heard of, each with what its run returned."""
    artifacts: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[int, str] = field(default_factory=dict)
    """Window → bucket of the copy taken after it."""
    tables: dict[int, dict[str, pl.DataFrame]] = field(default_factory=dict)
    scans: dict[int, pl.DataFrame] = field(default_factory=dict)
    """Window → ``quality.scan_results`` after it (:func:`~tests.integration.helpers.scan_results`)."""

    def done(self, done: WindowDone, endpoint: str) -> None:
        """After each window, inside the backfill: record what later tests start from."""
        self.finished.append(done)
        if done.index == 2:
            self.tables[2] = contents()
            self.scans[2] = scan_results()
        if done.index in SNAPSHOTS:
            self.snapshots[done.index] = f"in-order-{done.index}-{uuid.uuid4().hex[:8]}"
            copy_bucket(endpoint, self.bucket, self.snapshots[done.index])


@dataclass
class InOrder:
    """``land(4)``, then windows 1..4 run in order by one ``backfill`` flow (one ``micro-batch``
    subflow per window), once per session, in a process of its own that starts with the
    session (fixture ``in_order_build``, tests/conftest.py), while the first tests run.

    ``summary(k)`` is what window k's run returned, ``contents(2)`` every table after
    window 2, ``use(k)`` points a test at the warehouse as it was after window k
    (read-only: other tests use it too), ``clone(k, landed=n)`` gives a test a copy of it
    of its own, holding the landing of windows 1..n. ``built`` is what the backfill left
    (whether it completed, its windows, its artifacts' data read as soon as it ended),
    ``flow_run`` its flow run.
    """

    moto: MotoServer
    built: Built
    flow_run: Any = None

    @property
    def bucket(self) -> str:
        return self.built.bucket

    @property
    def scans(self) -> dict[int, pl.DataFrame]:
        return self.built.scans

    def summary(self, k: int) -> BatchSummary:
        return self.built.finished[k - 1].summary

    def contents(self, k: int) -> dict[str, pl.DataFrame]:
        return self.built.tables[k]

    def _bucket(self, k: int) -> str:
        if k == WINDOWS:
            return self.bucket  # the last window: nothing runs after it
        assert k in self.built.snapshots, f"window {k} is not one of the snapshots {SNAPSHOTS}"
        return self.built.snapshots[k]

    def use(self, k: int, monkeypatch: pytest.MonkeyPatch) -> str:
        """Point the environment at the warehouse after window ``k``, to read only."""
        return point_at(self.moto, monkeypatch, self._bucket(k))

    def copy(self, k: int, *, landed: int) -> str:
        """A fresh copy of the warehouse after window ``k``, landing of windows 1..``landed``;
        returns its bucket (the environment is left as it is)."""
        assert landed >= k, (k, landed)
        bucket = f"lake-{uuid.uuid4().hex[:12]}"
        copy_bucket(self.moto.endpoint_url, self._bucket(k), bucket, landed=landed)
        return bucket

    def clone(self, k: int, monkeypatch: pytest.MonkeyPatch, *, landed: int) -> str:
        """:meth:`copy`, and the environment pointed at it; returns its URI."""
        return point_at(self.moto, monkeypatch, self.copy(k, landed=landed))


@pytest.fixture(scope="session")
def in_order(moto: MotoServer, prefect_api: str, in_order_build: InOrderBuild) -> InOrder:
    """The session's in-order windows (see :class:`InOrder`), once their process has built them."""
    from prefect.client.orchestration import get_client

    built: Built = in_order_build.wait()
    assert built.completed, built.message
    return InOrder(moto, built, get_client(sync_client=True).read_flow_run(built.flow_run_id))


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
        assert any(r.replayed for r in state.result().replayed), "nothing to replay after window 4"
        return Replayed(contents(), scan_results())
