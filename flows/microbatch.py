"""The micro-batch flow: landing → bronze → gate → silver → gate → gold, for one window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from lakehouse.config import Settings
from lakehouse.faults import crash_point
from lakehouse.shop import DATASETS
from lakehouse.simulator import parse_interval
from lakehouse.window import Window, window_ending_at
from tasks.layers import (
    commit_gold,
    commit_silver,
    ingest_bronze,
    prepare_gold,
    prepare_silver,
    raise_if_blocked,
)


def resolve_window(at: datetime | None, interval: str) -> Window:
    """The window ending at ``at``, else at the run's scheduled time (never the clock)."""
    if at is None:
        scheduled = flow_run.scheduled_start_time
        at = datetime.fromisoformat(str(scheduled)) if scheduled else datetime.now(UTC)
    return window_ending_at(at, parse_interval(interval))


def _run_name() -> str:
    params = flow_run.parameters
    window = resolve_window(params.get("at"), params.get("interval", "15m"))
    return f"shop {window}"


@flow(name="micro-batch", flow_run_name=_run_name, log_prints=False)
def micro_batch(at: datetime | None = None, interval: str = "15m") -> dict[str, Any]:
    """Process the window ending at ``at`` (or at the scheduled time) through every layer."""
    settings = Settings()
    window = resolve_window(at, interval)
    log = get_run_logger()
    log.info("window %s .. %s", window.start.isoformat(), window.end.isoformat())

    landed = [ingest_bronze(settings, spec.name, window) for spec in DATASETS]
    crash_point("bronze.committed")

    batches = [prepare_silver(settings, spec.name) for spec in DATASETS]
    raise_if_blocked([b.gate for b in batches if b is not None])
    merged = [commit_silver(settings, b) for b in batches if b is not None]

    gold_batch = prepare_gold(settings)
    if gold_batch is not None:
        raise_if_blocked(gold_batch.gates)
        crash_point("gold.prepared")
        refreshed = commit_gold(settings, gold_batch)
    else:
        refreshed = None

    summary = summarize(window, landed, merged, refreshed)
    create_markdown_artifact(key="batch-summary", markdown=summary_markdown(summary),
                             description=f"micro-batch {window}")
    return summary


def summarize(window: Window, landed: list, merged: list, refreshed: Any) -> dict[str, Any]:
    rows = {b.table.split(".")[1].removesuffix("_raw"): b.rows for b in landed}
    tables = []
    for r in merged:
        c = r.counts
        tables.append({
            "table": r.table, "bronze_rows": rows.get(r.table.split(".")[1], 0),
            "read": c.read, "merged": c.merged, "duplicates": c.duplicates,
            "rejected": c.rejected, "inserted": r.inserted, "updated": r.updated,
        })
    return {
        "window": str(window),
        "window_end": window.end.isoformat(),
        "files": sum(len(b.files) for b in landed),
        "tables": tables,
        "gold": None if refreshed is None else {
            "table": refreshed.table, "days": [str(d) for d in refreshed.touched], "rows": refreshed.rows,
        },
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Micro-batch {summary['window']}", "", f"{summary['files']} files landed.", "",
             "| table | read | merged | duplicates | rejected | inserted | updated |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in summary["tables"]:
        lines.append(f"| {t['table']} | {t['read']} | {t['merged']} | {t['duplicates']} | "
                     f"{t['rejected']} | {t['inserted']} | {t['updated']} |")
    if summary["gold"]:
        g = summary["gold"]
        lines += ["", f"{g['table']}: recomputed {len(g['days'])} days ({', '.join(g['days'])}), {g['rows']} rows."]
    return "\n".join(lines)
