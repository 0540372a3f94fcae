"""What the tasks share: errors reported cleanly, and retries for what a retry can cure."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from lakehouse.errors import is_transient, reported

P = ParamSpec("P")
R = TypeVar("R")


def engine_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-raise what an engine call raises as :func:`lakehouse.errors.reported` says.

    A missing bucket fails at once with one line naming it; a storage or network failure
    becomes ``SourceUnavailable`` (retried) with its message cleaned of colour codes; a bug
    is re-raised as it is. The original error stays the cause, with its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TimeoutError:
            raise  # Prefect's own task timeout: its state says so, and it is retried as it is
        except Exception as exc:
            settings = args[0] if args else kwargs.get("settings")
            roots = (getattr(settings, "warehouse", ""), getattr(settings, "landing_root", ""))
            error = reported(exc, roots=tuple(r for r in roots if r))
            if error is exc:
                raise
            raise error from exc

    return wrapper


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what a retry can cure (:func:`lakehouse.errors.is_transient`).

    Storage and network outages and commit conflicts are retried; a blocked gate, a bad
    declaration, a missing bucket and a bug (``TypeError``, ``KeyError``, ``ValueError`` …)
    are not: they would fail the same way three more times.
    """
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


RETRY = {
    "retries": 3,
    "retry_delay_seconds": [2, 8, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}
