"""The engine driven without Prefect, in the micro-batch flow's order: the one place that
knows the engine's function signatures (when one changes, fix it here).

``run_window`` does what ``flows.microbatch.micro_batch`` does for one window: bronze for
each dataset, every silver gate before any silver merge, then each gold model's gate and
overwrite. It returns the seconds spent per step.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.declaration import Pipeline, load
from lakehouse.window import Window

if TYPE_CHECKING:
    from flows.summary import BatchSummary

PIPELINE_FILE = Path(__file__).with_name("pipeline.yaml")


def pipeline() -> Pipeline:
    """The benchmark's declared pipeline (``bench/pipeline.yaml``)."""
    return load(PIPELINE_FILE).pipeline("bench")


@dataclass
class Steps:
    """Seconds per step of one window, and what it committed."""

    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Any:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


def run_window(settings: Settings, chosen: Pipeline, window: Window) -> Steps:
    """One window through bronze → gate → silver → gate → gold, like the flow (no Prefect).

    It is :func:`lakehouse.engine.run_window`, the engine's own Prefect-free window.
    """
    from lakehouse.engine import run_window as engine_window

    done = engine_window(settings, chosen, window)
    steps = Steps(seconds=dict(done.seconds))
    for ds, landed in zip(chosen.datasets, done.landed, strict=True):
        steps.rows[f"bronze.{ds.spec.name}"] = landed.rows
    for merged in done.merged:
        steps.rows[merged.table] = steps.rows.get(merged.table, 0) + (merged.counts.merged if merged.counts else 0)
    for refreshed in done.refreshed:
        steps.rows[refreshed.table] = steps.rows.get(refreshed.table, 0) + refreshed.rows
    return steps


def run_flow(window: Window, chosen: Pipeline) -> BatchSummary:
    """The same window through the Prefect flow (``LAKEHOUSE_*`` and ``PREFECT_API_URL`` set)."""
    from flows.inprocess import in_this_process
    from flows.microbatch import micro_batch

    interval = f"{int(chosen.interval.total_seconds() // 60)}m"
    with in_this_process():  # as the `lakehouse` command runs it
        return micro_batch(at=window.end, interval=interval, pipeline=chosen.name)


def silver_commit(settings: Settings, batch: Any) -> Any:
    from lakehouse.layers import silver

    return silver.commit(settings, batch)


def silver_prepare(settings: Settings, chosen: Pipeline, name: str, now: Any) -> Any:
    """Prepare one dataset alone (its referenced tables must be in silver already)."""
    from lakehouse.layers import silver

    return silver.prepare(settings, chosen.dataset(name), {}, now=now)


def bronze_ingest(settings: Settings, chosen: Pipeline, name: str, window: Window) -> Any:
    from lakehouse.layers import bronze
    from lakehouse.storage import open_store

    landing = open_store(settings.landing_root, settings)
    return bronze.ingest(settings, chosen.dataset(name), window, landing=landing)


def warm_imports() -> None:
    """Import what a window imports lazily (Soda), so that timings leave imports out."""
    from lakehouse import quality as gates

    getattr(gates, "_soda", lambda: None)()


PREFECT_RUN_MODULES = (
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.engine",
    "prefect.client.orchestration",
    "prefect.concurrency.context",
    "prefect.concurrency.v1.context",
    "prefect.telemetry.run_telemetry",
    "prefect.utilities.visualization",
    "prefect.artifacts",
    "prefect.events",
    "fastapi",
)
"""What Prefect 3.8 imports lazily while the first flow run of a process starts (measured
by diffing ``sys.modules`` around a run)."""


def warm_prefect() -> float:
    """Import Prefect and what its first flow run imports; returns the seconds it took.

    A flow run in a fresh process pays these imports once; a long-lived worker pays them
    once for all its runs. The benchmark reports them apart from the per-run overhead.
    """
    import importlib
    import time

    began = time.perf_counter()
    for name in ("prefect", *PREFECT_RUN_MODULES):
        importlib.import_module(name)
    return time.perf_counter() - began


def table_uris(settings: Settings, chosen: Pipeline) -> dict[str, str]:
    """Every table the pipeline writes, by qualified name."""
    from lakehouse.layers.bronze import bronze_name

    out = {}
    for ds in chosen.datasets:
        out[f"bronze.{bronze_name(ds.spec)}"] = settings.table_uri("bronze", bronze_name(ds.spec))
        out[f"silver.{ds.spec.name}"] = settings.table_uri("silver", ds.spec.name)
        out[f"quarantine.{ds.spec.name}"] = settings.table_uri("quarantine", ds.spec.name)
    for m in chosen.models:
        out[f"gold.{m.spec.name}"] = settings.table_uri("gold", m.spec.name)
    return out


def maintain(settings: Settings, chosen: Pipeline) -> str:
    """Compact, checkpoint and vacuum every table with the engine's maintenance; says which ran."""
    from lakehouse import maintenance

    for target in maintenance.targets(settings, chosen):
        maintenance.maintain(settings, target)
    return "lakehouse.maintenance"


def data_files(settings: Settings, chosen: Pipeline) -> dict[str, dict[str, int]]:
    """Per table: data files in the current snapshot, and Parquet files kept in storage."""
    from lakehouse.commit import open_table
    from lakehouse.storage import open_store, storage_options

    options = storage_options(settings)
    store = open_store(settings.warehouse, settings)
    out = {}
    for name, uri in table_uris(settings, chosen).items():
        table = open_table(uri, options)
        if table is None:
            continue
        rel = uri[len(settings.warehouse.rstrip("/")) + 1:]
        stored = [o for o in store.list(rel + "/") if o.key.endswith(".parquet") and "/_delta_log/" not in o.key]
        out[name] = {
            "active": len(table.file_uris()),
            "stored": sum(1 for o in stored if "/_change_data/" not in o.key),
            "change_data": sum(1 for o in stored if "/_change_data/" in o.key),
            "rows": _rows(table),
        }
    return out


def _rows(table: Any) -> int:
    actions = table.get_add_actions(flatten=True)
    try:
        return int(sum(v for v in actions.column("num_records").to_pylist() if v is not None))
    except KeyError:
        return -1


def settings_for(warehouse: str, landing: str) -> Settings:
    """Settings pointed at a warehouse and a landing area (AWS_* still from the environment)."""
    return Settings(warehouse=warehouse, landing=landing)
