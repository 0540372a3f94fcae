"""The quarantine replay flow: re-submit quarantined rows that pass now, then promote them."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from flows.microbatch import gold_changes, promote, table_counts, task_runner
from lakehouse.config import Settings
from lakehouse.declaration import load
from tasks.layers import replay_quarantined


@flow(name="quarantine-replay", flow_run_name="replay quarantine", log_prints=False, task_runner=task_runner())
def replay_quarantine(pipeline: str | None = None, tables: list[str] | None = None) -> dict[str, Any]:
    """Replay the quarantine of every dataset (or of ``tables``) and promote what passes.

    Each quarantined line is re-submitted at most once (see :mod:`lakehouse.replay`), so
    running the flow twice changes nothing the second time. The replayed rows go through
    the normal silver gate and merge, and gold is recomputed for the partitions they touch.
    """
    settings = Settings()
    chosen = load().pipeline(pipeline)
    datasets = [ds for ds in chosen.datasets if not tables or ds.spec.name in tables]
    unknown = sorted(set(tables or ()) - {ds.spec.name for ds in chosen.datasets})
    if unknown:
        msg = (
            f"no dataset {', '.join(unknown)} in pipeline {chosen.name} "
            f"(datasets: {', '.join(ds.spec.name for ds in chosen.datasets)})"
        )
        raise ValueError(msg)
    # in a sync flow the call returns the UUID (the coroutine is its async form's)
    progress = cast(UUID, create_progress_artifact(0.0, key="quarantine-replay", description="datasets replayed"))
    results = []
    for i, ds in enumerate(datasets, start=1):
        results.append(replay_quarantined(settings, ds))
        update_progress_artifact(progress, 100.0 * i / (len(datasets) + 1))
    merged, refreshed = promote(settings, chosen, None)
    update_progress_artifact(progress, 100.0)
    summary = {
        "pipeline": chosen.name,
        "replayed": [
            {"table": r.table, "candidates": r.candidates, "replayed": r.replayed,
             "still_failing": r.still_failing, "bronze_version": r.version}
            for r in results
        ],
        "tables": table_counts(merged),
        "gold": gold_changes(refreshed),
    }
    create_markdown_artifact(key="quarantine-replay", markdown=_markdown(summary), description="quarantine replay")
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    lines = [f"# {summary['pipeline']}: quarantine replay", "",
             "| quarantine | not replayed before | pass now | still failing |", "| --- | ---: | ---: | --- |"]
    for r in summary["replayed"]:
        failing = ", ".join(f"{n} × {why}" for why, n in r["still_failing"].items()) or "–"
        lines.append(f"| {r['table']} | {r['candidates']} | {r['replayed']} | {failing} |")
    for t in summary["tables"]:
        lines.append(f"\n{t['table']}: read {t['read']} = merged {t['merged']} + rejected {t['rejected']} "
                     f"+ duplicates {t['duplicates']} + conflicts {t['conflicts']} (inserted {t['inserted']}, updated {t['updated']})")
    for g in summary["gold"]:
        lines.append(f"\n{g['table']}: recomputed {len(g['partitions'])} partitions, {g['rows']} rows")
    return "\n".join(lines)
