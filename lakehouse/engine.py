"""One window through every layer, without Prefect: for notebooks, benchmarks and tests.

The ``micro-batch`` flow (``flows/microbatch.py``) is the orchestrated form of the same
sequence, with tasks, retries, artifacts and events; this is the bare engine, in the same
order: bronze for every dataset, then rounds of (every silver gate, every silver merge,
every gold gate, every gold overwrite) until silver has consumed all of bronze. A blocked
gate raises :class:`~lakehouse.errors.GateFailed` before anything downstream is written.
Every gate's checks are recorded in ``quality.scan_results`` as the flow records them
(without a flow run id), so the two do the same work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from lakehouse import rebuild as recovery
from lakehouse.config import Settings
from lakehouse.layers import bronze, gold, silver
from lakehouse.pipeline import Pipeline
from lakehouse.quality import GateResult, blocking_error
from lakehouse.quality import scan_log as quality
from lakehouse.storage import open_store
from lakehouse.window import Window


@dataclass
class WindowRun:
    """What one window did, layer by layer."""

    window: Window | None
    landed: list[bronze.BronzeResult] = field(default_factory=list)
    merged: list[silver.SilverResult] = field(default_factory=list)
    refreshed: list[gold.GoldResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Seconds per step: ``bronze``, ``silver_prepare``, ``silver_commit``, ``gold_prepare``, ``gold_commit``."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Add the block's seconds to step ``name`` of :attr:`seconds`."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


def _raise_if_blocked(results: list[GateResult]) -> None:
    error = blocking_error(results)
    if error is not None:
        raise error


def run_window(settings: Settings, pipeline: Pipeline, window: Window) -> WindowRun:
    """Ingest, gate, merge and refresh one window of ``pipeline``; exactly once, like the flow."""
    run = WindowRun(window)
    landing = open_store(settings.landing_root, settings)
    with run.step("bronze"):
        run.landed = [bronze.ingest(settings, ds, window, landing=landing) for ds in pipeline.datasets]
    while promote_round(settings, pipeline, run):
        pass
    return run


def promote_round(
    settings: Settings, pipeline: Pipeline, run: WindowRun | RebuildRun, *, until: Mapping[str, int] | None = None
) -> bool:
    """One round: every silver gate, every silver merge, every gold gate, every gold overwrite.

    Adds what it merged and refreshed to ``run``; returns whether bronze holds more than
    the round consumed (a backlog larger than one batch: run another round). ``until``:
    only these datasets, each up to that bronze version (a rebuild's replayed batch).
    """
    window = run.window
    now = window.end if window is not None else None
    prepared: dict[str, silver.SilverBatch] = {}
    with run.step("silver_prepare"):
        for ds in pipeline.datasets:
            if until is not None and ds.spec.name not in until:
                continue
            upstream = {n: prepared[n] for n in ds.upstream if n in prepared}
            batch = silver.prepare(settings, ds, upstream, now=now, until=None if until is None else until[ds.spec.name])
            if batch is not None:
                quality.record(settings, batch.gate, window=window, run_id=None, consumed=batch.consumed)
                prepared[ds.spec.name] = batch
    _raise_if_blocked([b.gate for b in prepared.values()])
    with run.step("silver_commit"):
        merged = [silver.commit(settings, b) for b in prepared.values()]
    with run.step("gold_prepare"):
        batches = [b for b in (gold.prepare(settings, pipeline, m) for m in pipeline.models) if b is not None]
        for b in batches:
            quality.record(settings, b.gates, window=window, run_id=None, consumed=b.consumed)
    _raise_if_blocked([g for b in batches for g in b.gates])
    with run.step("gold_commit"):
        refreshed = [gold.commit(settings, b) for b in batches]
    run.merged += merged
    run.refreshed += refreshed
    if isinstance(run, RebuildRun):
        run.rounds.append((merged, refreshed))
    return any(b.more for b in prepared.values())


@dataclass
class RebuildRun(WindowRun):
    """What a rebuild did: the tables it emptied, then its promotion rounds."""

    emptied: dict[str, int] = field(default_factory=dict)
    """Table → the version of the commit that emptied it."""
    rounds: list[tuple[list[silver.SilverResult], list[gold.GoldResult]]] = field(default_factory=list)


def rebuild(settings: Settings, pipeline: Pipeline, *, source: str = "bronze") -> RebuildRun:
    """Rebuild ``pipeline``'s silver, quarantine and gold tables from bronze alone (no ingestion).

    Empties each table in one commit that sets its consumption back
    (:func:`lakehouse.rebuild.reset`), then runs promotion rounds: first the original
    rounds' batches again (:attr:`lakehouse.rebuild.Plan.schedule`), then bounded batches
    until silver has re-read all of bronze. Raises
    :class:`~lakehouse.rebuild.RebuildRefused` before changing anything when bronze cannot
    be replayed.
    """
    chosen = recovery.plan(settings, pipeline, source=source)
    run = RebuildRun(None)
    run.emptied = recovery.reset(settings, chosen, pipeline)
    for batch in chosen.schedule:
        promote_round(settings, pipeline, run, until=batch)
    while promote_round(settings, pipeline, run):
        pass
    return run
