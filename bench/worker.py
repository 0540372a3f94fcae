"""One measured step in a fresh process: ``python -m bench.worker '<job as JSON>'``.

The step's preparation (imports, reading its inputs) happens first; then the peak RSS is
reset (``/proc/self/clear_refs``), the step runs and is timed, and the result is printed as
one JSON line after :data:`MARK`. So a figure never inherits another step's heap, nor the
cost of importing Python modules.
"""

from __future__ import annotations

import gc
import json
import re
import resource
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

MARK = "BENCH-RESULT "


def _status_kb(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(func: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Run ``func`` timed, with the peak RSS of just this call (MB)."""
    gc.collect()
    baseline = _status_kb("VmRSS")
    reset = _reset_peak()
    began, cpu = time.perf_counter(), _cpu_seconds()
    value = func()
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        # every thread's and child process's CPU: on a machine shared with other work, the
        # figure that load changes least
        "cpu_seconds": _cpu_seconds() - cpu,
        "rss_mb": _status_kb("VmHWM") / 1024,
        "baseline_mb": baseline / 1024,
        "peak_reset": reset,
    }, value


def _window(job: dict[str, Any]) -> Any:
    from lakehouse.window import Window

    return Window(datetime.fromisoformat(job["start"]), datetime.fromisoformat(job["end"]))


def _settings(job: dict[str, Any]) -> Any:
    from bench.engine import settings_for

    return settings_for(job["warehouse"], job["landing"])


def step_window(job: dict[str, Any]) -> dict[str, Any]:
    from bench import engine

    engine.warm_imports()
    chosen, settings, window = engine.pipeline(), _settings(job), _window(job)
    figures, steps = measured(lambda: engine.run_window(settings, chosen, window))
    return {**figures, "steps": steps.seconds, "rows": steps.rows}


def step_windows(job: dict[str, Any]) -> dict[str, Any]:
    """Several windows in a row in this one process (the unmeasured middle of a history)."""
    from bench import engine
    from lakehouse.window import Window

    engine.warm_imports()
    chosen, settings = engine.pipeline(), _settings(job)
    out = []
    for start, end in job["windows"]:
        window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
        figures, steps = measured(lambda window=window: engine.run_window(settings, chosen, window))
        out.append({**figures, "steps": steps.seconds})
    return {"windows": out}


def step_flow(job: dict[str, Any]) -> dict[str, Any]:
    from bench import engine

    engine.warm_imports()
    imports = engine.warm_prefect()  # timed apart: once per process, not per run
    import flows.microbatch  # noqa: F401  (imported before the clock starts)

    chosen, window = engine.pipeline(), _window(job)
    figures, summary = measured(lambda: engine.run_flow(window, chosen))
    return {**figures, "flow_seconds": summary.seconds, "prefect_import_seconds": imports}


def step_bronze(job: dict[str, Any]) -> dict[str, Any]:
    from bench import engine

    chosen, settings, window = engine.pipeline(), _settings(job), _window(job)
    figures, result = measured(lambda: engine.bronze_ingest(settings, chosen, job["dataset"], window))
    return {**figures, "rows": result.rows}


def step_floor(job: dict[str, Any]) -> dict[str, Any]:
    """pyarrow writing the Arrow table that bronze appended, as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from lakehouse.layers.bronze import BRONZE_SCHEMA
    from lakehouse.storage import storage_options

    settings = _settings(job)
    table = DeltaTable(job["table"], storage_options=storage_options(settings))
    data = pa.table(table.to_pyarrow_table()).cast(BRONZE_SCHEMA)
    target = Path(job["out"])
    target.parent.mkdir(parents=True, exist_ok=True)
    figures, _ = measured(lambda: pq.write_table(data, target))
    return {**figures, "rows": data.num_rows}


def step_append(job: dict[str, Any]) -> dict[str, Any]:
    """bronze.append (the engine's Delta commit of a batch) of the table the floor writes."""
    import polars as pl
    from deltalake import DeltaTable

    from lakehouse.layers import bronze
    from lakehouse.storage import storage_options

    options = storage_options(_settings(job))
    data = pl.from_arrow(DeltaTable(job["table"], storage_options=options).to_pyarrow_table())
    assert isinstance(data, pl.DataFrame)
    bronze.append(job["out"], options, data.head(0), app="bench", batch=0, metadata={})  # the table exists, as in a window
    figures, _ = measured(lambda: bronze.append(job["out"], options, data, app="bench", batch=1, metadata={}))
    return {**figures, "rows": data.height}


def step_merge_build(job: dict[str, Any]) -> dict[str, Any]:
    from bench.merge import build_target

    began = time.perf_counter()
    built = build_target(_settings(job), lines=job["lines"], batch=job["batch"], seed=job["seed"])
    return {**built, "seconds": time.perf_counter() - began}


def step_merge(job: dict[str, Any]) -> dict[str, Any]:
    """Prepare the batch (untimed), then time the engine's silver merge of it."""
    from bench import engine

    chosen, settings = engine.pipeline(), _settings(job)
    batch = engine.silver_prepare(settings, chosen, "order_lines", now=datetime.fromisoformat(job["end"]))
    if batch is None:
        raise SystemExit("nothing to merge: the batch's bronze table is missing")
    if not batch.gate.passed:
        raise SystemExit(f"the batch's gate failed: {batch.gate.summary()}")
    figures, result = measured(lambda: engine.silver_commit(settings, batch))
    return {**figures, "rows": batch.counts.merged, "inserted": result.inserted, "updated": result.updated}


def step_dlt(job: dict[str, Any]) -> dict[str, Any]:
    from bench.peer import load_with_dlt

    return load_with_dlt(job, measured)


def step_maintain(job: dict[str, Any]) -> dict[str, Any]:
    from bench import engine

    figures, how = measured(lambda: engine.maintain(_settings(job), engine.pipeline()))
    return {**figures, "how": how}


def step_files(job: dict[str, Any]) -> dict[str, Any]:
    from bench import engine

    return {"tables": engine.data_files(_settings(job), engine.pipeline())}


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "window": step_window,
    "windows": step_windows,
    "flow": step_flow,
    "bronze": step_bronze,
    "floor": step_floor, "append": step_append,
    "merge_build": step_merge_build,
    "merge": step_merge,
    "dlt": step_dlt,
    "maintain": step_maintain,
    "files": step_files,
}


def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    job = json.loads(sys.argv[1])
    result = STEPS[job["step"]](job)
    print(MARK + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
