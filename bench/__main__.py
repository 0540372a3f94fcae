"""``python -m bench``: generate data, run every scenario, print a table and write JSON.

Examples::

    python -m bench                       # the default size (medium)
    python -m bench --size tiny           # seconds: a smoke test
    python -m bench --size large          # the issue's full sizes (long)
    python -m bench --only merge --only files --repeat 5 --json out/bench.json
    python -m bench --rows 50000 --windows 40   # the history's window size and length
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bench.report import machine, print_report, write_json
from bench.scenarios import SCENARIOS, SIZES, Bench, Outcome, run_scenario

app = typer.Typer(add_completion=False, help=__doc__)
console = Console(width=None if sys.stdout.isatty() else 140)


@contextlib.contextmanager
def _moto() -> Iterator[dict[str, str]]:
    from lakehouse.dev.moto_server import start_moto_server

    server = start_moto_server()
    try:
        server.create_bucket("bench")
        env = server.env("s3://bench")
        env.pop("LAKEHOUSE_WAREHOUSE")
        yield env
    finally:
        server.stop()


@contextlib.contextmanager
def _prefect_api() -> Iterator[dict[str, str]]:
    """One Prefect API for the whole benchmark (the flow's runs talk to it)."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-home-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": os.environ["PREFECT_HOME"]}


@app.command()
def main(
    size: Annotated[str, typer.Option(help="tiny, small, medium or large (the issue's sizes)")] = "medium",
    rows: Annotated[int | None, typer.Option(help="order lines per window of the history and Prefect scenarios")] = None,
    windows: Annotated[int | None, typer.Option(help="windows of the growing history")] = None,
    repeat: Annotated[int | None, typer.Option(help="runs per figure (the median is reported)")] = None,
    only: Annotated[list[str] | None, typer.Option(help=f"run only these scenarios: {', '.join(SCENARIOS)}")] = None,
    json_path: Annotated[Path, typer.Option("--json", help="where to write the results")] = Path("bench-results.json"),
    workdir: Annotated[Path | None, typer.Option(help="where data and tables go (default: a temporary folder)")] = None,
    s3: Annotated[bool, typer.Option("--s3", help="warehouse and landing on an embedded moto S3 server")] = False,
    keep: Annotated[bool, typer.Option(help="keep the work folder")] = False,
    seed: int = 7,
) -> None:
    """Run the benchmark and report each figure against the issue's targets."""
    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}: choose one of {', '.join(SIZES)}", param_hint="--size")
    chosen = SIZES[size]
    overrides = {k: v for k, v in {"window_lines": rows, "history_windows": windows, "repeat": repeat}.items() if v}
    chosen = dataclasses.replace(chosen, **overrides)
    names = only or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}", param_hint="--only")
    root = workdir or Path(tempfile.mkdtemp(prefix="lakehouse-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    info = machine()
    console.print(f"[bold]lakehouse benchmark[/bold]: size {chosen.name} ({', '.join(names)}), "
                  f"{info['cores']} cores, work folder {root}{', moto S3' if s3 else ''}")
    began = time.perf_counter()
    outcomes = []
    try:
        with contextlib.ExitStack() as stack:
            s3_env = stack.enter_context(_moto()) if s3 else None
            bench = Bench(root, s3_env=s3_env, seed=seed, log=console.print)
            if "prefect" in names:
                bench.prefect_env = stack.enter_context(_prefect_api())
            for name in names:
                console.print(f"[bold]{name}[/bold] …")
                try:
                    outcome = run_scenario(bench, name, chosen)
                except Exception as exc:  # one scenario's failure must not lose the others
                    console.print(f"[red]  {name} failed:[/red] {exc}")
                    outcome = Outcome(name, notes=[f"failed: {str(exc).splitlines()[0]}"], details={"error": str(exc)})
                outcomes.append(outcome)
                console.print(f"  done in {outcome.seconds:.0f} s")
                write_json(json_path, outcomes, chosen, info, sys.argv)  # partial results survive a crash
    finally:
        if not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    info["seconds"] = round(time.perf_counter() - began, 1)
    print_report(outcomes, chosen, info, console)
    write_json(json_path, outcomes, chosen, info, sys.argv)
    console.print(f"results: {json_path} ({info['seconds']:.0f} s in all)")


if __name__ == "__main__":
    app()
