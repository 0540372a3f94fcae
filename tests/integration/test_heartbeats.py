"""Flows run in this process (the ``lakehouse`` command, the benchmark) send no heartbeats:
the flow engine joins its heartbeat thread as each run ends, which waited out up to a
second per run (flows/inprocess.py). Told by the real Prefect API's events."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import httpx
from prefect import flow
from prefect.settings import temporary_settings

from flows.inprocess import in_this_process

HEARTBEAT = "prefect.flow-run.heartbeat"


@flow
def _noop() -> str:
    return "done"


def _run_id() -> UUID:
    state = _noop(return_state=True)
    assert state.is_completed()
    return state.state_details.flow_run_id


def _events(api: str, run: UUID, name: str) -> list[dict[str, Any]]:
    body = {"filter": {"event": {"name": [name]}, "any_resource": {"id": [f"prefect.flow-run.{run}"]}}, "limit": 50}
    with httpx.Client(base_url=api, timeout=30) as client:
        page = client.post("/events/filter", json=body)
        page.raise_for_status()
        return page.json()["events"]


def test_a_flow_run_in_this_process_sends_no_heartbeat(prefect_api: str) -> None:
    with temporary_settings(updates={"flows.heartbeat_frequency": 30}):  # Prefect's default sends them (every 180 s)
        beating = _run_id()
        with in_this_process():
            quiet = _run_id()
    deadline = time.monotonic() + 30  # events reach the API asynchronously, in the order they were sent
    while not _events(prefect_api, quiet, "prefect.flow-run.Completed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _events(prefect_api, beating, HEARTBEAT), "the control run sent no heartbeat: the test would prove nothing"
    assert _events(prefect_api, quiet, HEARTBEAT) == []
