"""The micro-batch flow: landing → bronze → gate → silver → gate → gold, for one window."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.runtime import deployment as deployment_runtime
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.summary import (
    BatchSummary,
    BronzeCounts,
    gold_changes,
    markdown,
    superseded_message,
    table_counts,
)
from lakehouse.config import Settings
from lakehouse.declaration import Pipeline, load
from lakehouse.dev.faults import crash_point
from lakehouse.errors import ConfigError
from lakehouse.layers.bronze import BronzeResult
from lakehouse.layers.gold import GoldResult
from lakehouse.layers.silver.batch import SilverResult
from lakehouse.window import Window, parse_interval, parse_time, window_ending_at
from tasks import artifacts
from tasks.events import emit_gold_events
from tasks.layers import (
    commit_gold,
    commit_silver,
    ingest_bronze,
    prepare_gold,
    prepare_silver,
    raise_if_blocked,
)

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.schemas.objects import FlowRun, State


def resolve(at: datetime | str | None, interval: str | None, pipeline: str | None) -> tuple[Pipeline, Window]:
    """The pipeline, and the window ending at ``at`` or at the run's scheduled time.

    The window never comes from the clock: a scheduled run at 10:15 with a 15-minute
    interval processes ``[10:00, 10:15)`` however late it starts.
    """
    chosen = load().pipeline(pipeline)
    length: timedelta = parse_interval(interval) if interval else chosen.interval
    if isinstance(at, str):  # parameters of a deployment run arrive as JSON text
        at = parse_time(at)
    if at is None:
        scheduled = flow_run.scheduled_start_time
        at = datetime.fromisoformat(str(scheduled)) if scheduled else datetime.now(UTC)
    return chosen, window_ending_at(at, length)


def _run_name() -> str:
    params = flow_run.parameters
    pipeline, window = resolve(params.get("at"), params.get("interval"), params.get("pipeline"))
    return f"{pipeline.name} {window}"


def superseding_run() -> str | None:
    """The catch-up policy for scheduled runs that are late after an outage.

    When this run of a deployment started from its schedule (no ``at``) and later runs of
    the same deployment are already due (scheduled at or before now and not started), the
    newest of them processes every file landed before its window's end, this run's files
    included: bronze takes all pending files, whatever window they belong to. So this run
    skips, and the due runs between it and the newest are cancelled. An outage of any
    length is caught up by one run. Returns the name of that newest run, or None to run.
    """
    context = FlowRunContext.get()
    # the run's own record first: prefect.runtime.deployment.id misses it and reads the
    # flow run back from the API (1.5 s measured on a busy machine)
    deployment = context.flow_run.deployment_id if context and context.flow_run else deployment_runtime.id
    if not deployment or flow_run.parameters.get("at") is not None or not flow_run.scheduled_start_time:
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.states import Cancelled

    mine = datetime.fromisoformat(str(flow_run.scheduled_start_time))
    with get_client(sync_client=True) as client:
        due = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=[UUID(str(flow_run.id))]),
                deployment_id=FlowRunFilterDeploymentId(any_=[UUID(str(deployment))]),
                expected_start_time=FlowRunFilterExpectedStartTime.model_validate(  # validated into Prefect's DateTime
                    {"after_": mine + timedelta(microseconds=1), "before_": datetime.now(UTC)}
                ),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        )
        due = [r for r in due if r.parameters.get("at") is None]  # runs for a chosen window stay
        if not due:
            return None
        newest = due[0]
        for run in due[1:]:
            client.set_flow_run_state(
                run.id, Cancelled(message=f"superseded by {newest.name}, which catches up on its files"), force=True
            )
    return newest.name


def _emit_run_failed(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """``lakehouse.run.failed``: a micro-batch failed for good, with its window and cause."""
    try:
        chosen, window = resolve(flow_run.parameters.get("at"), flow_run.parameters.get("interval"), flow_run.parameters.get("pipeline"))
        name, start, end = chosen.name, window.start.isoformat(), window.end.isoformat()
    except Exception:  # the declaration itself may be what failed
        name, start, end = flow_run.parameters.get("pipeline") or "unknown", None, None
    emit_event(
        event="lakehouse.run.failed",
        resource={"prefect.resource.id": f"lakehouse.pipeline.{name}", "prefect.resource.name": name},
        related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run",
                  "prefect.resource.name": flow_run.name}],
        payload={"pipeline": name, "window_start": start, "window_end": end, "flow_run": flow_run.name,
                 "message": state.message},
    )


class Sequential(ThreadPoolTaskRunner):
    """One task at a time, each called in the flow's own thread (so its timeout can interrupt it)."""

    def __init__(self, max_workers: int | None = 1) -> None:
        super().__init__(max_workers=1)


