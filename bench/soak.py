"""``python -m bench.soak --windows N``: a long soak of the shop pipeline's landing files in one process.

Every window runs through :func:`lakehouse.engine.run_window` in this one long-lived
process (a worker that never restarts), against an embedded moto S3 reached through the
fault-injecting proxy (:mod:`lakehouse.dev.s3proxy`: 500s, 503 SlowDown, resets, slow answers,
bodies cut short, lost commit acknowledgements), on the shop simulator's data (late and
out-of-order updates, duplicates, a file delivered twice, malformed lines, rows that break
checks, an order line whose product arrives a window later). The simulator lands each
window's files just before the window runs, straight into moto (the source is not flaky).

A failure a retry can cure (:func:`lakehouse.errors.is_transient`) re-runs the window, as a
task retry would (up to ``--retries`` times); any other failure is recorded and the soak
goes on with the next window, which catches up, as the next scheduled run would. After the
last window the faults are turned off and one more run catches up whatever a failure left.

It then compares the tables with an **independent recomputation**: DuckDB over the landing
files as they are in S3 (every non-blank line, numbered as the landing parser does), minus
the lines the quarantine holds (the row-level rules are not re-implemented: whether a line
*should* be quarantined is the unit and corpus tests' job; what the soak checks is that
every other line ends up in silver exactly as "the latest version per key" says, after
hundreds of windows of faults), the latest row per key by ``updated_at``, then the file key
(landing time is in the key) and the line; and the gold SQL run by DuckDB over those
recomputed silver tables. It prints a table (windows, seconds, RSS of the first 10 windows
against the last 10, tables equal) and exits 1 when a table differs.

Example::

    python -m bench.soak --windows 500 --json soak.json
    python -m bench.soak --windows 500 --minutes 60   # as many as fit in an hour, then compared
    make soak SOAK_WINDOWS=500
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import psutil

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


@dataclass
class Report:
    windows: int
    seconds: float = 0.0
    window_seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)
    """Window re-runs after a transient error, by error class."""
    failures: list[str] = field(default_factory=list)
    """Windows that failed for good (the next window caught up)."""
    faults: dict[str, int] = field(default_factory=dict)
    """Faults the proxy injected, by kind."""
    equal: dict[str, bool] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    differences: dict[str, str] = field(default_factory=dict)
    aborted: str = ""
    """Why the soak stopped before its last window (the store went away), if it did."""
    stopped: str = ""
    """Why the soak ran fewer windows than asked (``--minutes`` spent), if it did: still compared."""


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _run(settings: Any, pipeline: Any, k: int, report: Report, retries: int) -> None:
    from lakehouse.engine import run_window
    from lakehouse.errors import is_transient
    from lakehouse.window import window_ending_at

    window = window_ending_at(START + k * INTERVAL, INTERVAL)
    for attempt in range(retries + 1):
        try:
            run_window(settings, pipeline, window)
            return
        except Exception as exc:  # noqa: BLE001 - classified and recorded, never swallowed silently
            if _stopping:  # SIGTERM inside DuckDB surfaces as "Query interrupted"
                raise SystemExit(143) from exc
            name = type(exc).__name__
            if is_transient(exc) and attempt < retries:
                report.retries[name] = report.retries.get(name, 0) + 1
                time.sleep(min(0.2 * 2**attempt, 2.0))
                continue
            where = traceback.extract_tb(exc.__traceback__)[-1]
            report.failures.append(f"window {k}: {name}: {str(exc).splitlines()[0][:300]} "
                                   f"(transient: {is_transient(exc)}; at {Path(where.filename).name}:{where.lineno})")
            print(f"failed: {report.failures[-1]}", file=sys.stderr, flush=True)
            return


def landing_lines(store: Any, prefix: str) -> pl.DataFrame:
    """Every non-blank line of every file under ``prefix``, numbered from 1 as in the file."""
    rows: list[tuple[str, int, str]] = []
    for info in store.list(prefix + "/"):
        text = store.get(info.key).decode("utf-8-sig", errors="replace")
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.rstrip("\r")
            if line.strip():
                rows.append((info.key, number, line))
    return pl.DataFrame(rows, schema={"file": pl.String, "line": pl.Int64, "text": pl.String}, orient="row")


def _sql_value(column: Any) -> str:
    """DuckDB expression of a declared column from the line's JSON text ``text``."""
    from lakehouse.specs import quote

    if column.derive:
        func, _, arg = column.derive.partition("(")
        assert func == "date", column.derive
        return f"CAST(timezone('UTC', {quote(arg.rstrip(')'))}) AS DATE)"
    raw = f"json_extract_string(text, '$.{column.name}')"
    return f"CAST({raw} AS {column.sql_type()})"


