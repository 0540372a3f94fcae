"""The backfill flow: every window of ``[start, end)``, in order, each a micro-batch subflow.

Resumable by construction, with nothing to remember: each window runs the ordinary
``micro_batch`` flow, whose writes are idempotent (a Delta application transaction per
commit, invariant 1). After an interruption, running the same backfill again re-runs the
finished windows as no-ops (they find nothing new and commit nothing) and continues with
the first window that had not finished, from the step where it stopped. No window is
skipped by guesswork, so a backfill can never miss one.

Order matters: a window whose gate blocks (or that fails otherwise) stops the backfill
with :class:`WindowFailed`, naming the window; later windows are not run.

The command line shows a progress bar without polling the API: it calls this flow
in-process and subscribes to finished windows with :func:`listening` (a module-level hook;
a callback cannot be a flow parameter, since parameters are serialised to the Prefect API).
Deployment runs and other callers simply have no listener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from flows.microbatch import micro_batch
from flows.summary import BackfillSummary, BatchSummary, markdown
from lakehouse.declaration import Pipeline, load
from lakehouse.errors import GateFailed, TerminalError
from lakehouse.window import Window, parse_interval, parse_time, windows_between


class WindowFailed(TerminalError):
    """A window of a backfill was blocked by a gate or failed; later windows were not run."""

    def __init__(self, message: str, *, window: Window, blocked: bool) -> None:
        super().__init__(message)
        self.window = window
        self.blocked = blocked


@dataclass(frozen=True)
class WindowDone:
    """A finished window, as :func:`listening` callbacks receive it."""

    index: int
    """1-based position of the window in the backfill."""
    total: int
    window: Window
    summary: BatchSummary
    """What ``micro_batch`` returned for the window."""


Listener = Callable[[WindowDone], None]
_listeners: list[Listener] = []


@contextmanager
def listening(callback: Listener) -> Iterator[None]:
    """Call ``callback`` after each window that a backfill in this process finishes.

    Example::

        with listening(lambda done: print(done.index, done.window)):
            backfill(start="2026-01-01T00:00:00Z", end="2026-01-01T06:00:00Z")
    """
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def plan(
    start: datetime | str,
    end: datetime | str,
    interval: str | None = None,
    pipeline: str | None = None,
) -> tuple[Pipeline, list[Window]]:
    """The pipeline and the windows of ``[start, end)``; ``ValueError`` for a bad range.

    ``interval`` defaults to the pipeline's; ``start`` and ``end`` must be on its grid.
    """
    chosen = load().pipeline(pipeline)
    length: timedelta = parse_interval(interval) if interval else chosen.interval
    if isinstance(start, str):  # parameters of a deployment run arrive as JSON text
        start = parse_time(start)
    if isinstance(end, str):
        end = parse_time(end)
    return chosen, windows_between(start, end, length)


def span(windows: list[Window]) -> str:
    """``2026-01-01 00:00 → 06:00`` (the end's date is written only when it differs)."""
    first, last = windows[0].start, windows[-1].end
    end = f"{last:%H:%M}" if last.date() == first.date() else f"{last:%Y-%m-%d %H:%M}"
    return f"{first:%Y-%m-%d %H:%M} → {end}"


def _run_name() -> str:
    params = flow_run.parameters
    chosen, windows = plan(params["start"], params["end"], params.get("interval"), params.get("pipeline"))
    return f"{chosen.name} backfill {span(windows)}"


@flow(name="backfill", flow_run_name=_run_name, log_prints=False)
def backfill(
    start: datetime,
    end: datetime,
    interval: str | None = None,
    pipeline: str | None = None,
) -> BackfillSummary:
    """Run every window of ``[start, end)`` through every layer, in order, as subflows.

    Safe to re-run and to resume after an interruption: finished windows commit nothing
    the second time. Publishes a ``backfill-progress`` progress artifact, updated as
    windows finish, and a ``backfill-summary`` markdown artifact of the windows.

    Args:
        start: start of the first window (ISO 8601 with zone), on the interval grid.
        end: end of the last window, after ``start`` and on the grid.
        interval: window length such as ``15m``; default: the pipeline's source interval.
        pipeline: which pipeline of the declaration; needed only when it has several.

    Returns:
        The backfill, with the ``micro_batch`` summary of each window in order (``windows``).

    Raises:
        WindowFailed: a window was blocked by a gate or failed; it names the window.
    """
    chosen, windows = plan(start, end, interval, pipeline)
    logger = get_run_logger()
    logger.info("%s: backfill of %d windows, %s", chosen.name, len(windows), span(windows))
    progress = cast(UUID, create_progress_artifact(  # in a sync flow the call returns the UUID
        progress=0.0, key="backfill-progress", description=f"{chosen.name} backfill {span(windows)}: 0/{len(windows)} windows",
    ))
    summaries: list[BatchSummary] = []
    for index, window in enumerate(windows, 1):
        state = micro_batch(at=window.end, interval=interval, pipeline=chosen.name, return_state=True)
        if not state.is_completed():
            failure = _stop(chosen, windows, index, state)
            _publish(chosen, windows, summaries, stopped=(window, str(failure)))
            raise failure
        summary: BatchSummary = state.result()
        summaries.append(summary)
        update_progress_artifact(
            progress, 100.0 * index / len(windows),
            description=f"{chosen.name} backfill {span(windows)}: {index}/{len(windows)} windows, last {window}",
        )
        for listener in list(_listeners):
            listener(WindowDone(index=index, total=len(windows), window=window, summary=summary))
    return _publish(chosen, windows, summaries)


def _stop(pipeline: Pipeline, windows: list[Window], index: int, state: Any) -> WindowFailed:
    """The error that stops a backfill at window ``index``, saying what happened and what to do."""
    window = windows[index - 1]
    cause = state.result(raise_on_failure=False)
    blocked = isinstance(cause, GateFailed)
    reason = str(cause) if isinstance(cause, BaseException) else (state.message or state.name)
    later = len(windows) - index
    return WindowFailed(
        f"{pipeline.name} backfill stopped at window {window} ({index}/{len(windows)}): "
        f"{'blocked' if blocked else 'failed'}: {reason}. The {later} later window(s) were not run; "
        "run the backfill again once the cause is fixed (finished windows commit nothing twice).",
        window=window, blocked=blocked,
    )


def _publish(
    pipeline: Pipeline,
    windows: list[Window],
    summaries: list[BatchSummary],
    *,
    stopped: tuple[Window, str] | None = None,
) -> BackfillSummary:
    summary = BackfillSummary(
        pipeline=pipeline.name, span=span(windows), planned=len(windows), windows=summaries,
        stopped_at=str(stopped[0]) if stopped else None, reason=stopped[1] if stopped else None,
    )
    create_markdown_artifact(key="backfill-summary", markdown=markdown(summary), description=f"{pipeline.name} backfill {span(windows)}")
    return summary
