"""After an outage, late scheduled runs of a deployment catch up in one run, not one per window."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from tests.integration.helpers import land, read, window_end

pytestmark = pytest.mark.usefixtures("prefect_api")


async def _late_runs(count: int) -> list:
    """A deployment (no work pool needed) and ``count`` runs its schedule made, all overdue."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    async with get_client() as client:
        flow_id = await client.create_flow_from_name("micro-batch")
        deployment = await client.create_deployment(flow_id=flow_id, name=f"catch-up-{uuid4().hex[:8]}",
                                                    parameters={"interval": "15m"})
        return [
            await client.create_flow_run_from_deployment(deployment, state=Scheduled(scheduled_time=window_end(k)))
            for k in range(1, count + 1)
        ]


async def _read(run_id):  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(run_id)


def test_the_oldest_late_run_skips_the_middle_ones_are_cancelled_and_the_newest_catches_up(warehouse: str) -> None:
    from prefect.flow_engine import run_flow

    from flows.microbatch import micro_batch

    land(4)
    runs = asyncio.run(_late_runs(4))
    oldest = asyncio.run(_read(runs[0].id))
    state = run_flow(micro_batch, flow_run=oldest, parameters=oldest.parameters, return_type="state")
    assert state.is_completed(), state.message
    skipped = state.result()
    assert skipped.superseded_by == runs[-1].name and skipped.tables == []
    assert skipped.window == "2026-01-01 00:00–00:15"
    for middle in runs[1:-1]:
        after = asyncio.run(_read(middle.id))
        assert after.state.is_cancelled() and runs[-1].name in after.state.message

    newest = asyncio.run(_read(runs[-1].id))
    state = run_flow(micro_batch, flow_run=newest, parameters=newest.parameters, return_type="state")
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary.superseded_by is None and summary.window == "2026-01-01 00:45–01:00"
    assert summary.files == 4 * 8  # every window's files, in one run (the catalogue's twice: products, product_history)
    orders = read("silver", "orders")
    assert orders.filter(orders["order_id"].str.starts_with("O-202601010000")).height == 40  # window 1's orders


def test_a_run_for_a_chosen_window_never_skips(warehouse: str) -> None:
    from flows.microbatch import micro_batch

    land(1)
    state = micro_batch(at=window_end(1), interval="15m", return_state=True)
    assert state.is_completed() and state.result().superseded_by is None