def _versions(spec: Any) -> str:
    """The rest of the query of an SCD2 dataset (``history: scd2``) after ``typed`` and ``latest``: a version
    per run of a key's records (by ``order_by``, then landing) whose tracked columns do not change, valid from
    its first record to the next run's, its other columns the key's latest record's."""
    from lakehouse.specs import quote

    keys = ", ".join(quote(k) for k in spec.keys)
    by = quote(spec.order_by)
    tracked = ", ".join(quote(c) for c in spec.tracked)
    window = f"PARTITION BY {keys} ORDER BY {by}, file, line"
    first = ", ".join(f"r.{quote(c)}" for c in spec.tracked)
    rest = ", ".join(f"l.{quote(c.name)}" for c in spec.columns if c.name not in (*spec.keys, *spec.tracked, spec.order_by))
    on = " AND ".join(f"l.{quote(k)} = r.{quote(k)}" for k in spec.keys)
    return f"""
        flagged AS (SELECT *, CASE WHEN row({tracked}) IS DISTINCT FROM lag(row({tracked})) OVER ({window})
                                   THEN 1 ELSE 0 END AS opens FROM typed),
        runs AS (SELECT *, sum(opens) OVER ({window} ROWS UNBOUNDED PRECEDING) AS run FROM flagged),
        firsts AS (SELECT * FROM runs WHERE opens = 1),
        versions AS (SELECT r.*, lead({by}) OVER (PARTITION BY {keys} ORDER BY {by}, file, line) AS valid_to FROM firsts r)
        SELECT {", ".join(f"r.{quote(k)}" for k in spec.keys)}, {first}{", " + rest if rest else ""},
               r.{by}, r.{by} AS valid_from, r.valid_to, r.valid_to IS NULL AS is_current
        FROM versions r JOIN (SELECT * FROM latest WHERE rn = 1) l ON {on}"""


def recompute(settings: Any, pipeline: Any) -> dict[str, pl.DataFrame]:
    """silver.<dataset> and gold.<model> recomputed from the landing files (see the module doc)."""
    from lakehouse.commit import open_table
    from lakehouse.specs import quote
    from lakehouse.storage import open_store, storage_options

    store = open_store(settings.landing_root, settings)
    options = storage_options(settings)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA silver")
    out: dict[str, pl.DataFrame] = {}
    for ds in pipeline.datasets:
        spec = ds.spec
        lines = landing_lines(store, ds.prefix)
        q = open_table(settings.table_uri("quarantine", spec.name), options)
        rejected = (
            pl.from_arrow(q.to_pyarrow_table(columns=["_source_position", "_line"]))
            if q is not None else pl.DataFrame(schema={"_source_position": pl.String, "_line": pl.Int64})
        )
        con.register("lines", lines.to_arrow())
        con.register("rejected", rejected.to_arrow())
        fields = [c for c in spec.columns if not c.derive]
        derived = [c for c in spec.columns if c.derive]
        typed = ", ".join(f"{_sql_value(c)} AS {quote(c.name)}" for c in fields)
        more = "".join(f", {_sql_value(c)} AS {quote(c.name)}" for c in derived)
        keys = ", ".join(quote(k) for k in spec.keys)
        names = ", ".join(quote(c.name) for c in spec.columns)
        order = f"{quote(spec.order_by)} DESC, " if spec.order_by else ""
        kept = f"""
            kept AS (
                SELECT l.* FROM lines l ANTI JOIN rejected r ON r._source_position = l.file AND r._line = l.line),
            typed AS (SELECT file, line, {typed} FROM kept),
            latest AS (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order}file DESC, line DESC) AS rn
                       FROM typed)"""
        if spec.tracked is None:
            query = f"WITH {kept} SELECT {names} FROM (SELECT *{more} FROM latest WHERE rn = 1)"
        else:
            query = f"WITH {kept}, {_versions(spec)}"
        frame = con.execute(query).pl()
        con.unregister("lines")
        con.unregister("rejected")
        frame = frame.select(_columns(spec)).cast(_schema(spec))  # type: ignore[arg-type]
        con.register(f"_{spec.name}", frame.to_arrow())
        con.execute(f"CREATE TABLE silver.{quote(spec.name)} AS SELECT * FROM {quote('_' + spec.name)}")
        out[f"silver.{spec.name}"] = frame
    for model in pipeline.models:
        frame = con.execute(model.sql).pl().select(model.spec.column_names)
        out[f"gold.{model.spec.name}"] = frame.cast(dict(model.spec.polars_schema()))  # type: ignore[arg-type]
    con.close()
    return out


