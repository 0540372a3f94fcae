"""Prefect tasks for the layers: each reads plain values and calls one engine function.

Retrying is safe: every write re-reads its table's transaction version before writing
(``lakehouse.commit.write_once``), so a retried task never duplicates a batch.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from lakehouse import rebuild, replay, report
from lakehouse.config import Settings
from lakehouse.layers import bronze, gold, silver
from lakehouse.pipeline import Pipeline
from lakehouse.quality import GateResult, blocking_error
from lakehouse.quality import scan_log as quality
from lakehouse.specs import Dataset, GoldModel
from lakehouse.storage import open_store
from lakehouse.window import Window
from tasks.artifacts import later
from tasks.common import RETRY, engine_errors

# Tags are left off the tasks on purpose: a tagged task run takes a tag-concurrency lease
# through the API, which measured 14–22 s per window against 3.3 s untagged (Prefect 3.8.8,
# test harness, 3 windows each). Task run names carry the layer and table instead.


@task(name="bronze", task_run_name="bronze {dataset.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def ingest_bronze(settings: Settings, dataset: Dataset, window: Window) -> bronze.BronzeResult:
    """Append the files of ``dataset`` that landed before the window's end to bronze."""
    result = bronze.ingest(settings, dataset, window, landing=open_store(settings.landing_root, settings))
    get_run_logger().info(
        "%s: %s", result.table,
        "nothing new" if result.skipped else f"{len(result.files)} files, {result.rows} rows",
    )
    return result


def publish_gates(
    settings: Settings, results: list[GateResult], window: Window | None = None, consumed: dict[str, int] | None = None
) -> None:
    """Store one batch's gate checks in ``quality.scan_results`` (one append) and show each gate as a table artifact.

    The artifacts are sent in the background (:mod:`tasks.artifacts`); the flow waits for them.

    Artifact keys: ``gate-silver-orders`` (bronze→silver), ``gate-silver-orders-to-gold``
    (the silver rows a gold model reads) and ``gate-gold-daily-sales``.
    """
    quality.record(settings, results, window=window, run_id=str(flow_run.id) if flow_run.id else None, consumed=consumed)
    for result in results:
        _gate_artifact(result)


def _gate_artifact(result: GateResult) -> None:
    # a silver table is gated twice per run (entering silver, and as gold's input): one key each
    suffix = "-to-gold" if result.table.startswith("silver.") and result.stage == "silver_to_gold" else ""
    later(
        create_table_artifact,
        key=f"gate-{result.table.replace('.', '-').replace('_', '-')}{suffix}",
        table=[
            {
                "check": c.name,
                "level": c.level,
                "outcome": "pass" if c.passed else "FAIL",
                "value": c.value,
                "threshold": c.threshold,
            }
            for c in result.checks
        ],
        description=f"{result.summary()} ({result.rows} rows)",
    )


def raise_if_blocked(results: list[GateResult], *, window: Window | None = None) -> None:
    """Fail the run, naming every failing check, if any gate failed.

    Each blocked table also emits a ``lakehouse.gate.failed`` Prefect event (resource
    ``lakehouse.table.<layer>.<table>``) that an automation can alert on.
    """
    failed = [r for r in results if not r.passed]
    for r in failed:
        emit_event(
            event="lakehouse.gate.failed",
            resource={"prefect.resource.id": f"lakehouse.table.{r.table}", "prefect.resource.name": r.table},
            payload={
                "table": r.table,
                "stage": r.stage,
                "window_start": window.start.isoformat() if window else None,
                "window_end": window.end.isoformat() if window else None,
                "failed_checks": r.failed_checks(),
                "checks": [
                    {"check": c.name, "level": c.level, "passed": c.passed, "value": c.value, "threshold": c.threshold}
                    for c in r.checks
                ],
                "rows": r.rows,
            },
        )
    error = blocking_error(results)
    if error is not None:
        raise error


@task(name="silver-gate", task_run_name="gate silver.{dataset.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def prepare_silver(
    settings: Settings,
    dataset: Dataset,
    window: Window | None = None,
    upstream: dict[str, silver.SilverBatch | None] | None = None,
    until: int | None = None,
) -> silver.SilverBatch | None:
    """Read and type silver's bronze increment and run its Soda gate.

    ``upstream``: the batches of the datasets this one references, from the same run
    (None where a dataset had nothing new). ``until``: bronze up to that version at most.
    """
    present = {name: b for name, b in (upstream or {}).items() if b is not None}
    batch = silver.prepare(settings, dataset, present, now=window.end if window else None, until=until)
    if batch is not None:
        publish_gates(settings, [batch.gate], window, batch.consumed)
    return batch


