"""prefect.yaml for real: a Prefect server, a process work pool, `prefect deploy --all`,
a worker, and deployment runs that complete one at a time with their artifacts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from lakehouse.moto_server import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A `prefect server start` of its own (the session harness is not a deploy target)."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "LAKEHOUSE_PROJECT_DIR": str(ROOT),
    }
    server = subprocess.Popen([PREFECT, "server", "start"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("prefect server did not start") from None
                time.sleep(0.5)
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def cli(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


async def _pause_schedules_and_trigger(ats: list[str]) -> list[UUID]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name("micro-batch/shop-micro-batch")
        for schedule in await client.read_deployment_schedules(deployment.id):
            await client.update_deployment_schedule(deployment.id, schedule.id, active=False)
        for run in await client.read_flow_runs():  # the runs scheduled before the pause
            if run.state and run.state.is_scheduled():
                await client.delete_flow_run(run.id)
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


def test_deployed_runs_complete_one_at_a_time_with_artifacts(prefect_server: dict[str, str], warehouse: str, prefect_api: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = {**prefect_server, **{k: os.environ[k] for k in ("LAKEHOUSE_WAREHOUSE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}}
    # this process's client must talk to this server, not to the session's test harness
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
        _deploy_and_run(env)


def _deploy_and_run(env: dict[str, str]) -> None:
    cli(sys.executable, "-m", "flows.cli", "simulate", "--start", "2026-01-01T00:00:00Z", "--windows", "2", env=env)
    cli(PREFECT, "work-pool", "create", "--type", "process", "local", env=env)
    cli(PREFECT, "--no-prompt", "deploy", "--all", env=env)

    ids = asyncio.run(_pause_schedules_and_trigger(["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"]))
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "local"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while True:
            runs = asyncio.run(_runs(ids))
            if all(r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

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
