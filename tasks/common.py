"""Retry policy shared by the tasks: transient failures retry with backoff and jitter."""

from __future__ import annotations

from typing import Any

from lakehouse.errors import TerminalError


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry unless the failure is terminal (a blocked gate, a bad configuration)."""
    try:
        state.result()
    except TerminalError:
        return False
    except Exception:
        return True
    return False


RETRY = {
    "retries": 3,
    "retry_delay_seconds": [2, 8, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}
