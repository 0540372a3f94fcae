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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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

    window: Window
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
    while True:
        prepared: dict[str, silver.SilverBatch] = {}
        with run.step("silver_prepare"):
            for ds in pipeline.datasets:
                upstream = {n: prepared[n] for n in ds.upstream if n in prepared}
                batch = silver.prepare(settings, ds, upstream, now=window.end)
                if batch is not None:
                    quality.record(settings, batch.gate, window=window, run_id=None, consumed=batch.consumed)
                    prepared[ds.spec.name] = batch
        _raise_if_blocked([b.gate for b in prepared.values()])
        with run.step("silver_commit"):
            run.merged += [silver.commit(settings, b) for b in prepared.values()]
        with run.step("gold_prepare"):
            batches = [b for b in (gold.prepare(settings, pipeline, m) for m in pipeline.models) if b is not None]
            for b in batches:
                for result in b.gates:
                    quality.record(settings, result, window=window, run_id=None, consumed=b.consumed)
        _raise_if_blocked([g for b in batches for g in b.gates])
        with run.step("gold_commit"):
            run.refreshed += [gold.commit(settings, b) for b in batches]
        if not any(b.more for b in prepared.values()):
            return run