def _columns(spec: Any) -> list[str]:
    """The declared columns, and an SCD2 table's version columns."""
    return [*spec.column_names, *(c.name for c in spec.history_columns())]


def _schema(spec: Any) -> dict[str, Any]:
    return {c.name: c.polars_dtype() for c in (*spec.columns, *spec.history_columns())}


def compare(settings: Any, pipeline: Any, report: Report) -> None:
    from lakehouse.storage import storage_options

    expected = recompute(settings, pipeline)
    specs = {f"silver.{d.spec.name}": d.spec for d in pipeline.datasets}
    specs |= {f"gold.{m.spec.name}": m.spec for m in pipeline.models}
    for name, spec in specs.items():
        layer, table = name.split(".")
        actual = pl.read_delta(settings.table_uri(layer, table), storage_options=storage_options(settings))
        columns = _columns(spec)
        actual = actual.select(columns).cast(_schema(spec))  # type: ignore[arg-type]
        keys = list(spec.keys) + (["valid_from"] if spec.history_columns() else [])
        a, e = actual.sort(keys), expected[name].sort(keys)
        report.rows[name] = a.height
        report.equal[name] = a.equals(e)
        if not report.equal[name]:
            only_a = a.join(e, on=columns, how="anti", nulls_equal=True)
            only_e = e.join(a, on=columns, how="anti", nulls_equal=True)
            report.differences[name] = (f"{a.height} rows in the table, {e.height} recomputed; "
                                        f"{only_a.height} only in the table (e.g. {only_a.head(2).to_dicts()}), "
                                        f"{only_e.height} only recomputed (e.g. {only_e.head(2).to_dicts()})")


