"""The benchmark's scenarios: one function each, returning figures and targets.

Every measured step runs in a fresh ``python -m bench.worker`` process (:meth:`Bench.run`),
so the peak RSS of one step never includes another's heap. Figures are medians of
``repeat`` runs; a ratio is taken inside each run, then its median is reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.worker import MARK

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Size:
    """How big each scenario is."""

    name: str
    window_lines: int
    """Order lines per window of the growing history and of the Prefect comparison."""
    history_windows: int
    merge_batch: int
    merge_targets: tuple[int, ...]
    e2e_lines: int
    """Order lines of the end-to-end window compared with dlt (and of the bronze figure)."""
    files_windows: int
    files_lines: int
    maintain_every: int
    repeat: int


SIZES = {
    "tiny": Size("tiny", 2_000, 6, 2_000, (2_000, 20_000), 5_000, 8, 200, 4, 1),
    "small": Size("small", 10_000, 20, 10_000, (10_000, 100_000), 50_000, 24, 500, 8, 3),
    "medium": Size("medium", 20_000, 16, 100_000, (100_000, 1_000_000), 100_000, 30, 1_000, 10, 3),
    "large": Size("large", 100_000, 100, 100_000, (100_000, 1_000_000, 10_000_000), 1_000_000, 200, 1_000, 24, 3),
}
"""``large`` is the issue's full specification; the others scale it down to fit a laptop."""


@dataclass(frozen=True)
class Target:
    """One target of the issue, with what this run measured."""

    name: str
    limit: str
    value: float | None
    unit: str
    passed: bool | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "value": self.value, "unit": self.unit,
                "passed": self.passed, "note": self.note}


@dataclass
class Outcome:
    """What a scenario measured: named figures (with units) and targets."""

    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _limit(sign: str, limit: float, unit: str) -> str:
    if unit == "share":
        return f"{sign} {limit:.0%}"
    return f"{sign} {limit:g}{unit if unit == '×' else ' ' + unit}"


def at_most(name: str, limit: float, value: float | None, unit: str = "×", note: str = "") -> Target:
    return Target(name, _limit("≤", limit, unit), value, unit, None if value is None else value <= limit, note)


def at_least(name: str, limit: float, value: float | None, unit: str = "×", note: str = "") -> Target:
    return Target(name, _limit("≥", limit, unit), value, unit, None if value is None else value >= limit, note)


