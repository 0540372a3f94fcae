"""Flows run in this process (the ``lakehouse`` command, the benchmark, the tests): Prefect
settings for a run whose caller waits for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


@contextmanager
def in_this_process() -> Iterator[None]:
    """Flow runs started inside this block send no heartbeats, unless ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` is set.

    A heartbeat lets the Prefect server tell that a run's process died (an automation on
    missing heartbeats marks it crashed). Prefect sends them from a thread that the flow
    engine joins as every flow run ends, and the join waits out the thread's one-second
    sleep: 0.5–1 s added to every window, every window of a backfill included, about a
    fifth of a 100k-line window. A command that runs a flow in its own process waits for
    it and reports how it ended itself, so it does without; a deployment's runs, started
    by a worker in processes of their own, keep Prefect's default (every 180 s). Setting
    the variable (an integer ≥ 30) turns them back on here too.
    """
    if os.environ.get(HEARTBEAT_VARIABLE):
        yield
        return
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield
