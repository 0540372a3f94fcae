"""The micro-batch flow: landing → bronze → gate → silver → gate → gold, for one window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from lakehouse.config import Settings
from lakehouse.declaration import Pipeline, load
from lakehouse.faults import crash_point
from lakehouse.simulator import parse_interval, parse_time
from lakehouse.window import Window, window_ending_at
from tasks.layers import (
    commit_gold,
    commit_silver,
    ingest_bronze,
    prepare_gold,
    prepare_silver,
    raise_if_blocked,
)


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


@flow(name="micro-batch", flow_run_name=_run_name, log_prints=False)
def micro_batch(
    at: datetime | None = None, interval: str | None = None, pipeline: str | None = None
) -> dict[str, Any]:
    """Process one window of a declared pipeline through every layer.

    Args:
        at: end of the window (ISO 8601 with zone); default: the run's scheduled time.
        interval: window length such as ``15m``; default: the pipeline's source interval.
        pipeline: which pipeline of the declaration; needed only when it has several.
    """
    settings = Settings()
    chosen, window = resolve(at, interval, pipeline)
    get_run_logger().info("%s: window %s .. %s", chosen.name, window.start.isoformat(), window.end.isoformat())

    landed = [ingest_bronze(settings, ds, window) for ds in chosen.datasets]
    crash_point("bronze.committed")

    batches = [prepare_silver(settings, ds, window) for ds in chosen.datasets]
    raise_if_blocked([b.gate for b in batches if b is not None], window=window)
    merged = [commit_silver(settings, b) for b in batches if b is not None]

    refreshed = []
    for model in chosen.models:
        batch = prepare_gold(settings, chosen, model, window)
        if batch is None:
            continue
        raise_if_blocked(batch.gates, window=window)
        crash_point("gold.prepared")
        refreshed.append(commit_gold(settings, batch))

    summary = summarize(chosen, window, landed, merged, refreshed)
    create_markdown_artifact(key="batch-summary", markdown=summary_markdown(summary), description=f"micro-batch {window}")
    return summary


def summarize(pipeline: Pipeline, window: Window, landed: list, merged: list, refreshed: list) -> dict[str, Any]:
    """Plain counts of one run, for the CLI, the artifact and tests."""
    tables = []
    for r in merged:
        c = r.counts
        tables.append({
            "table": r.table, "read": c.read, "merged": c.merged, "duplicates": c.duplicates,
            "rejected": c.rejected, "superseded": c.superseded, "inserted": r.inserted, "updated": r.updated,
            "reasons": r.reasons or {},
        })
    return {
        "pipeline": pipeline.name,
        "window": str(window),
        "window_end": window.end.isoformat(),
        "files": sum(len(b.files) for b in landed),
        "tables": tables,
        "gold": [
            {"table": g.table, "partitions": [str(d) for d in g.touched], "rows": g.rows, "preview": g.preview}
            for g in refreshed
        ],
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# {summary['pipeline']} {summary['window']}", "", f"{summary['files']} files landed.", "",
             "| table | read | merged | duplicates | rejected | inserted | updated |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in summary["tables"]:
        lines.append(f"| {t['table']} | {t['read']} | {t['merged']} | {t['duplicates']} | "
                     f"{t['rejected']} | {t['inserted']} | {t['updated']} |")
    for t in summary["tables"]:
        if t["reasons"]:
            lines += ["", f"Quarantined from {t['table']}: " + ", ".join(f"{n} × {why}" for why, n in t["reasons"].items())]
    for g in summary["gold"]:
        lines += ["", f"{g['table']}: recomputed {len(g['partitions'])} partitions "
                      f"({', '.join(g['partitions'])}), {g['rows']} rows."]
    return "\n".join(lines)