@task(name="silver-merge", task_run_name="merge silver.{batch.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def commit_silver(settings: Settings, batch: silver.SilverBatch) -> silver.SilverResult:
    """Merge a gated batch into silver."""
    result = silver.commit(settings, batch)
    c = batch.counts
    get_run_logger().info(
        "%s: read %d = merged %d + deleted %d + rejected %d + duplicates %d + conflicts %d (inserted %d, updated %d, removed %d)",
        result.table, c.read, c.merged, c.deleted, c.rejected, c.duplicates, c.conflicts, result.inserted, result.updated,
        result.removed,
    )
    return result


@task(name="gold-gate", task_run_name="gate gold.{model.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def prepare_gold(settings: Settings, pipeline: Pipeline, model: GoldModel, window: Window | None = None) -> gold.GoldBatch | None:
    """Find the partitions silver's changes touch, recompute them, and gate the rows read and made."""
    batch = gold.prepare(settings, pipeline, model)
    if batch is not None:
        publish_gates(settings, batch.gates, window, batch.consumed)
    return batch


@task(name="gold-overwrite", task_run_name="overwrite gold.{batch.model.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def commit_gold(settings: Settings, batch: gold.GoldBatch) -> gold.GoldResult:
    """Replace the touched partitions of the gold table."""
    result = gold.commit(settings, batch)
    get_run_logger().info("%s: %d partitions, %d rows", result.table, len(result.touched), result.rows)
    if result.preview:
        later(
            create_table_artifact,
            key=f"gold-{result.table.split('.')[-1].replace('_', '-')}-preview",
            table=[{k: str(v) if v is not None else None for k, v in row.items()} for row in result.preview],
            description=f"{result.table}: the first {len(result.preview)} of {result.rows} rows of the "
                        f"{len(result.touched)} recomputed partition(s)",
        )
    spec = batch.model.spec
    days = [d for d in result.touched if d is not None]
    if spec.name == report.DAILY_SALES and report.fits(spec.column_names, spec.partition_by) and days:
        later(_daily_sales_report, settings=settings, day=max(days))  # read after the commit, beside the next step
    return result


def _daily_sales_report(settings: Settings, day: Any) -> None:
    """The ``daily-sales-report`` artifact: :mod:`lakehouse.report` for the newest day recomputed.

    A report that cannot be read is a warning: the window's data is committed whatever the UI shows.
    """
    try:
        shown = report.daily_sales(settings, day)
    except Exception as exc:  # noqa: BLE001 - logged, never the reason a committed window fails
        logging.getLogger("lakehouse.report").warning("the daily sales report of %s could not be read: %s", day, exc)
        return
    create_markdown_artifact(key="daily-sales-report", markdown=report.markdown(shown),
                             description=f"daily sales {day}: {report.summary_line(shown)}")


@task(name="quarantine-replay", task_run_name="replay quarantine.{dataset.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def replay_quarantined(settings: Settings, dataset: Dataset) -> replay.ReplayResult:
    """Append the quarantined rows of ``dataset`` that pass the rules now to its bronze table."""
    result = replay.replay(settings, dataset)
    get_run_logger().info(
        "%s: %d quarantined rows not replayed before; %d pass now%s", result.table, result.candidates,
        result.replayed, "; still failing: " + ", ".join(f"{n} × {why}" for why, n in result.still_failing.items())
        if result.still_failing else "",
    )
    return result


@task(name="rebuild-reset", task_run_name="empty silver, quarantine and gold", timeout_seconds=600, cache_policy=NO_CACHE)
@engine_errors
def reset_for_rebuild(settings: Settings, chosen: rebuild.Plan, pipeline: Pipeline) -> dict[str, int]:
    """Empty every table of the plan in one commit each, its consumption set back (not retried:
    a reset whose acknowledgement was lost has moved the table, and the plan refuses a moved table)."""
    emptied = rebuild.reset(settings, chosen, pipeline)
    get_run_logger().info("emptied: %s", ", ".join(f"{t} (v{v})" for t, v in emptied.items()) or "nothing")
    return emptied
