"""The ``lakehouse`` command line.

Its forms are a contract that users and checks script against::

    lakehouse demo [--windows N] [--seed S]
    lakehouse simulate --start T --windows N [--interval 15m] [--seed S] [--bad-window K]
    lakehouse run --at T [--interval 15m] [--pipeline NAME]
    lakehouse backfill --start T1 --end T2 [--interval 15m] [--pipeline NAME] [--config PATH]
    lakehouse query "SQL" [--format table|csv|json]
    lakehouse validate [--config PATH]
    lakehouse contract TABLE [--stage batch|strict] [--config PATH]
    lakehouse quarantine list [--table T] [--limit N] [--format table|csv|json]
    lakehouse quarantine replay [--table T ...] [--pipeline NAME]
    lakehouse serve [--ui-port 4200] [--s3-port 5055] [--state-dir .lakehouse]
    lakehouse maintain [--table T ...] [--dry-run] [--retention-hours H] [--pipeline NAME] [--config PATH]
    lakehouse history TABLE [--limit N] [--config PATH]
    lakehouse rollback TABLE --to-version V [--yes] [--pipeline NAME] [--config PATH]
    lakehouse rebuild [--from bronze] [--yes] [--pipeline NAME] [--config PATH]

``--config PATH`` (or ``LAKEHOUSE_CONFIG``) names the pipeline declaration; the default is
``./lakehouse.yaml`` if it exists, else the built-in shop pipeline.

The command line is the outermost layer: it may import flows, deployments and the engine,
and nothing imports it (``tests/unit/test_import_graph.py``). It lives in ``flows/`` only
because the top level of the project is fixed; the console script ``lakehouse`` and
``python -m flows.cli`` both run :func:`main`.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import AbstractContextManager
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from flows.summary import (
        BatchSummary,
        MaintenanceSummary,
        RebuildSummary,
        ReplaySummary,
        Summary,
    )

os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# a temporary Prefect server can take longer than Prefect's 20 s to start on a busy machine
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

SERVE_API_FILE = "prefect-api-url"
"""Written into the state dir by ``lakehouse serve`` and ``lakehouse server start`` while
their Prefect server runs: the CLI reuses that API (``deployments.local_api.MARKER``)."""

app = typer.Typer(
    help="A micro-batch lakehouse: landing files → bronze → silver → gold on Delta Lake, "
    "gated by Soda, orchestrated by Prefect.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()
err = Console(stderr=True)

DEMO_BUCKET = "lakehouse-demo"
DEMO_START = "2026-01-01T00:00:00Z"


class Format(StrEnum):
    """How a command prints its result: a table, CSV or JSON."""

    table = "table"
    csv = "csv"
    json = "json"


ConfigOption = Annotated[
    str | None,
    typer.Option("--config", help="Pipeline declaration (default: $LAKEHOUSE_CONFIG, ./lakehouse.yaml, built-in shop)."),
]


def _declaration(config: str | None) -> Any:
    from lakehouse.declaration import load
    from lakehouse.errors import ConfigError

    if config:
        os.environ["LAKEHOUSE_CONFIG"] = config  # the flow loads the same file
    try:
        return load(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _settings() -> Any:
    from lakehouse.config import Settings

    settings = Settings()
    if not settings.warehouse:
        err.print(
            "[red]LAKEHOUSE_WAREHOUSE is not set.[/] Set it to s3://bucket/prefix or a local "
            "path (or run `lakehouse demo`, which starts its own S3)."
        )
        raise typer.Exit(2)
    return settings


def _time(text: str) -> Any:
    from lakehouse.window import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _interval(text: str) -> timedelta:
    from lakehouse.window import parse_interval

    try:
        return parse_interval(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def simulate(
    start: Annotated[str, typer.Option(help="Start of the first window, ISO 8601 with zone.")],
    windows: Annotated[int, typer.Option(min=1, help="Number of consecutive windows.")],
    interval: Annotated[str, typer.Option(help="Window length: 5m, 15m, 1h …")] = "15m",
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same bytes.")] = 7,
    bad_window: Annotated[
        int | None, typer.Option(help="Window (1-based) whose orders mostly lack their key.")
    ] = None,
) -> None:
    """Write the shop simulator's landing files for N windows into the landing area."""
    from lakehouse.dev.simulator import simulate as run_simulator
    from lakehouse.storage import open_store

    settings = _settings()
    store = open_store(settings.landing_root, settings)
    written = run_simulator(
        store, start=_time(start), windows=windows, interval=_interval(interval), seed=seed,
        bad_window=bad_window,
    )
    for w in written:
        console.print(f"{w.start:%Y-%m-%d %H:%M}–{w.end:%H:%M}: {len(w.keys)} files, "
                      f"{w.orders} order lines, {w.order_items} item lines")


_HINTED: list[bool] = []


def _prefect_api(state_dir: str = ".lakehouse") -> None:
    """Reuse a running Prefect API: ``PREFECT_API_URL``, else the one ``lakehouse serve`` or
    ``lakehouse server start`` runs.

    Without either, Prefect starts a temporary server for this command (10–40 s).
    """
    if os.environ.get("PREFECT_API_URL"):
        return
    from pathlib import Path

    from deployments.local_api import running_url

    url = running_url(Path(state_dir))
    if url is None:
        if _HINTED:
            return
        _HINTED.append(True)  # once per command, not once per window of a demo or backfill
        err.print("no running Prefect API: Prefect starts a temporary one for this command (10–40 s); "
                  "`lakehouse server start` keeps one running for later commands")
        return
    os.environ["PREFECT_API_URL"] = url
    err.print(f"using the running Prefect API at {url}")


