"""prefect.yaml for real: a Prefect server, a process work pool, `prefect deploy --all`,
a worker, and deployment runs that complete one at a time with their artifacts.

The server, the pool, the deployments and the worker are those of the session's
`lakehouse serve` stack (tests/e2e/serving.py), which starts them with the same commands
(`prefect server start`, `prefect work-pool create --type process local`,
`prefect --no-prompt deploy --all`, `prefect worker start --pool local`).
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.e2e.serving import Served

pytestmark = pytest.mark.slow


async def _pause_schedules() -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name("micro-batch/shop-micro-batch")
        for schedule in await client.read_deployment_schedules(deployment.id):
            await client.update_deployment_schedule(deployment.id, schedule.id, active=False)
        for run in await client.read_flow_runs():  # the runs scheduled before the pause
            if run.state and run.state.is_scheduled():
                await client.delete_flow_run(run.id)


async def _trigger(ats: list[str]) -> list[UUID]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name("micro-batch/shop-micro-batch")
        ids = []
        for at in ats:
            run = await client.create_flow_run_from_deployment(deployment.id, parameters={"at": at})
            ids.append(run.id)
        return ids


async def _runs(ids: list[UUID]) -> list:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [await client.read_flow_run(i) for i in ids]


async def _artifacts(run_id: UUID) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))


def test_deployed_runs_complete_one_at_a_time_with_artifacts(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    served.ensure_running()
    for key, value in served.env().items():  # the stack's S3 warehouse
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    # this process's client must talk to the stack's server, not to the session's test harness
    with temporary_settings({PREFECT_API_URL: served.api}):
        _deploy_and_run()


def _deploy_and_run() -> None:
    # pause the schedule first, so that no scheduled run of the stack ingests the windows landed next
    asyncio.run(_pause_schedules())
    landed = CliRunner().invoke(app, ["simulate", "--start", "2026-01-01T00:00:00Z", "--windows", "2"])
    assert landed.exit_code == 0, landed.output
    ids = asyncio.run(_trigger(["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"]))
    deadline = time.monotonic() + 240  # the stack's worker runs them
    while True:
        runs = asyncio.run(_runs(ids))
        if all(r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
            break
        time.sleep(2)

    assert [r.state.type.value for r in runs] == ["COMPLETED", "COMPLETED"], [r.state for r in runs]
    assert [r.name for r in runs] == ["shop 2026-01-01 00:00–00:15", "shop 2026-01-01 00:15–00:30"]
    first, second = sorted(runs, key=lambda r: r.start_time)
    assert first.end_time <= second.start_time, "two runs of one deployment overlapped"
    wanted = {"batch-summary", "gate-silver-products", "gate-silver-orders", "gate-silver-order-items", "gate-gold-daily-sales",
              "gold-daily-sales-preview"}
    deadline = time.monotonic() + 30
    while True:  # artifacts written by the flow's process may reach the API after its state
        keys = {a.key for a in asyncio.run(_artifacts(first.id))}  # the first run did the work
        if wanted <= keys or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert wanted <= keys, keys
