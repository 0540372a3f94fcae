"""The quarantine replay flow: re-submit quarantined rows that pass now, then promote them."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from flows.microbatch import promote, task_runner
from flows.summary import ReplayCounts, ReplaySummary, gold_changes, markdown, table_counts
from lakehouse.config import Settings
from lakehouse.declaration import load
from tasks.layers import replay_quarantined


@flow(name="quarantine-replay", flow_run_name="replay quarantine", log_prints=False, task_runner=task_runner())
def replay_quarantine(pipeline: str | None = None, tables: list[str] | None = None) -> ReplaySummary:
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
    summary = ReplaySummary(pipeline=chosen.name, replayed=[ReplayCounts.of(r) for r in results],
                            tables=table_counts(merged), gold=gold_changes(refreshed))
    create_markdown_artifact(key="quarantine-replay", markdown=markdown(summary), description="quarantine replay")
    return summary