def _flow_here() -> AbstractContextManager[None]:
    """Before a flow runs in this process: the Prefect API to use, and no heartbeats
    (``flows.inprocess.in_this_process``: the command waits for its run)."""
    from flows.inprocess import in_this_process

    _prefect_api()
    return in_this_process()


def _run_window(at: Any, interval: str | None, pipeline: str | None = None) -> tuple[bool, Any]:
    from flows.microbatch import micro_batch

    try:
        with _flow_here():
            state = micro_batch(at=at, interval=interval, pipeline=pipeline, return_state=True)
    except Exception as exc:  # Prefect's own start-up, before the flow runs
        if "Prefect API" not in str(exc) and "ephemeral" not in str(exc).lower():
            raise
        err.print(f"[red]Prefect did not start:[/] {str(exc).splitlines()[0]} "
                  "(set PREFECT_API_URL to a running server, or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
        raise typer.Exit(1) from None
    if state.is_completed():
        return True, state.result()
    return False, state.message


@app.command()
def run(
    at: Annotated[str, typer.Option(help="End of the window, ISO 8601 with zone.")],
    interval: Annotated[str | None, typer.Option(help="Window length: 5m, 15m, 1h … (default: the pipeline's)")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline to run, when the declaration has several.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the window that ends at T as a Prefect flow; exit 1 if a gate blocked or it failed."""
    from lakehouse.errors import ConfigError

    settings = _settings()
    if interval:
        _interval(interval)
    declaration = _declaration(config)
    try:
        declaration.pipeline(pipeline)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    _sources_open(settings, declaration.pipeline(pipeline))
    ok, result = _run_window(_time(at), interval, pipeline)
    if not ok:
        err.print(f"[red]run failed:[/] {result}", soft_wrap=True)
        raise typer.Exit(1)
    show(result)


def _sources_open(settings: Any, pipeline: Any) -> None:
    """Open (and probe) every source read from a cursor before anything is read: one that cannot be
    opened or reached (a database file that is not there, a secret not set, an API that is down or
    refuses the token …) is one line and exit 1, nothing advanced."""
    from rich.markup import escape

    from lakehouse.errors import LakehouseError, one_line
    from lakehouse.sources.base import open_source

    for ds in pipeline.datasets:
        if ds.kind == "landing_files":
            continue
        try:
            source = open_source(ds, settings)
            try:
                source.probe()
            finally:
                source.close()
        except LakehouseError as exc:
            err.print(f"[red]source {ds.source} unavailable ({ds.spec.name}):[/] {escape(one_line(str(exc)))}", soft_wrap=True)
            raise typer.Exit(1) from None


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="Start of the first window, ISO 8601 with zone, on the interval grid.")],
    end: Annotated[str, typer.Option(help="End of the last window (exclusive), after --start, on the grid.")],
    interval: Annotated[str | None, typer.Option(help="Window length: 5m, 15m, 1h … (default: the pipeline's)")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline to run, when the declaration has several.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run every window of [T1, T2) in order as one Prefect flow; safe to re-run after an interruption.

    The ``backfill`` flow runs in this process, and a progress bar advances as it reports
    finished windows through ``flows.backfill.listening`` (a callback cannot be a flow
    parameter). Exit 1 naming the window if one was blocked or failed (later ones are not run).
    """
    from lakehouse.errors import ConfigError

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the progress bar and lines say it all
    _settings()
    if interval:
        _interval(interval)
    _declaration(config)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.backfill import WindowDone, listening, plan, span
    from flows.backfill import backfill as backfill_flow
    from flows.summary import window_line

    try:
        chosen, windows = plan(_time(start), _time(end), interval, pipeline)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"{chosen.name} backfill {span(windows)}: {len(windows)} windows")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"window {windows[0]}", total=len(windows))

        def advance(done: WindowDone) -> None:
            bar.console.print(window_line(done.summary), soft_wrap=True)
            following = f"window {windows[done.index]}" if done.index < done.total else "done"
            bar.update(task, advance=1, description=following)

        with _flow_here(), listening(advance):
            state = backfill_flow(start=windows[0].start, end=windows[-1].end, interval=interval,
                                  pipeline=pipeline, return_state=True)
    if not state.is_completed():
        cause = state.result(raise_on_failure=False)
        err.print(f"[red]backfill failed:[/] {cause if isinstance(cause, BaseException) else state.message}",
                  soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]backfill done:[/] {len(windows)} windows, {span(windows)}")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help='SQL over layer.table names, e.g. "select * from gold.daily_sales"')],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    config: ConfigOption = None,
) -> None:
    """Run SQL over the tables (bronze.*, silver.*, gold.*, quarantine.*) and print it."""
    import duckdb

    from lakehouse.catalog import connect

    con = connect(_settings(), _declaration(config))
    try:
        result = con.sql(sql)
    except duckdb.Error as exc:
        err.print(f"[red]query failed:[/] {exc}")
        raise typer.Exit(1) from exc
    if result is None:
        return
    _emit(result.pl(), format)