def soak(
    windows: int, *, seed: int, orders: int, rate: float, lost_ack: float, retries: int, minutes: float | None = None
) -> Report:
    """Run the soak; ``minutes``: start no window after that many minutes (one runs at least),
    then catch up and compare as after the last window."""
    from lakehouse.config import Settings
    from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY, start_moto_server
    from lakehouse.dev.s3proxy import ProxyProcess
    from lakehouse.dev.shop import shop_files
    from lakehouse.dev.simulator import simulate
    from lakehouse.storage import open_store

    report = Report(windows)
    # the shop's landing files: its database, stream and API would need their local siblings
    pipeline = shop_files()
    moto = start_moto_server()
    proxy = None
    try:
        proxy = ProxyProcess(moto.endpoint_url)
        bucket = f"soak-{uuid.uuid4().hex[:8]}"
        moto.create_bucket(bucket)
        creds = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "aws_region": REGION}
        warehouse = f"s3://{bucket}/warehouse"
        direct = Settings(warehouse=warehouse, aws_endpoint_url=moto.endpoint_url, **creds)  # type: ignore[arg-type]
        flaky = Settings(warehouse=warehouse, aws_endpoint_url=proxy.endpoint_url, **creds)  # type: ignore[arg-type]
        source = open_store(direct.landing_root, direct)
        began = time.perf_counter()
        proxy.set_faults(rate, lost_ack=lost_ack, seed=seed)
        last = 0
        for k in range(1, windows + 1):
            if k > 1 and minutes is not None and time.perf_counter() - began >= minutes * 60:
                report.stopped = f"after window {last} of {windows}: --minutes {minutes:g} spent"
                print(f"stopped {report.stopped}; catching up and comparing", file=sys.stderr, flush=True)
                break
            try:
                simulate(source, start=START + (k - 1) * INTERVAL, windows=1, seed=seed, orders_per_window=orders)
            except Exception as exc:  # noqa: BLE001 - the store itself is gone (moto died): report what was measured
                report.aborted = f"at window {k}, landing its files: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                print(f"aborted {report.aborted}", file=sys.stderr, flush=True)
                break
            t0 = time.perf_counter()
            _run(flaky, pipeline, k, report, retries)
            last = k
            report.window_seconds.append(round(time.perf_counter() - t0, 3))
            report.rss_mb.append(round(_rss_mb(), 1))
            if k % 5 == 0 or k == windows:
                print(f"window {k}/{windows}: {report.window_seconds[-1]:.2f} s, RSS {report.rss_mb[-1]:.0f} MB, "
                      f"retries {sum(report.retries.values())}, failures {len(report.failures)}", file=sys.stderr, flush=True)
        if report.aborted:
            return report
        report.faults = dict(proxy.tally().faults)
        proxy.set_faults(0)
        _run(direct, pipeline, last, report, retries)  # catch up whatever a failure left
        report.seconds = round(time.perf_counter() - began, 1)
        compare(direct, pipeline, report)
    finally:
        if proxy is not None:
            proxy.stop()
        moto.stop()
    return report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(report: Report) -> None:
    first, last = report.rss_mb[:10], report.rss_mb[-10:]
    t_first, t_last = report.window_seconds[:10], report.window_seconds[-10:]
    rows = [
        ("windows", str(len(report.window_seconds))),
        ("seconds (all windows, catch-up, comparison excluded)", f"{sum(report.window_seconds):.1f}"),
        ("seconds per window, median of first 10 / last 10", f"{_median(t_first):.2f} / {_median(t_last):.2f}"),
        ("RSS MB, median of first 10 / last 10", f"{_median(first):.0f} / {_median(last):.0f} "
                                                   f"({_median(last) / _median(first):.2f}×)"),
        ("RSS MB, max", f"{max(report.rss_mb):.0f}"),
        ("faults injected", ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items())) or "none"),
        ("window re-runs (transient)", ", ".join(f"{k} {v}" for k, v in sorted(report.retries.items())) or "none"),
        ("windows failed for good (next caught up)", str(len(report.failures))),
        *((f"equal: {name} ({report.rows[name]} rows)", "yes" if ok else "NO") for name, ok in report.equal.items()),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)} | value")
    print(f"{'-' * width}-|------")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
    if report.stopped:
        print(f"stopped {report.stopped}")
    if report.aborted:
        print(f"aborted {report.aborted}: no comparison")
    for failure in report.failures[:10]:
        print(f"failed: {failure}")
    for name, why in report.differences.items():
        print(f"differs: {name}: {why}")


_stopping = False


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True
    raise SystemExit(128 + signum)  # so that the moto server and the proxy are stopped too


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders", type=int, default=40, help="orders per window (the simulator's)")
    parser.add_argument("--fault-rate", type=float, default=0.02, help="share of S3 requests that fail")
    parser.add_argument("--lost-ack", type=float, default=0.05, help="share of commit PUTs whose acknowledgement is lost")
    parser.add_argument("--retries", type=int, default=5, help="re-runs of a window after a transient error")
    parser.add_argument("--minutes", type=float,
                        help="start no window after this many minutes, then catch up and compare")
    parser.add_argument("--json", help="also write the figures (per-window seconds and RSS) here")
    args = parser.parse_args(argv)
    report = soak(args.windows, seed=args.seed, orders=args.orders, rate=args.fault_rate,
                  lost_ack=args.lost_ack, retries=args.retries, minutes=args.minutes)
    print_table(report)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(asdict(report), fh, indent=1)
    return 0 if report.equal and all(report.equal.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
