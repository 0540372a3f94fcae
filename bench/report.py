"""The benchmark's output: a rich table of figures, a table of targets, and a JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.scenarios import ROOT, Outcome, Size

PACKAGES = ("deltalake", "polars", "pyarrow", "duckdb", "prefect", "soda-core", "dlt", "numpy")


def machine() -> dict[str, Any]:
    """Cores, memory, Python and the versions that matter, and the commit measured."""
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "versions": versions,
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if unit == "share":
            return f"{value:.1%}"
        text = f"{value:,.0f}" if abs(value) >= 1000 or unit == "MB" else f"{value:.2f}"
        return text + (unit if unit == "×" else f" {unit}" if unit else "")
    if isinstance(value, int):
        return f"{value:,}" + (f" {unit}" if unit else "")
    return str(value)


def _rows(outcome: Outcome) -> list[tuple[str, str]]:
    f = outcome.figures
    if not f:
        return []
    if outcome.scenario == "bronze":
        return [
            (f"bronze ingest (list, read, append), {f['rows']:,} lines", f"{_fmt(f['bronze_rows_per_s'])} rows/s ({_fmt(f['bronze_seconds'], 's')}, {_fmt(f['bronze_rss_mb'], 'MB')})"),
            ("  of which the append (Delta commit)", f"{_fmt(f.get('append_rows_per_s'))} rows/s"),
            ("pyarrow Parquet floor, same table", f"{_fmt(f['floor_rows_per_s'])} rows/s"),
            ("append ÷ floor", _fmt(f["share_of_floor"], "share")),
            ("ingest ÷ floor", _fmt(f.get("ingest_share_of_floor"), "share")),
        ]
    if outcome.scenario == "merge":
        rows = [(f"merge {v['rows']:,} ({v['updated']:,} updates) into {int(k[5:]):,}",
                 f"{_fmt(v['seconds'], 's')}, peak {_fmt(v['rss_mb'], 'MB')}")
                for k, v in f.items() if k.startswith("into_")]
        return [*rows, ("largest ÷ smallest target", f"time {_fmt(f['time_ratio'], '×')}, RSS {_fmt(f['rss_ratio'], '×')}")]
    if outcome.scenario == "history":
        g = f["group"]
        return [
            (f"history: {f['windows']} windows of {f['lines_per_window']:,} lines", ""),
            (f"  first {g} windows (median)", f"{_fmt(f['first_seconds'], 's')} ({_fmt(f.get('first_cpu_seconds'), 's')} CPU), peak {_fmt(f['first_rss_mb'], 'MB')}"),
            (f"  last {g} windows (median)", f"{_fmt(f['last_seconds'], 's')} ({_fmt(f.get('last_cpu_seconds'), 's')} CPU), peak {_fmt(f['last_rss_mb'], 'MB')}"),
            ("  last ÷ first", f"time {_fmt(f['time_ratio'], '×')} (CPU {_fmt(f.get('cpu_ratio'), '×')}), RSS {_fmt(f['rss_ratio'], '×')}"),
            (f"  a window with nothing new ({_fmt(f['silver_order_lines_rows'])} silver lines)", _fmt(f["nothing_new_seconds"], "s")),
        ]
    if outcome.scenario == "end_to_end":
        rows = [(f"end to end, {f['lines']:,} lines + {f['orders']:,} orders",
                 f"{_fmt(f['ours_seconds'], 's')} ({_fmt(f.get('ours_cpu_seconds'), 's')} CPU), peak {_fmt(f['ours_rss_mb'], 'MB')}"),
                ("  of which", ", ".join(f"{k} {v:.1f} s" for k, v in f["steps"].items() if v is not None))]
        if "dlt_seconds" in f:
            rows += [("dlt merge load of the same records",
                      f"{_fmt(f['dlt_seconds'], 's')} ({_fmt(f.get('dlt_cpu_seconds'), 's')} CPU), peak {_fmt(f['dlt_rss_mb'], 'MB')}"),
                     ("  rows after both windows: ours | dlt", " | ".join(
                         f"{n} {f['ours_rows'].get(n)} | {f['dlt_rows'].get(n)}" for n in ("orders", "order_lines"))),
                     ("dlt ÷ ours", f"{_fmt(f['speedup'], '×')} (CPU {_fmt(f.get('cpu_speedup'), '×')})")]
        return rows
    if outcome.scenario == "prefect":
        return [(f"window of {f['lines']:,} lines, engine alone", _fmt(f["engine_seconds"], "s")),
                ("  the same window as a Prefect flow", _fmt(f["flow_seconds"], "s")),
                ("  Prefect's share", _fmt(f["overhead"], "share")),
                ("  CPU: engine alone, as a flow", f"{_fmt(f.get('engine_cpu_seconds'), 's')}, {_fmt(f.get('flow_cpu_seconds'), 's')}"),
                ("  Prefect's share of CPU (this process)", _fmt(f.get("cpu_overhead"), "share")),
                ("  the flow's run outside its steps (start, state, summary)", _fmt(f.get("outside_steps_seconds"), "s")),
                ("  Prefect's imports, once per process", _fmt(f.get("prefect_import_seconds"), "s"))]
    if outcome.scenario == "files":
        return [(f"data files after {f['windows']} windows, no maintenance", ", ".join(f"{k} {v}" for k, v in f["without"].items())),
                (f"  with maintenance every {f['maintain_every']} windows", ", ".join(f"{k} {v}" for k, v in f["with"].items())),
                ("  maintenance by", f["maintenance"])]
    return [(k, _fmt(v)) for k, v in f.items()]


def print_report(outcomes: list[Outcome], size: Size, info: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    figures = Table(title=f"lakehouse benchmark — size {size.name}, repeat {size.repeat}, "
                          f"{info['cores']} cores, {info['memory_gb']} GB, commit {info['commit']}")
    figures.add_column("figure")
    figures.add_column("value (median)")
    for outcome in outcomes:
        for name, value in _rows(outcome):
            figures.add_row(name, value)
        for note in outcome.notes:
            figures.add_row(f"[dim]{note}[/dim]", "")
        figures.add_row(f"[dim]{outcome.scenario}: {outcome.seconds:.0f} s[/dim]", "", end_section=True)
    console.print(figures)
    targets = Table(title="targets (issue 10)")
    for col in ("target", "limit", "measured", "", "note"):
        targets.add_column(col)
    for outcome in outcomes:
        for t in outcome.targets:
            verdict = "[green]PASS[/green]" if t.passed else "[red]MISS[/red]" if t.passed is False else "—"
            targets.add_row(t.name, t.limit, _fmt(t.value, t.unit), verdict, t.note)
    console.print(targets)


def write_json(path: Path, outcomes: list[Outcome], size: Size, info: dict[str, Any], argv: list[str]) -> None:
    body = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": argv,
        "machine": info,
        "size": size.__dict__,
        "scenarios": {o.scenario: {"seconds": o.seconds, "figures": o.figures, "notes": o.notes, "details": o.details}
                      for o in outcomes},
        "targets": [t.as_dict() for o in outcomes for t in o.targets],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