def _emit(frame: Any, format: Format) -> None:
    if format is Format.csv:
        sys.stdout.write(frame.write_csv())
    elif format is Format.json:
        sys.stdout.write(frame.write_ndjson())
    else:
        _print_frame(frame)


@app.command()
def demo(
    windows: Annotated[int, typer.Option(min=1, help="Number of 15-minute windows to run.")] = 4,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
) -> None:
    """Run N windows of the shop pipeline on an embedded moto S3 and print what each did.

    Every source is a local sibling the demo starts: landing files in moto S3, the shop's
    SQLite database, a Kinesis stream on the same moto server and the shop's HTTP API on a
    loopback port; each window's data reaches them before the window runs."""
    import tempfile
    from importlib import resources
    from pathlib import Path

    from lakehouse.catalog import connect
    from lakehouse.config import Settings
    from lakehouse.dev import shop_db
    from lakehouse.dev.moto_server import start_moto_server
    from lakehouse.dev.shop_shipments import shipments
    from lakehouse.dev.simulator import simulate as run_simulator
    from lakehouse.storage import open_store

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the tables below say it all
    with console.status("starting an embedded moto server (S3 and Kinesis)"):
        server = start_moto_server(simulated_clock=True)  # the stream's records arrive in the simulated windows
    if not os.environ.get("LAKEHOUSE_WAREHOUSE"):
        server.create_bucket(DEMO_BUCKET)
        os.environ.update(server.env(f"s3://{DEMO_BUCKET}/warehouse"))
        console.print(f"moto S3 on {server.endpoint_url}, warehouse s3://{DEMO_BUCKET}/warehouse")
    os.environ["LAKEHOUSE_CONFIG"] = str(resources.files("lakehouse").joinpath("pipelines/shop.yaml"))
    scratch = tempfile.TemporaryDirectory(prefix="lakehouse-demo-")  # the shop's database, gone with the demo
    api = None
    try:
        database = shop_db.open_or_create(Path(scratch.name) / "shop.db", seed=seed)
        os.environ["SHOP_DB_URL"] = shop_db.url(Path(scratch.name) / "shop.db")
        console.print(f"shop database (customers) in {Path(scratch.name) / 'shop.db'}")
        os.environ["SHOP_STREAM_ENDPOINT"] = server.endpoint_url
        stream = _shop_stream(server.endpoint_url, seed=seed, start=_time(DEMO_START))
        console.print(f"inventory events on Kinesis stream {stream.stream} at {server.endpoint_url}")
        api = _shop_api()
        console.print(f"shop API (shipments) on {api.url}, its token in SHOP_API_TOKEN")
        declaration = _declaration(None)
        settings = Settings()
        store = open_store(settings.landing_root, settings)
        start = _time(DEMO_START)
        interval = timedelta(minutes=15)
        for k in range(windows):
            window_start = start + k * interval
            run_simulator(store, start=window_start, windows=1, interval=interval, seed=seed)
            shop_db.step_once(database, window_start, window_start + interval, seed=seed)
            server.set_clock(window_start + timedelta(minutes=1))
            stream.put_window(k + 1)
            api.publish(shipments(window_start, interval=interval, seed=seed), resource="shipments")
            with console.status(f"window {k + 1}/{windows} (the first starts Prefect's API)"):
                ok, result = _run_window(window_start + interval, "15m", "shop")
            if not ok:
                err.print(f"[red]window {k + 1} failed:[/] {result}")
                raise typer.Exit(1)
            show(result)
        from flows.replay import replay_quarantine

        console.rule("lakehouse quarantine replay: rows that pass now (their product has arrived)")
        with console.status("replaying the quarantine"), _flow_here():
            state = replay_quarantine(pipeline="shop", return_state=True)
        if not state.is_completed():
            err.print(f"[red]replay failed:[/] {state.message}")
            raise typer.Exit(1)
        show(state.result())
        con = connect(settings, declaration)
        console.rule("gold.category_sales: per day, category and customer segment (at the order's time), net of discounts")
        _print_frame(con.sql(
            "SELECT order_date, category, segment, quantity, revenue, discount, orders, customers, avg_order_value "
            "FROM gold.category_sales ORDER BY ALL"
        ).pl())
        console.print("(per product: lakehouse query \"select * from gold.daily_sales\" against a warehouse you keep)")
    finally:
        if api is not None:
            api.stop()
        scratch.cleanup()
        server.stop()


def _shop_api() -> Any:
    """The shop's HTTP API on a free loopback port, started; ``SHOP_API_URL`` and ``SHOP_API_TOKEN`` set for the
    runs (the token: ``$SHOP_API_TOKEN`` if set, else a new random one, never printed)."""
    import secrets

    from lakehouse.dev.shop_api import ShopApi

    token = os.environ.get("SHOP_API_TOKEN") or secrets.token_urlsafe(24)
    api = ShopApi(token=token).start()
    os.environ["SHOP_API_URL"], os.environ["SHOP_API_TOKEN"] = api.url, token
    return api


