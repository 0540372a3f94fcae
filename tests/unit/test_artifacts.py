"""Artifacts sent in the background: a failure is counted and logged, never raised into the window."""

from __future__ import annotations

import logging

import pytest

from tasks import artifacts


def test_an_artifact_that_cannot_be_created_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    made: list[str] = []

    def create(*, key: str) -> None:
        if key != key.lower():
            msg = f"Artifact key {key!r} must only contain lowercase letters, numbers, and dashes"
            raise ValueError(msg)
        made.append(key)

    artifacts.later(create, key="gate-silver-orders")
    artifacts.later(create, key="Gate Silver Orders")
    with caplog.at_level(logging.WARNING, logger="lakehouse.artifacts"):
        assert artifacts.settled() == 1
    assert made == ["gate-silver-orders"]
    assert "must only contain lowercase letters" in caplog.text
    assert artifacts.settled() == 0  # nothing is waited for twice


def test_a_task_in_a_worker_thread_sends_its_artifact_before_it_returns() -> None:
    """A Dask worker's pending sends would be waited for by no flow: off the main thread, none are deferred."""
    import threading

    made: list[str] = []
    worker = threading.Thread(target=lambda: (artifacts.later(lambda key: made.append(key), key="gate-gold-daily-sales"),
                                              made.append("returned")))
    worker.start()
    worker.join()
    assert made == ["gate-gold-daily-sales", "returned"]
