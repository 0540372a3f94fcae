"""The rebuild flow: silver, quarantine and gold rebuilt from bronze alone (README: "Rebuild (Kappa replay)").

One commit per table empties it and sets its consumption back (:func:`lakehouse.rebuild.reset`,
a task); then the micro-batch flow's promotion rounds (:func:`flows.microbatch.promote_round`:
every silver gate, every silver merge, every gold gate and overwrite) replay the original
rounds' batches (:attr:`lakehouse.rebuild.Plan.schedule`) and continue in bounded batches
until silver has re-read all of bronze. Bronze is neither ingested nor written.

Publishes a ``rebuild-progress`` progress artifact (bronze versions re-read of all of them,
updated after each round) and a ``rebuild-summary`` markdown artifact. The command line
prints each round through :func:`listening` (as the backfill does; a callback cannot be a
flow parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from flows.microbatch import promote_round, task_runner
from flows.summary import RebuildRound, RebuildSummary, gold_changes, markdown, table_counts
from lakehouse import rebuild as recovery
from lakehouse.config import Settings
from lakehouse.declaration import load
from tasks import artifacts
from tasks.layers import reset_for_rebuild

Listener = Callable[[RebuildRound], None]
_listeners: list[Listener] = []


@contextmanager
def listening(callback: Listener) -> Iterator[None]:
    """Call ``callback`` after each promotion round that a rebuild in this process finishes."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def _run_name() -> str:
    return f"{load().pipeline(flow_run.parameters.get('pipeline')).name} rebuild from {flow_run.parameters.get('source', 'bronze')}"


@flow(name="rebuild", flow_run_name=_run_name, log_prints=False, task_runner=task_runner())
def rebuild(pipeline: str | None = None, source: str = "bronze") -> RebuildSummary:
    """Rebuild every silver, quarantine and gold table of ``pipeline`` from ``source`` (``bronze``).

    Raises :class:`~lakehouse.rebuild.RebuildRefused` before changing anything when bronze
    cannot be replayed (a silver table's bronze is missing, bronze was vacuumed or its log
    truncated). A rebuild run again gives the same tables.
    """
    settings = Settings()
    chosen = load().pipeline(pipeline)
    plan = recovery.plan(settings, chosen, source=source)
    logger = get_run_logger()
    for line in plan.describe():
        logger.info("%s", line)
    total = sum(v + 1 for v in plan.bronze.values()) or 1
    progress = cast(UUID, create_progress_artifact(  # in a sync flow the call returns the UUID
        progress=0.0, key="rebuild-progress", description=f"{chosen.name} rebuild: 0 of {total} bronze versions re-read",
    ))
    emptied = reset_for_rebuild(settings, plan, chosen)
    read: dict[str, int] = {}  # silver table → bronze version re-read up to
    rounds: list[RebuildRound] = []

    def one_round(until: dict[str, int] | None, *, last: bool = False) -> bool:
        more, merged, refreshed = promote_round(settings, chosen, None, {}, until)
        read.update({r.table: r.bronze_version for r in merged if r.bronze_version is not None})
        tables = {r.table for r in merged}
        done = RebuildRound(index=len(rounds) + 1, tables=table_counts(r for r in merged if r.counts is not None),
                            gold=gold_changes(refreshed), bronze={t: v for t, v in read.items() if t in tables})
        rounds.append(done)
        covered = sum(v + 1 for v in read.values())
        finished = last and not more
        update_progress_artifact(progress, 100.0 if finished else min(99.0, 100.0 * covered / total),
                                 description=f"{chosen.name} rebuild: round {done.index}, {covered} of {total} bronze versions re-read")
        logger.info("%s", done.line)
        for listener in list(_listeners):
            listener(done)
        return more

    try:
        for until in plan.schedule:  # the original rounds' batches first (reference checks see what they saw)
            one_round(until)
        while one_round(None, last=True):  # then bounded batches until bronze is read to its end
            pass
    finally:
        artifacts.settled()
    summary = RebuildSummary(pipeline=chosen.name, source=source, emptied=emptied, rounds=rounds,
                             rows=recovery.table_rows(settings, chosen))
    create_markdown_artifact(key="rebuild-summary", markdown=markdown(summary), description=f"{chosen.name} rebuild from {source}")
    return summary