def _shop_stream(endpoint: str, *, seed: int, start: Any) -> Any:
    """The shop's inventory stream (``$SHOP_STREAM``, else the declaration's default) on the moto server at
    ``endpoint``, created unless it is there; windows counted from ``start``."""
    import boto3.session

    from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY
    from lakehouse.dev.shop_stream import ShopStream

    kinesis = boto3.session.Session().client("kinesis", endpoint_url=endpoint, region_name=REGION,
                                             aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    stream = ShopStream(kinesis, os.environ.get("SHOP_STREAM") or "shop-inventory", seed=seed, start=start)
    if stream.stream not in kinesis.list_streams()["StreamNames"]:
        stream.create(shards=2)
    return stream


@app.command()
def serve(
    ui_port: Annotated[int, typer.Option(help="Port of the Prefect server and its UI.")] = 4200,
    s3_port: Annotated[int, typer.Option(help="Port of the moto S3 server.")] = 5055,
    state_dir: Annotated[str, typer.Option(help="Where the stack keeps its state between restarts.")] = ".lakehouse",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
) -> None:
    """Start the local stack: moto S3, Prefect server + UI, deployments, a worker, the simulator.

    The simulator writes each window's files as the window begins; the deployment's
    schedule runs each window when it ends (a first run, for the window that just ended,
    is triggered at once). Ctrl-C stops everything and saves the S3 state to --state-dir.
    """
    import signal
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from deployments.stack import BUCKET, DEPLOYMENT, start, trigger, window_start
    from lakehouse.config import Settings
    from lakehouse.dev import shop_db
    from lakehouse.dev.shop_shipments import shipments
    from lakehouse.dev.simulator import simulate as run_simulator
    from lakehouse.storage import open_store

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def sleep_until(moment: datetime) -> None:
        while datetime.now(UTC) < moment:
            time.sleep(min(5.0, max(0.1, (moment - datetime.now(UTC)).total_seconds())))

    def stream_window(begins: datetime) -> int:
        """The stream's window number (from 1 at DEMO_START) of the window that begins at ``begins``."""
        return int((begins - _time(DEMO_START)) / interval) + 1

    signal.signal(signal.SIGTERM, interrupted)  # `kill` stops the stack as cleanly as Ctrl-C
    os.environ["LAKEHOUSE_CONFIG"] = os.environ.get("LAKEHOUSE_CONFIG") or str(
        Path(__file__).resolve().parents[1] / "lakehouse" / "pipelines" / "shop.yaml"
    )
    interval = _declaration(None).pipeline("shop").interval
    stack = api = None
    try:
        database_file = Path(state_dir).resolve() / "shop.db"  # kept between restarts, like the S3 snapshot
        database = shop_db.open_or_create(database_file, seed=seed)
        os.environ["SHOP_DB_URL"] = shop_db.url(database_file)  # the worker's runs inherit it
        api = _shop_api()  # SHOP_API_URL and SHOP_API_TOKEN too
        console.print(f"shop API (shipments) on {api.url}")
        stack = start(Path(state_dir), ui_port=ui_port, s3_port=s3_port, say=console.print)
        (Path(state_dir) / SERVE_API_FILE).write_text(stack.env["PREFECT_API_URL"])
        os.environ.update({k: stack.env[k] for k in ("LAKEHOUSE_WAREHOUSE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                                      "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
        settings = Settings()
        store = open_store(settings.landing_root, settings)
        current = window_start(datetime.now(UTC), interval)
        run_simulator(store, start=current - interval, windows=2, interval=interval, seed=seed)
        assert stack.moto is not None
        stream = _shop_stream(stack.moto.endpoint_url, seed=seed, start=_time(DEMO_START))
        stream.interval = interval
        for begins in (current - interval, current):
            shop_db.step_once(database, begins, begins + interval, seed=seed)
            stream.put_window(stream_window(begins))
        # a window's shipments reach the API as it ends, just before its run: they follow its orders' updates,
        # which its files bring, so a run never reads shipments whose orders are in later files (the reference check)
        api.publish(shipments(current - interval, interval=interval, seed=seed), resource="shipments")
        trigger(stack, current)
        console.print(f"simulator: windows from {current - interval:%H:%M} UTC landed in s3://{BUCKET}; "
                      f"{DEPLOYMENT} runs every {interval} (the first now)")
        console.print(f"[bold green]Prefect UI: {stack.ui}[/]   (Ctrl-C stops the stack)")
        while True:
            following = current + interval
            sleep_until(following - timedelta(seconds=2))  # every shipment of the window is dated before its middle
            api.publish(shipments(current, interval=interval, seed=seed), resource="shipments")
            sleep_until(following)
            current = following
            run_simulator(store, start=current, windows=1, interval=interval, seed=seed)
            shop_db.step_once(database, current, current + interval, seed=seed)
            stream.put_window(stream_window(current))
            console.print(f"simulator: window {current:%H:%M}–{current + interval:%H:%M} landed")
    except KeyboardInterrupt:
        console.print("stopping …")
    finally:
        (Path(state_dir) / SERVE_API_FILE).unlink(missing_ok=True)
        if stack is not None:
            stack.stop()
        if api is not None:
            api.stop()
    console.print("stopped")


@app.command()
def validate(config: ConfigOption = None) -> None:
    """Check the pipeline declaration and print what it declares; exit 2 if it is invalid."""
    declaration = _declaration(config)
    for pipeline in declaration.pipelines.values():
        console.print(f"[bold]{pipeline.name}[/] (every {pipeline.interval}) from {declaration.path}")
        for ds in pipeline.datasets:
            spec = ds.spec
            where = (f"files {ds.format} under {ds.prefix or '(root)'}/" if ds.kind == "landing_files"
                     else f"{ds.kind} source {ds.source}, resource {ds.resource}")
            console.print(
                f"  silver.{spec.name}: key {', '.join(spec.keys)}; {len(spec.columns)} columns; "
                f"{len(spec.checks)} checks; {where}"
            )
        for model in pipeline.models:
            console.print(f"  gold.{model.spec.name}: from {', '.join('silver.' + i for i in model.inputs)}; "
                          f"partitioned by {model.spec.partition_by}")
    console.print("[green]valid[/]")


server_app = typer.Typer(
    help="A local Prefect server that later commands reuse (instead of a temporary one each).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
StateDir = Annotated[str, typer.Option(help="Where the server keeps its database, log and URL.")]


@server_app.command("start")
def server_start(
    port: Annotated[int, typer.Option(help="Port of the API and UI on 127.0.0.1.")] = 4210,
    state_dir: StateDir = ".lakehouse",
) -> None:
    """Start a Prefect server in the background (or find the running one) and print its URL."""
    from pathlib import Path

    from deployments.local_api import start

    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
    try:
        with err.status(f"starting a Prefect server on 127.0.0.1:{port} …"):
            started = start(Path(state_dir), port=port, timeout=timeout)
    except RuntimeError as exc:
        err.print(f"[red]Prefect server not started:[/] {exc}")
        raise typer.Exit(1) from None
    if started.pid is None:
        console.print(f"a Prefect server is already running at {started.url}")
    else:
        console.print(f"Prefect server at {started.url} (pid {started.pid}, {started.seconds:.0f} s to start); "
                      f"UI {started.url.removesuffix('/api')}; `lakehouse server stop` stops it")


@server_app.command("stop")
def server_stop(state_dir: StateDir = ".lakehouse") -> None:
    """Stop the server `lakehouse server start` started."""
    from pathlib import Path

    from deployments.local_api import stop

    pid = stop(Path(state_dir))
    console.print(f"stopped the Prefect server (pid {pid})" if pid else "no Prefect server of ours was running")


@server_app.command("status")
def server_status(state_dir: StateDir = ".lakehouse") -> None:
    """Print the URL of the running API the CLI would reuse; exit 1 if there is none."""
    from pathlib import Path

    from deployments.local_api import running_url

    url = running_url(Path(state_dir))
    if url is None:
        console.print("no running Prefect API in " + state_dir)
        raise typer.Exit(1)
    console.print(url)


@app.command()
def segments(
    month: Annotated[str | None, typer.Option(help="The month, YYYY-MM (default: the month before this one).")] = None,
) -> None:
    """RFM segments of every customer for one month into gold.customer_segments (any past month again)."""
    from lakehouse.segments import parse_month

    if month is not None:
        try:
            parse_month(month)
        except ValueError as exc:
            err.print(f"[red]--month:[/] {exc}")
            raise typer.Exit(2) from None
    _settings()
    from flows.segments import customer_segments

    with _flow_here():
        state = customer_segments(month=month, return_state=True)
    if not state.is_completed():
        err.print(f"[red]customer segments failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    result = state.result()
    if not result.customers:
        console.print(f"no customer ordered in the 12 months up to {result.month:%Y-%m}: nothing written")
        return
    console.print(f"gold.customer_segments {result.month:%Y-%m}: {result.customers:,} customers, version {result.version} "
                  f"(from {', '.join(f'{k} v{v}' for k, v in result.consumed.items())})")
    for name, count in result.segments.items():
        console.print(f"  {name:<16} {count:>8,}  {count / result.customers:6.1%}")


report_app = typer.Typer(help="Reports read from the gold tables.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("daily-sales")
def report_daily_sales(
    day: Annotated[str | None, typer.Option("--date", help="The day, YYYY-MM-DD (default: the newest day of the table).")] = None,
    table: Annotated[str, typer.Option(help="The gold table of sales per day and product.")] = "gold.daily_sales",
    format: Annotated[Format, typer.Option("--format", help="table prints the report; json its figures.")] = Format.table,
) -> None:
    """The day's revenue and units, top products, categories and the change against the previous day."""
    import json
    from datetime import date

    from lakehouse import report
    from lakehouse.errors import ConfigError

    settings = _settings()
    name = table.removeprefix("gold.")
    try:
        when = date.fromisoformat(day) if day else report.latest_day(settings, name)
        if when is None:
            err.print(f"{table} has no rows yet")
            raise typer.Exit(1)
        result = report.daily_sales(settings, when, name)
    except ValueError as exc:
        err.print(f"[red]--date {day!r}:[/] expected YYYY-MM-DD ({exc})")
        raise typer.Exit(2) from None
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if format is Format.json:
        sys.stdout.write(json.dumps(report.rows(result)) + "\n")
        return
    if format is Format.csv:
        err.print("the report has no CSV form: use --format json, or `lakehouse query` for the table")
        raise typer.Exit(2)
    console.print(f"[bold]Daily sales, {result.day:%A %d %B %Y}[/] (from {result.table})")
    console.print(report.summary_line(result))
    console.print(f"last {len(result.trend)} days' revenue: {report.sparkline(result.trend)}")
    for title, lines, columns in (
        ("Top products", result.top_products, ("product", "category", "units", "revenue", "orders")),
        ("Categories", result.categories, ("category", "units", "revenue", "share")),
    ):
        out = Table(title=title, title_justify="left")
        for c in columns:
            out.add_column(c, justify="left" if c in ("product", "category") else "right")
        for line in lines:
            out.add_row(*report.cells(result, line))
        console.print(out)


quarantine_app = typer.Typer(help="Rows that row-level rules rejected, with their reasons.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    table: Annotated[str | None, typer.Option(help="Only this dataset (orders or silver.orders).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    config: ConfigOption = None,
) -> None:
    """Show quarantined rows: table, reason, where they came from and the raw record."""
    from lakehouse.catalog import connect

    declaration = _declaration(config)
    con = connect(_settings(), declaration)
    names = [r[0] for r in con.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'quarantine'"
    ).fetchall()]
    if table:
        names = [n for n in names if n == table.split(".")[-1]]
    if not names:
        console.print("nothing quarantined")
        return
    union = " UNION ALL ".join(f'SELECT * FROM quarantine."{n}"' for n in names)
    frame = con.execute(
        f"SELECT _table AS \"table\", _rule AS rule, _reject_reason AS reason, _source_position AS file, _line AS line, "
        f"_raw AS raw FROM ({union}) ORDER BY _landed_at, file, line LIMIT ?", [limit]
    ).pl()
    _emit(frame, format)


@quarantine_app.command("replay")
def quarantine_replay(
    table: Annotated[list[str] | None, typer.Option(help="Only this dataset (repeatable; orders or silver.orders).")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline, when the declaration has several.")] = None,
    config: ConfigOption = None,
) -> None:
    """Re-submit quarantined rows that pass the rules now (say, their product has arrived).

    They go through the normal gate into silver and gold. Each quarantined line is
    replayed at most once: running this twice changes nothing the second time.
    """
    from lakehouse.errors import ConfigError

    _settings()
    declaration = _declaration(config)
    try:
        chosen = declaration.pipeline(pipeline)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    names = [t.split(".")[-1] for t in table or []]
    declared = [ds.spec.name for ds in chosen.datasets]
    unknown = [n for n in names if n not in declared]
    if unknown:
        err.print(f"no dataset {', '.join(unknown)} in {chosen.name}; declared: {', '.join(declared)}")
        raise typer.Exit(2)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from flows.replay import replay_quarantine

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with _flow_here(), Progress(SpinnerColumn(), TextColumn("replaying quarantine"), TimeElapsedColumn(), console=console,
                                transient=True):
        state = replay_quarantine(pipeline=chosen.name, tables=names or None, return_state=True)
    if not state.is_completed():
        err.print(f"[red]replay failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    show(state.result())


@app.command()
def maintain(
    table: Annotated[list[str] | None, typer.Option(help="Only this table (repeatable): layer.table, or a name for every layer's.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be compacted and vacuumed; change nothing.")] = False,
    retention_hours: Annotated[int, typer.Option(min=0, help="Keep removed files at least this long; consumers can only lengthen it.")] = 168,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline, when the declaration has several.")] = None,
    config: ConfigOption = None,
) -> None:
    """Compact, z-order, checkpoint and vacuum the pipeline's tables now, as the `maintenance` flow.

    Vacuum never deletes a file that a downstream table has not read yet (see the README's
    Maintenance section). Exit 1 if a step failed, 2 for an unknown table or pipeline.
    """
    from lakehouse.errors import ConfigError
    from lakehouse.maintenance import select, targets

    settings = _settings()
    declaration = _declaration(config)
    try:
        chosen = declaration.pipeline(pipeline)
        if table:
            select(targets(settings, chosen), table)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # before Prefect is imported: the table says it all
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from flows.maintenance import maintenance

    with _flow_here(), Progress(SpinnerColumn(), TextColumn("maintenance"), TimeElapsedColumn(), console=console, transient=True):
        state = maintenance(pipeline=chosen.name, tables=table or None, dry_run=dry_run,
                            retention_hours=retention_hours, return_state=True)
    if not state.is_completed():
        err.print(f"[red]maintenance failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    show(state.result())


@app.command()
def contract(
    table: Annotated[str, typer.Argument(help="silver.<dataset> or gold.<model> (or just the name).")],
    stage: Annotated[str, typer.Option(help="batch: the bronze→silver gate; strict: the silver→gold gate.")] = "batch",
    config: ConfigOption = None,
) -> None:
    """Print the Soda contract generated for a table's gate."""
    from lakehouse.quality import build_contract

    if stage not in ("batch", "strict"):
        msg = "--stage is batch or strict"
        raise typer.BadParameter(msg)
    declaration = _declaration(config)
    name = table.split(".")[-1]
    specs = {ds.spec.name: ds.spec for p in declaration.pipelines.values() for ds in p.datasets}
    specs |= {m.spec.name: m.spec for p in declaration.pipelines.values() for m in p.models}
    if name not in specs:
        err.print(f"no table {table!r}; declared: {', '.join(s.qualified_name for s in specs.values())}")
        raise typer.Exit(2)
    spec = specs[name]
    strict = stage == "strict" or spec.layer == "gold"
    sys.stdout.write(build_contract(spec, dataset=f"lake/main/{spec.name}", strict=strict))


@app.command()
def history(
    table: Annotated[str, typer.Argument(help="layer.table: silver.orders, gold.daily_sales, bronze.orders_raw.")],
    limit: Annotated[int, typer.Option(min=1, help="At most this many versions, newest first.")] = 20,
    config: ConfigOption = None,
) -> None:
    """List a table's versions: operation, what each commit consumed, rows and files written (from the Delta log)."""
    from lakehouse.history import UnknownTable, resolve
    from lakehouse.history import history as read_history

    settings = _settings()
    declaration = _declaration(config)
    try:
        table = ".".join(resolve(declaration, table))  # bronze.orders: the dataset's bronze.orders_raw
        found = read_history(settings, declaration, table, limit=limit)
    except UnknownTable as exc:
        err.print(str(exc), soft_wrap=True, markup=False)
        raise typer.Exit(2) from exc
    if not found:
        console.print(f"{table}: no versions yet")
        return
    out = Table(title=f"{table}: {len(found)} newest versions")
    for name in ("version", "timestamp", "operation", "consumed", "inserted", "updated", "deleted", "files +", "files -", "note"):
        numeric = name in ("version", "inserted", "updated", "deleted", "files +", "files -")
        out.add_column(name, justify="right" if numeric else "left", no_wrap=name != "note", min_width=20 if name == "note" else None)
    for c in found:
        consumed = "\n".join(f"{up} v{v}" for up, v in c.consumed.items())
        cells = (c.inserted, c.updated, c.deleted, c.files_added, c.files_removed)
        out.add_row(
            str(c.version), "" if c.timestamp is None else c.timestamp.strftime("%Y-%m-%d %H:%M:%S"), c.operation,
            consumed, *("" if v is None else str(v) for v in cells), c.note,
        )
    console.print(out)


@app.command()
def rollback(
    table: Annotated[str, typer.Argument(help="silver.<dataset> or gold.<model>.")],
    to_version: Annotated[int, typer.Option("--to-version", help="The version to restore (see `lakehouse history`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline, when the declaration has several.")] = None,
    config: ConfigOption = None,
) -> None:
    """Restore a table to an earlier version as a new commit, and rewind what it consumed.

    The next run reads again the upstream changes the undone commits had consumed, and gold
    recomputes the partitions those commits touched (README: "History and rollback"). Exit 2
    when the version is not older than the current one, not in the log, or vacuumed.
    """
    from lakehouse import rollback as rb
    from lakehouse.errors import ConfigError

    settings = _settings()
    declaration = _declaration(config)
    try:
        chosen = rb.plan(settings, declaration, table, to_version=to_version, pipeline=pipeline)
    except ConfigError as exc:
        err.print(str(exc), soft_wrap=True, markup=False)
        raise typer.Exit(2) from exc
    _go_ahead(chosen.describe(), "Roll back?", yes=yes)
    try:
        version = rb.execute(settings, chosen)
    except ConfigError as exc:
        err.print(str(exc), soft_wrap=True, markup=False)
        raise typer.Exit(2) from exc
    console.print(f"[green]{chosen.table}: version {chosen.target} restored as version {version}[/]")


def _go_ahead(plan: list[str], question: str, *, yes: bool) -> None:
    """Print what a command will change and ask first (unless ``yes``); a no changes nothing, exit 1."""
    for line in plan:
        console.print(line, soft_wrap=True, markup=False)
    if not yes and not typer.confirm(question, default=False):
        console.print("nothing changed")
        raise typer.Exit(1)


@app.command()
def rebuild(
    source: Annotated[str, typer.Option("--from", help="What to rebuild from: bronze (the only one for now).")] = "bronze",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline, when the declaration has several.")] = None,
    config: ConfigOption = None,
) -> None:
    """Rebuild every silver, quarantine and gold table from bronze alone, into new table versions.

    Each table gets one commit that empties it and sets what it consumed back; silver then
    re-reads all of bronze in its bounded batches and gold recomputes what they touch, as
    the Prefect flow ``rebuild`` (README: "Rebuild (Kappa replay)"). Exit 2 when bronze cannot
    be replayed; 1 when a gate blocked or the flow failed.
    """
    from lakehouse import rebuild as recovery
    from lakehouse.errors import ConfigError

    if source not in recovery.SOURCES:
        err.print(f"--from {source}: only --from bronze is supported (bronze is the replayable log)",
                  soft_wrap=True, markup=False)
        raise typer.Exit(2)
    settings = _settings()
    declaration = _declaration(config)
    try:
        chosen = declaration.pipeline(pipeline)
        planned = recovery.plan(settings, chosen, source=source)
    except ConfigError as exc:
        err.print(str(exc), soft_wrap=True, markup=False)
        raise typer.Exit(2) from exc
    _go_ahead(planned.describe(), "Rebuild?", yes=yes)
    from flows.rebuild import listening
    from flows.rebuild import rebuild as rebuild_flow

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the round lines say it all
    with _flow_here(), listening(lambda done: console.print(done.line, soft_wrap=True, markup=False)):
        state = rebuild_flow(pipeline=chosen.name, source=source, return_state=True)
    if not state.is_completed():
        cause = state.result(raise_on_failure=False)
        message = str(cause) if isinstance(cause, BaseException) else state.message
        err.print(f"rebuild failed: {message}", soft_wrap=True, markup=False)
        raise typer.Exit(2 if isinstance(cause, ConfigError) else 1)
    show(state.result())


def show(summary: Summary, out: Console | None = None) -> None:
    """Print what a flow returned: a window's table, a replay's lines or a maintenance table."""
    from flows.summary import BatchSummary, MaintenanceSummary, RebuildSummary, ReplaySummary

    out = out or console
    match summary:
        case BatchSummary():
            _show_batch(summary, out)
        case ReplaySummary():
            _show_replay(summary, out)
        case MaintenanceSummary():
            _show_maintenance(summary, out)
        case RebuildSummary():
            _show_rebuild(summary, out)
        case _:
            msg = f"no terminal rendering of {type(summary).__name__}"
            raise TypeError(msg)


def _show_batch(summary: BatchSummary, out: Console) -> None:
    took = ""
    if summary.seconds is not None:
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.steps.items())
        took = f" in {summary.seconds:.1f} s" + (f" ({steps})" if steps else "")
    table = Table(title=f"window {summary.window}: {summary.files} files{took}")
    columns = ("read", "merged", "duplicates", "conflicts", "rejected", "inserted", "updated", "files_added")
    for col in ("table", *columns):
        table.add_column(col.replace("_", " "), justify="left" if col == "table" else "right", no_wrap=True)
    for t in summary.tables:
        table.add_row(t.table, *(str(getattr(t, c)) for c in columns))
    out.print(table)
    for t in summary.tables:
        if t.deleted:
            out.print(f"  deleted from {t.table}: {t.deleted} key(s), {t.removed} row(s) removed")
    for t in summary.tables:
        if t.reasons:
            why = ", ".join(f"{n} × {reason}" for reason, n in t.reasons.items())
            out.print(f"  quarantined from {t.table}: {why}")
    for g in summary.gold:
        out.print(f"  {g.table}: recomputed {len(g.partitions)} partition(s) {', '.join(g.partitions)}"
                  f", {g.files_added} file(s) added")


def _show_replay(summary: ReplaySummary, out: Console) -> None:
    for r in summary.replayed:
        failing = ", ".join(f"{n} × {why}" for why, n in r.still_failing.items())
        out.print(f"{r.table}: {r.replayed} of {r.candidates} quarantined rows replayed"
                  + (f"; still failing: {failing}" if failing else ""))
    for t in summary.tables:
        out.print(f"  {t.table}: merged {t.merged} (inserted {t.inserted}, updated {t.updated}), rejected {t.rejected}")
    for g in summary.gold:
        out.print(f"  {g.table}: recomputed {len(g.partitions)} partition(s)")


def _show_rebuild(summary: RebuildSummary, out: Console) -> None:
    table = Table(title=f"{summary.pipeline}: rebuilt from {summary.source} in {len(summary.rounds)} round(s)")
    for col in ("table", "emptied as version", "rows now"):
        table.add_column(col, justify="left" if col == "table" else "right", no_wrap=True)
    for name, rows in summary.rows.items():
        version = summary.emptied.get(name)
        table.add_row(name, "–" if version is None else str(version), str(rows))
    out.print(table)


def _show_maintenance(summary: MaintenanceSummary, out: Console) -> None:
    would = " (dry run: nothing changed)" if summary.dry_run else ""
    table = Table(title=f"{summary.pipeline}: maintenance{would}, {summary.seconds} s")
    table.add_column("table", no_wrap=True)
    for col in ("files", "MB", "rewritten", "vacuumed", "hours"):
        table.add_column(col, justify="right", no_wrap=True)
    for t in summary.tables:
        table.add_row(
            t.table, f"{t.files_before} → {t.files_after}",
            f"{t.bytes_before / 1e6:.2f} → {t.bytes_after / 1e6:.2f}", str(t.rewritten), str(t.vacuumed),
            "–" if t.retention_hours is None else str(t.retention_hours),
        )
    out.print(table)
    for t in summary.tables:
        if t.notes:
            out.print(f"  {t.table}: {t.notes}", soft_wrap=True)
    if summary.dry_run:
        for what, files_of in (("would rewrite", summary.rewrite), ("would vacuum", summary.vacuum)):
            for name, files in files_of.items():
                out.print(f"  {name} {what} {len(files)} files: {', '.join(files[:5])}{' …' if len(files) > 5 else ''}",
                          soft_wrap=True)


def _print_frame(frame: Any) -> None:
    table = Table()
    for name in frame.columns:
        table.add_column(name)
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def main() -> None:
    """The ``lakehouse`` command (the console script)."""
    logging.basicConfig(level=logging.WARNING)
    app()


if __name__ == "__main__":
    main()
