"""Unreadable landed files: recorded once, quarantined with their cause, never a wedge.

Real corrupt files on real moto S3, run as real Prefect flow runs: a corrupt gzip (a
``zlib.error`` inside the decompressor) used to crash the bronze task, which was retried
three times and then failed every later window on the same file.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
from typing import Any

import polars as pl
import pytest

from tests.integration.helpers import land, read, run

pytestmark = pytest.mark.usefixtures("prefect_api")


def corrupt_gzip() -> bytes:
    """A gzip header and a deflate stream that is garbage: ``zlib.error: invalid block type``."""
    good = gzip.compress(b'{"order_id": "O-x", "status": "paid"}\n' * 50)
    return good[:10] + b"\xff" * 40 + good[50:]


async def task_attempts(flow_run_id: Any) -> dict[str, int]:
    """Task run name → how many times it ran (1 = no retry), for one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r.run_count for r in runs}


def test_a_corrupt_gzip_is_quarantined_once_with_its_cause_and_later_windows_run(warehouse: str) -> None:
    from lakehouse.config import Settings
    from lakehouse.storage import open_store

    land(1)
    settings = Settings()
    bad = corrupt_gzip()
    key = "orders/2026/01/01/00/05/part-9.jsonl.gz"
    open_store(settings.landing_root, settings).put(key, bad)

    first = run(1)
    assert first.is_completed(), first.message
    attempts = asyncio.run(task_attempts(first.state_details.flow_run_id))
    assert attempts["bronze orders"] == 1  # nothing to retry: the file is data, not an outage
    orders = next(t for t in first.result().tables if t.table == "silver.orders")
    assert orders.read == orders.merged + orders.rejected + orders.duplicates + orders.conflicts
    assert orders.reasons.get("unreadable") == 1

    # bronze keeps the whole file (base64) with its cause, as one row standing for the file
    kept = read("bronze", "orders_raw").filter(pl.col("_source_position") == key)
    assert kept.height == 1 and kept.get_column("_line").to_list() == [0]
    raw = kept.get_column("_raw").to_list()[0]
    head, digest, body = raw.split("\n")
    assert head.startswith("unreadable: gzip: ") and "(zlib.error)" in head, head
    assert digest == f"sha256:{hashlib.sha256(bad).hexdigest()} bytes:{len(bad)}"
    assert base64.b64decode(body.removeprefix("base64:")) == bad

    quarantined = read("quarantine", "orders").filter(pl.col("_source_position") == key)
    assert quarantined.height == 1
    reason = quarantined.get_column("_reject_reason").to_list()[0]
    assert reason.startswith("unreadable: gzip: ") and "invalid" in reason and "malformed" not in reason, reason
    assert quarantined.get_column("_rule").to_list() == ["unreadable"]

    second = run(2)  # the file stays where it landed; the next window neither re-reads nor trips on it
    assert second.is_completed(), second.message
    assert read("bronze", "orders_raw").filter(pl.col("_source_position") == key).height == 1
    assert read("quarantine", "orders").filter(pl.col("_source_position") == key).height == 1


def test_a_window_whose_only_file_is_unreadable_is_not_blocked(warehouse: str) -> None:
    """Batch-level checks measure records; an unreadable file is not a record with a NULL key."""
    from lakehouse.config import Settings
    from lakehouse.storage import open_store

    settings = Settings()
    key = "orders/2026/01/01/00/05/part-0.jsonl.gz"
    open_store(settings.landing_root, settings).put(key, gzip.compress(b'{"order_id": "O1"}\n' * 20)[:-12])  # truncated

    state = run(1)
    assert state.is_completed(), state.message
    orders = next(t for t in state.result().tables if t.table == "silver.orders")
    assert (orders.read, orders.rejected, orders.merged) == (1, 1, 0)
    reason = read("quarantine", "orders").filter(pl.col("_source_position") == key).get_column("_reject_reason").to_list()
    assert reason and reason[0].startswith("unreadable: gzip: ") and "EOFError" in reason[0], reason
