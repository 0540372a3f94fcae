"""The maintenance flow: compact, z-order, checkpoint and vacuum every table of a pipeline."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

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

LISTED = 20
"""Files listed per table in the artifact (dry runs list what would be rewritten and deleted)."""


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
) -> dict[str, Any]:
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
    summary = {
        "pipeline": chosen.name,
        "dry_run": dry_run,
        "seconds": round(time.monotonic() - started, 2),
        "tables": [d.row() for d in done],
        "rewrite": {d.optimized.table: list(d.optimized.files) for d in done if d.optimized.files},
        "vacuum": {d.vacuumed.table: [*d.vacuumed.files, *d.vacuumed.change_data] for d in done
                   if d.vacuumed.files or d.vacuumed.change_data},
    }
    create_markdown_artifact(key="maintenance-summary", markdown=_markdown(summary), description="maintenance")
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    would = " (dry run: nothing changed)" if summary["dry_run"] else ""
    lines = [
        f"# {summary['pipeline']}: maintenance{would}", "", f"{len(summary['tables'])} tables in {summary['seconds']} s", "",
        "| table | files before | files after | bytes before | bytes after | rewritten | z-order | vacuumed | retention (h) | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for t in summary["tables"]:
        lines.append(
            f"| {t['table']} | {t['files_before']} | {t['files_after']} | {t['bytes_before']} | {t['bytes_after']} | "
            f"{t['rewritten']} | {t['zorder'] or '–'} | {t['vacuumed']} | {t['retention_hours'] if t['retention_hours'] is not None else '–'} | "
            f"{t['notes'] or ''} |"
        )
    for title, key in (("rewritten" if not summary["dry_run"] else "would be rewritten", "rewrite"),
                       ("vacuumed" if not summary["dry_run"] else "would be vacuumed", "vacuum")):
        for table, files in summary[key].items():
            more = f" … and {len(files) - LISTED} more" if len(files) > LISTED else ""
            lines += ["", f"**{table}**, files {title}: " + ", ".join(f"`{f}`" for f in files[:LISTED]) + more]
    return "\n".join(lines)
