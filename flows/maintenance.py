"""The maintenance flow: compact, z-order, checkpoint and vacuum every table of a pipeline."""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.summary import MaintenanceSummary, markdown
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.maintenance import (
    DEFAULT_MARGIN_HOURS,
    DEFAULT_RETENTION_HOURS,
    Options,
    TableMaintenance,
    select,
    targets,
)
from tasks.maintenance import optimize_table, tidy_table_log, vacuum_table


def _run_name() -> str:
    params = flow_run.parameters
    return f"maintenance {params.get('pipeline') or ''}{' (dry run)' if params.get('dry_run') else ''}".replace("  ", " ")


@flow(name="maintenance", flow_run_name=_run_name, log_prints=False)
def maintenance(
    pipeline: str | None = None,
    tables: list[str] | None = None,
    dry_run: bool = False,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    margin_hours: int = DEFAULT_MARGIN_HOURS,
) -> MaintenanceSummary:
    """Optimize, checkpoint and vacuum every table of the pipeline (or ``tables``).

    Bronze, silver, quarantine, gold and ``quality.scan_results``; the vacuum of a table
    keeps every file that one of its consumers has not read yet (:mod:`lakehouse.maintenance`).
    A step that conflicts with a concurrent writer is retried. ``dry_run`` lists what would be
    done and changes nothing. Publishes a ``maintenance-summary`` artifact.
    """
    settings = Settings()
    chosen = load().pipeline(pipeline)
    every = targets(settings, chosen)
    selected = select(every, tables) if tables else every
    options = Options(retention_hours=retention_hours, margin_hours=margin_hours, dry_run=dry_run)
    started = time.monotonic()
    done = []
    for target in selected:
        optimized = optimize_table(settings, target, options)
        log = tidy_table_log(settings, target, options)
        vacuumed = vacuum_table(settings, target, options)
        done.append(TableMaintenance(optimized, log, vacuumed, dry_run))
    summary = MaintenanceSummary.of(chosen.name, done, dry_run=dry_run, seconds=round(time.monotonic() - started, 2))
    create_markdown_artifact(key="maintenance-summary", markdown=markdown(summary), description="maintenance")
    return summary
