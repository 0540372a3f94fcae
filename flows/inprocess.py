"""Flows run in this process (the ``lakehouse`` command, the benchmark, the tests): Prefect
settings for a run whose caller waits for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.settings import Settings

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
    import prefect.context

    current = prefect.context.get_settings_context()
    with prefect.context.SettingsContext(profile=current.profile, settings=_without_heartbeats(current.settings)):
        yield


def _without_heartbeats(settings: Settings) -> Settings:
    """``settings`` with heartbeats off.

    Not Prefect's ``temporary_settings``, which validates a whole new settings object on
    every entry (0.1–0.3 s, every window of a backfill included): ``None`` is a valid value
    of that one field, so a copy with it replaced needs no validation.
    """
    return settings.model_copy(update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