class _Done:
    """The result of a task called directly, shaped like a future."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


def submit(task: Any, *args: Any) -> Any:
    """Submit ``task`` to the flow's task runner, or call it directly under :class:`Sequential`.

    A direct call runs in the flow's main thread, where Prefect enforces the task's timeout;
    in a worker thread it cannot interrupt a blocking call. Its arguments are plain values
    (never futures), so they are passed ``quote``-d: Prefect then does not walk them looking
    for futures and upstream results (the settings, a pipeline's declaration and a batch
    are thousands of nested objects: 0.1–0.4 s a window of Prefect's cost), at the price of
    the flow-run graph's arrows between tasks, which Prefect draws from those walks. A
    runner's ``submit`` gets them as they are (Dask takes a quoted value for a task tuple).
    """
    context = FlowRunContext.get()
    if context is None or isinstance(context.task_runner, Sequential):
        return _Done(task(*(quote(a) for a in args)))
    return task.submit(*args)


def task_runner(settings: Settings | None = None) -> TaskRunner[Any]:
    """The task runner ``LAKEHOUSE_TASK_RUNNER`` chooses (read when this module is imported).

    ``sequential`` (default): one task at a time. ``threads``: datasets and models fan out
    in threads. ``dask``: they fan out on a Dask cluster through prefect-dask, the one at
    ``LAKEHOUSE_DASK_ADDRESS`` or a local cluster of two worker processes per run.
    """
    settings = settings or Settings()
    if settings.task_runner == "dask":
        try:
            from prefect_dask.task_runners import DaskTaskRunner
        except ImportError as exc:
            msg = "LAKEHOUSE_TASK_RUNNER=dask needs prefect-dask, which is not installed: pip install 'lakehouse[dask]'"
            raise ConfigError(msg) from exc

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=8) if settings.task_runner == "threads" else Sequential()


@flow(name="micro-batch", flow_run_name=_run_name, log_prints=False, on_failure=[_emit_run_failed],
      task_runner=task_runner())
def micro_batch(
    at: datetime | None = None, interval: str | None = None, pipeline: str | None = None
) -> BatchSummary:
    """Process one window of a declared pipeline through every layer.

    Args:
        at: end of the window (ISO 8601 with zone); default: the run's scheduled time.
        interval: window length such as ``15m``; default: the pipeline's source interval.
        pipeline: which pipeline of the declaration; needed only when it has several.
    """
    settings = Settings()
    chosen, window = resolve(at, interval, pipeline)
    newer = superseding_run()
    if newer is not None:
        get_run_logger().warning(superseded_message(newer))
        skipped = BatchSummary(pipeline=chosen.name, window=str(window), window_end=window.end.isoformat(), superseded_by=newer)
        create_markdown_artifact(key="batch-summary", markdown=markdown(skipped), description=f"micro-batch {window}")
        return skipped
    get_run_logger().info("%s: window %s .. %s", chosen.name, window.start.isoformat(), window.end.isoformat())

    began = time.perf_counter()
    steps: dict[str, float] = {}
    landed = [f.result() for f in [submit(ingest_bronze, settings, ds, window) for ds in chosen.datasets]]
    steps["bronze"] = time.perf_counter() - began
    crash_point("bronze.committed")
    merged, refreshed = promote(settings, chosen, window, steps=steps)

    summary = summarize(chosen, window, landed, merged, refreshed, seconds=round(time.perf_counter() - began, 1),
                        steps={name: round(seconds, 2) for name, seconds in steps.items()})
    artifacts.settled()
    create_markdown_artifact(key="batch-summary", markdown=markdown(summary), description=f"micro-batch {window}")
    return summary


def promote(
    settings: Settings, chosen: Pipeline, window: Window | None, *, steps: dict[str, float] | None = None
) -> tuple[list, list]:
    """Gate and merge what silver has not consumed of bronze, then refresh gold (in a flow).

    Every silver gate runs before any silver merge; a blocked gate fails the run (with a
    ``lakehouse.gate.failed`` event) before anything downstream changes. ``window`` names
    the run's window in artifacts and events and is what freshness is measured against;
    None (a quarantine replay) measures against the clock. A backlog larger than one batch
    (``max_batch_rows``) is promoted in rounds, silver then gold, each round exactly once.
    ``steps`` collects the seconds spent in ``silver`` and ``gold``.
    """
    merged: list = []
    refreshed: list = []
    timing = steps if steps is not None else {}
    try:
        while True:
            more, round_merged, round_refreshed = promote_round(settings, chosen, window, timing)
            merged += round_merged
            refreshed += round_refreshed
            if not more:
                return merged, refreshed
    finally:
        artifacts.settled()  # the gates' tables and gold's previews, sent in the background


def promote_round(
    settings: Settings, chosen: Pipeline, window: Window | None, steps: dict[str, float],
    until: dict[str, int] | None = None,
) -> tuple[bool, list, list]:
    """One round of :func:`promote` (also the ``rebuild`` flow's step): whether bronze holds more, what it merged and refreshed.

    ``until``: only these datasets, each up to that bronze version (a rebuild's replayed batch).
    """
    began = time.perf_counter()
    prepared: dict[str, Any] = {}
    for ds in chosen.datasets:  # referenced datasets come first; the others fan out at once
        if until is not None and ds.spec.name not in until:
            continue
        upstream = {name: prepared[name].result() for name in ds.upstream if name in prepared}
        bound = None if until is None else until[ds.spec.name]
        prepared[ds.spec.name] = submit(prepare_silver, settings, ds, window, upstream, bound)
    batches = [b for b in (f.result() for f in prepared.values()) if b is not None]
    raise_if_blocked([b.gate for b in batches], window=window)
    merged = [f.result() for f in [submit(commit_silver, settings, b) for b in batches]]
    halfway = time.perf_counter()
    steps["silver"] = steps.get("silver", 0.0) + halfway - began

    gold_futures = [submit(prepare_gold, settings, chosen, m, window) for m in chosen.models]
    gold_batches = [b for b in (f.result() for f in gold_futures) if b is not None]
    raise_if_blocked([g for b in gold_batches for g in b.gates], window=window)
    crash_point("gold.prepared")
    refreshed = [f.result() for f in [submit(commit_gold, settings, b) for b in gold_batches]]
    # a model's declared event, for each row its commit inserted (after every commit: a failed emit changes no table)
    sent = [submit(emit_gold_events, settings, b.model, r) for b, r in zip(gold_batches, refreshed, strict=True)
            if b.model.event is not None]
    for f in sent:
        f.result()
    steps["gold"] = steps.get("gold", 0.0) + time.perf_counter() - halfway
    return any(b.more for b in batches), merged, refreshed


def summarize(
    pipeline: Pipeline, window: Window, landed: list[BronzeResult], merged: list[SilverResult], refreshed: list[GoldResult],
    *, seconds: float | None = None, steps: dict[str, float] | None = None,
) -> BatchSummary:
    """The counts of one run, for the CLI, the artifact and tests."""
    return BatchSummary(
        pipeline=pipeline.name, window=str(window), window_end=window.end.isoformat(),
        files=sum(len(b.files) for b in landed), bronze=[BronzeCounts.of(b) for b in landed],
        tables=table_counts(merged), gold=gold_changes(refreshed), seconds=seconds, steps=steps or {},
    )