class Bench:
    """The work folder, the storage (local or moto) and the worker processes."""

    def __init__(self, workdir: Path, *, s3_env: dict[str, str] | None = None, seed: int = 7,
                 log: Callable[[str], None] = print) -> None:
        self.workdir = workdir
        self.s3_env = s3_env
        self.seed = seed
        self.log = log
        self.prefect_env: dict[str, str] = {}
        self._runs = 0

    # storage ------------------------------------------------------------------------
    def area(self, name: str) -> str:
        """A fresh root (a folder, or an ``s3://`` prefix) for one warehouse or landing area."""
        self._runs += 1
        if self.s3_env is not None:
            return f"s3://bench/{self._runs:04d}-{name}"
        path = self.workdir / f"{self._runs:04d}-{name}"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def settings(self, warehouse: str, landing: str) -> Any:
        from bench.engine import settings_for

        with _environ(self.env()):
            return settings_for(warehouse, landing)

    def store(self, root: str) -> Any:
        from lakehouse.storage import open_store

        settings = self.settings(root, root)
        return open_store(root, settings)

    def discard(self, *roots: str) -> None:
        for root in roots:
            if not root.startswith("s3://"):
                shutil.rmtree(root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = {
            "SODA_CORE_TELEMETRY_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "LAKEHOUSE_CONFIG": str(ROOT / "bench" / "pipeline.yaml"),
            "LAKEHOUSE_TASK_RUNNER": "sequential",
        }
        env.update(self.s3_env or {})
        env.update(self.prefect_env)
        return env

    # workers ------------------------------------------------------------------------
    def run(self, step: str, **job: Any) -> dict[str, Any]:
        """Run one step in a fresh worker process; adds its whole-process peak RSS."""
        job = {"step": step, **job}
        env = {**os.environ, **self.env()}
        if "PREFECT_API_URL" not in self.prefect_env:
            env.pop("PREFECT_API_URL", None)  # only the flow step talks to Prefect
        if "warehouse" in job:
            env["LAKEHOUSE_WAREHOUSE"] = job["warehouse"]
        if "landing" in job:
            env["LAKEHOUSE_LANDING"] = job["landing"]
        with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
            proc = subprocess.Popen([sys.executable, "-m", "bench.worker", json.dumps(job, default=str)],
                                    stdout=out, stderr=err, env=env, cwd=ROOT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        results = [line[len(MARK):] for line in stdout.splitlines() if line.startswith(MARK)]
        if proc.returncode != 0 or not results:
            tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"worker step {step!r} failed (exit {proc.returncode}):\n{tail}")
        result = json.loads(results[-1])
        result["process_rss_mb"] = usage.ru_maxrss / 1024
        return result

    def land(self, shape: data.Shape, landing: str, windows: range) -> None:
        store = self.store(landing)
        for w in windows:
            data.land_window(shape, store, w)

    @staticmethod
    def window(shape: data.Shape, w: int) -> dict[str, str]:
        return {"start": shape.window_start(w).isoformat(), "end": shape.window_end(w).isoformat()}


class _environ:
    """Temporarily set environment variables (Settings read AWS_* from it)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.saved = values, {}

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- scenarios


def bronze_append(bench: Bench, size: Size) -> Outcome:
    """Bronze ingest of one window's order lines, against pyarrow writing the same table."""
    out = Outcome("bronze")
    shape = data.Shape(lines=size.e2e_lines, seed=bench.seed)
    landing = bench.area("bronze-landing")
    bench.land(shape, landing, range(1))
    runs = []
    for _ in range(size.repeat):
        warehouse = bench.area("bronze")
        b = bench.run("bronze", warehouse=warehouse, landing=landing, dataset="order_lines", **bench.window(shape, 0))
        table = bench.settings(warehouse, landing).table_uri("bronze", "order_lines_raw")
        floor = bench.run("floor", warehouse=warehouse, landing=landing, table=table,
                          out=str(bench.workdir / "floor" / f"{bench._runs}.parquet"))
        append = bench.run("append", warehouse=warehouse, landing=landing, table=table,
                           out=bench.settings(warehouse, landing).table_uri("bronze", "appended"))
        runs.append({"bronze": b, "floor": floor, "append": append, "bronze_rows_s": b["rows"] / b["seconds"],
                     "floor_rows_s": floor["rows"] / floor["seconds"],
                     "append_rows_s": append["rows"] / append["seconds"],
                     "ingest_ratio": (b["rows"] / b["seconds"]) / (floor["rows"] / floor["seconds"]),
                     "ratio": floor["seconds"] / append["seconds"]})
        bench.discard(warehouse)
    out.figures = {
        "rows": runs[0]["bronze"]["rows"],
        "bronze_rows_per_s": median([r["bronze_rows_s"] for r in runs]),
        "floor_rows_per_s": median([r["floor_rows_s"] for r in runs]),
        "bronze_seconds": median([r["bronze"]["seconds"] for r in runs]),
        "bronze_rss_mb": median([r["bronze"]["rss_mb"] for r in runs]),
        "append_rows_per_s": median([r["append_rows_s"] for r in runs]),
        "share_of_floor": median([r["ratio"] for r in runs]),
        "ingest_share_of_floor": median([r["ingest_ratio"] for r in runs]),
    }
    out.details["runs"] = runs
    out.targets.append(at_least("bronze append vs pyarrow Parquet floor", 0.9, out.figures["share_of_floor"],
                                note="bronze.append (the Delta commit) rows/s ÷ pq.write_table rows/s, same table"))
    bench.discard(landing)
    return out


def merge(bench: Bench, size: Size) -> Outcome:
    """The engine's silver merge of one batch (10 % updates) into targets of growing size."""
    out = Outcome("merge")
    per_target: dict[int, list[dict[str, Any]]] = {}
    for n in size.merge_targets:
        per_target[n] = []
        for _ in range(size.repeat):
            warehouse, landing = bench.area(f"merge-{n}"), bench.area(f"merge-{n}-landing")
            built = bench.run("merge_build", warehouse=warehouse, landing=landing, lines=n, batch=size.merge_batch, seed=bench.seed)
            m = bench.run("merge", warehouse=warehouse, landing=landing, end=built["end"])
            m["build_seconds"] = built["seconds"]
            per_target[n].append(m)
            bench.discard(warehouse, landing)
        bench.log(f"  merge into {n:,}: {median([r['seconds'] for r in per_target[n]]):.2f} s")
    smallest, largest = min(size.merge_targets), max(size.merge_targets)
    for n, runs in per_target.items():
        out.figures[f"into_{n}"] = {"seconds": median([r["seconds"] for r in runs]),
                                     "rss_mb": median([r["rss_mb"] for r in runs]),
                                     "rows": runs[0]["rows"], "updated": runs[0]["updated"], "inserted": runs[0]["inserted"]}
    # ratios inside one run: run k of the largest against run k of the smallest
    t_ratio = median([b["seconds"] / a["seconds"] for a, b in zip(per_target[smallest], per_target[largest], strict=True)])
    r_ratio = median([b["rss_mb"] / a["rss_mb"] for a, b in zip(per_target[smallest], per_target[largest], strict=True)])
    out.figures["time_ratio"], out.figures["rss_ratio"] = t_ratio, r_ratio
    out.details["runs"] = {str(k): v for k, v in per_target.items()}
    label = f"{size.merge_batch:,} into {largest:,} vs into {smallest:,}"
    note = "" if largest >= 10_000_000 else "target is 10M; this size stops at " + f"{largest:,}"
    out.targets += [at_most(f"merge time, {label}", 1.5, t_ratio, note=note),
                    at_most(f"merge peak RSS, {label}", 1.2, r_ratio, note=note)]
    return out


def history(bench: Bench, size: Size) -> Outcome:
    """A growing history through the whole pipeline; the first and last ten windows measured."""
    out = Outcome("history")
    shape = data.Shape(lines=size.window_lines, seed=bench.seed)
    warehouse, landing = bench.area("history"), bench.area("history-landing")
    total = size.history_windows
    group = max(1, min(10, total // 2))
    measured = set(range(group)) | set(range(total - group, total))
    windows: list[dict[str, Any]] = []
    w = 0
    while w < total:
        if w in measured:
            bench.land(shape, landing, range(w, w + 1))
            r = bench.run("window", warehouse=warehouse, landing=landing, **bench.window(shape, w))
            windows.append({"window": w, "fresh_process": True, **r})
            w += 1
            continue
        chunk = [v for v in range(w, min(total - group, w + 25))]
        for v in chunk:
            bench.land(shape, landing, range(v, v + 1))
        r = bench.run("windows", warehouse=warehouse, landing=landing,
                      windows=[[shape.window_start(v).isoformat(), shape.window_end(v).isoformat()] for v in chunk])
        windows += [{"window": v, "fresh_process": False, **x} for v, x in zip(chunk, r["windows"], strict=True)]
        w = chunk[-1] + 1
        bench.log(f"  history: {w}/{total} windows")
    first = [x for x in windows if x["window"] < group]
    last = [x for x in windows if x["window"] >= total - group]
    idle = [bench.run("window", warehouse=warehouse, landing=landing, **bench.window(shape, total)) for _ in range(size.repeat)]
    files = bench.run("files", warehouse=warehouse, landing=landing)["tables"]
    out.figures = {
        "windows": total,
        "lines_per_window": size.window_lines,
        "first_seconds": median([x["seconds"] for x in first]),
        "last_seconds": median([x["seconds"] for x in last]),
        "first_cpu_seconds": median([x["cpu_seconds"] for x in first]),
        "last_cpu_seconds": median([x["cpu_seconds"] for x in last]),
        "first_rss_mb": median([x["rss_mb"] for x in first]),
        "last_rss_mb": median([x["rss_mb"] for x in last]),
        "group": group,
        "nothing_new_seconds": median([x["seconds"] for x in idle]),
        "silver_order_lines_rows": files.get("silver.order_lines", {}).get("rows"),
    }
    f = out.figures
    f["time_ratio"] = f["last_seconds"] / f["first_seconds"]
    f["rss_ratio"] = f["last_rss_mb"] / f["first_rss_mb"]
    f["cpu_ratio"] = f["last_cpu_seconds"] / f["first_cpu_seconds"]
    out.details = {"windows": [{k: x.get(k) for k in ("window", "fresh_process", "seconds", "cpu_seconds", "rss_mb", "steps")}
                               for x in windows],
                   "nothing_new": idle, "files": files}
    note = f"median of windows 1–{group} vs {total - group + 1}–{total}"
    out.targets += [
        at_most(f"window {total} vs window {group}: time", 1.3, f["time_ratio"], note=note),
        at_most(f"window {total} vs window {group}: peak RSS", 1.2, f["rss_ratio"], note=note),
        at_most("a window with nothing new", 5, f["nothing_new_seconds"], unit="s",
                note=f"on {f['silver_order_lines_rows'] or 0:,} silver order lines (target: 10M rows)"),
    ]
    bench.discard(warehouse, landing)
    return out


def end_to_end(bench: Bench, size: Size) -> Outcome:
    """One window of JSONL order lines end to end, against dlt merging the same records."""
    out = Outcome("end_to_end")
    shape = data.Shape(lines=size.e2e_lines, seed=bench.seed)
    landing = bench.area("e2e-landing")
    bench.land(shape, landing, range(2))
    globs = [{name: f"{name}/{shape.window_start(w):%Y/%m/%d/%H/%M}/*.jsonl" for name in ("orders", "order_lines")} for w in range(2)]
    runs = []
    clean_landing: str | None = None
    dlt_ok = bench.s3_env is None
    if not dlt_ok:
        out.notes.append("dlt skipped with --s3: its filesystem extra (s3fs → aiobotocore) needs a botocore "
                         "that conflicts with boto3==1.44.5; the engine ran on moto")
    for _ in range(size.repeat):
        warehouse = bench.area("e2e")
        prime = bench.run("window", warehouse=warehouse, landing=landing, **bench.window(shape, 0))
        ours = bench.run("window", warehouse=warehouse, landing=landing, **bench.window(shape, 1))
        tables = bench.run("files", warehouse=warehouse, landing=landing)["tables"]
        run = {"prime_seconds": prime["seconds"], "ours": ours,
               "ours_rows": {n: tables.get(f"silver.{n}", {}).get("rows") for n in ("orders", "order_lines")}}
        if dlt_ok:
            dest = bench.area("e2e-dlt")
            job = {"dest": dest, "pipelines_dir": str(Path(dest) / ".dlt"), "windows": globs}
            try:
                peer = bench.run("dlt", landing=str(Path(clean_landing or landing).resolve()), **job)
            except RuntimeError as exc:
                # dlt's Delta merge refuses a batch that holds a key twice: note why, and
                # time it on the same windows without the duplicates
                errors = [x.strip() for x in str(exc).splitlines() if "Error" in x]
                out.notes.append(f"dlt failed on the same records, which hold duplicates ({(errors or ['?'])[-1][:150]}); "
                                 "dlt is timed on the same windows without duplicates")
                clean_landing = bench.area("e2e-landing-dedup")
                bench.land(dataclasses.replace(shape, duplicate_share=0.0), clean_landing, range(2))
                bench.discard(dest)
                peer = bench.run("dlt", landing=str(Path(clean_landing).resolve()), **job)
            bench.discard(dest)
            run["dlt"] = peer
            run["ratio"] = peer["seconds"] / ours["seconds"]
        runs.append(run)
        bench.discard(warehouse)
    lines = runs[0]["ours"]["rows"].get("bronze.order_lines", 0)
    out.figures = {
        "lines": lines,
        "orders": runs[0]["ours"]["rows"].get("bronze.orders", 0),
        "ours_rows": runs[0]["ours_rows"],
        "ours_seconds": median([r["ours"]["seconds"] for r in runs]),
        "ours_cpu_seconds": median([r["ours"].get("cpu_seconds") for r in runs]),
        "ours_rss_mb": median([r["ours"]["rss_mb"] for r in runs]),
        "steps": {k: median([r["ours"]["steps"].get(k) for r in runs]) for k in runs[0]["ours"]["steps"]},
    }
    if dlt_ok:
        out.figures.update({
            "dlt_seconds": median([r["dlt"]["seconds"] for r in runs]),
            "dlt_cpu_seconds": median([r["dlt"].get("cpu_seconds") for r in runs]),
            "cpu_speedup": median([r["dlt"]["cpu_seconds"] / r["ours"]["cpu_seconds"] for r in runs]),
            "dlt_rss_mb": median([r["dlt"]["rss_mb"] for r in runs]),
            "dlt_rows": runs[0]["dlt"]["rows"],
            "speedup": median([r["ratio"] for r in runs]),
        })
    out.details["runs"] = runs
    out.targets.append(at_least(f"end to end vs dlt merge, {size.e2e_lines:,} JSON lines", 3,
                                out.figures.get("speedup"),
                                note="dlt seconds ÷ ours (bronze, gates, silver, gold); target size 1M"))
    bench.discard(landing, *([clean_landing] if clean_landing else []))
    return out


def prefect_share(bench: Bench, size: Size) -> Outcome:
    """The same window with and without the Prefect flow (against a running API).

    Each repeat runs the window engine-alone, as a flow, then engine-alone again, on three
    warehouses readied alike, and compares the flow with the mean of the two engine runs
    around it: a window's own time drifts by 10-15 % from run to run on a shared machine,
    more than the share measured, and the bracketing cancels a drift that is linear in time.
    """
    out = Outcome("prefect")
    shape = data.Shape(lines=size.window_lines, seed=bench.seed)
    landing = bench.area("prefect-landing")
    bench.land(shape, landing, range(2))
    runs = []
    for _ in range(size.repeat):
        before, flowed, after = bench.area("prefect-plain"), bench.area("prefect-flow"), bench.area("prefect-plain")
        # window 0 readies the tables; through the flow on the flowed side, so the API has
        # seen this flow before the measured run (a deployment's server is warm: the first
        # run against a fresh server also registers the flow, 0.5-1 s, once)
        for wh in (before, after):
            bench.run("window", warehouse=wh, landing=landing, **bench.window(shape, 0))
        bench.run("flow", warehouse=flowed, landing=landing, **bench.window(shape, 0))
        a1 = bench.run("window", warehouse=before, landing=landing, **bench.window(shape, 1))
        b = bench.run("flow", warehouse=flowed, landing=landing, **bench.window(shape, 1))
        a2 = bench.run("window", warehouse=after, landing=landing, **bench.window(shape, 1))
        a = {"seconds": (a1["seconds"] + a2["seconds"]) / 2, "cpu_seconds": (a1["cpu_seconds"] + a2["cpu_seconds"]) / 2,
             "runs": [a1, a2]}
        runs.append({"engine": a, "flow": b, "overhead": (b["seconds"] - a["seconds"]) / a["seconds"],
                     "cpu_overhead": (b["cpu_seconds"] - a["cpu_seconds"]) / a["cpu_seconds"],
                     "outside_steps": b["seconds"] - b.get("flow_seconds", b["seconds"])})
        bench.discard(before, flowed, after)
    out.figures = {
        "lines": size.window_lines,
        "engine_seconds": median([r["engine"]["seconds"] for r in runs]),
        "flow_seconds": median([r["flow"]["seconds"] for r in runs]),
        "overhead": median([r["overhead"] for r in runs]),
        "engine_cpu_seconds": median([r["engine"]["cpu_seconds"] for r in runs]),
        "flow_cpu_seconds": median([r["flow"]["cpu_seconds"] for r in runs]),
        "cpu_overhead": median([r["cpu_overhead"] for r in runs]),
        "prefect_import_seconds": median([r["flow"].get("prefect_import_seconds", 0.0) for r in runs]),
        "outside_steps_seconds": median([r["outside_steps"] for r in runs]),
    }
    out.details["runs"] = runs
    out.targets.append(at_most(f"Prefect overhead on a {size.window_lines:,}-line window", 0.10,
                               out.figures["overhead"], unit="share",
                               note="(flow − engine) ÷ engine, the engine run before and after the flow, Prefect's imports aside; target window 100k lines"))
    bench.discard(landing)
    return out


def files(bench: Bench, size: Size) -> Outcome:
    """Data files per table after many windows, with and without maintenance."""
    out = Outcome("files")
    shape = data.Shape(lines=size.files_lines, seed=bench.seed, lines_per_file=max(size.files_lines // 2, 1))
    landing = bench.area("files-landing")
    bench.land(shape, landing, range(size.files_windows))
    result: dict[str, Any] = {}
    how = ""
    for mode in ("without", "with"):
        warehouse = bench.area(f"files-{mode}")
        step = size.maintain_every if mode == "with" else 50
        for begin in range(0, size.files_windows, step):
            chunk = range(begin, min(begin + step, size.files_windows))
            bench.run("windows", warehouse=warehouse, landing=landing,
                      windows=[[shape.window_start(v).isoformat(), shape.window_end(v).isoformat()] for v in chunk])
            if mode == "with":
                how = bench.run("maintain", warehouse=warehouse, landing=landing)["how"]
        result[mode] = bench.run("files", warehouse=warehouse, landing=landing)["tables"]
        bench.log(f"  files {mode} maintenance: {size.files_windows} windows done")
        bench.discard(warehouse)
    out.figures = {
        "windows": size.files_windows,
        "maintain_every": size.maintain_every,
        "maintenance": how,
        "without": {t: v["active"] for t, v in result["without"].items()},
        "with": {t: v["active"] for t, v in result["with"].items()},
        "max_without": max(v["active"] for v in result["without"].values()),
        "max_with": max(v["active"] for v in result["with"].values()),
    }
    out.details = result
    out.targets.append(at_most(f"data files per table after {size.files_windows} windows, maintenance on", 50,
                               out.figures["max_with"], unit="files",
                               note=f"largest table; maintenance every {size.maintain_every} windows; target 200 windows"))
    bench.discard(landing)
    return out


SCENARIOS: dict[str, Callable[[Bench, Size], Outcome]] = {
    "bronze": bronze_append,
    "merge": merge,
    "history": history,
    "end_to_end": end_to_end,
    "prefect": prefect_share,
    "files": files,
}


def run_scenario(bench: Bench, name: str, size: Size) -> Outcome:
    began = time.perf_counter()
    outcome = SCENARIOS[name](bench, size)
    outcome.seconds = time.perf_counter() - began
    return outcome
