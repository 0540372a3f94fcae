"""The command line against moto and a Prefect API.

Where the process is the point (exit codes as the shell sees them, a demo with nothing
started by hand, a fresh interpreter's imports) the command runs in a subprocess, as a user
runs it; the rest calls the same typer app in this process (typer's ``CliRunner``), which
spares a slow interpreter start per command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner, Result

from flows.cli import app
from tests.conftest import DEMO_API_TOKEN, Background

pytestmark = pytest.mark.slow


def lakehouse(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout,
    )


def invoke(*args: str) -> Result:
    """The command in this process, which keeps no environment change of it (``--config``
    exports ``LAKEHOUSE_CONFIG`` for the flows it runs)."""
    saved = dict(os.environ)
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_simulate_run_query_and_a_blocked_gate(warehouse: str, prefect_api: str) -> None:
    out = invoke("simulate", "--start", "2026-01-01T00:00:00Z", "--windows", "2", "--seed", "3", "--bad-window", "2")
    assert out.exit_code == 0, out.output
    ok = invoke("run", "--at", "2026-01-01T00:15:00Z")
    assert ok.exit_code == 0, ok.output[-3000:]
    assert "silver.orders" in ok.stdout

    # a real process: the exit code and the message the shell sees
    blocked = lakehouse("run", "--at", "2026-01-01T00:30:00+00:00", "--interval", "15m")
    assert blocked.returncode == 1
    assert "missing(order_id)" in blocked.stderr

    csv = invoke("query", "select count(*) as n from silver.orders", "--format", "csv")
    assert csv.exit_code == 0, csv.output
    assert csv.stdout.splitlines()[0] == "n" and int(csv.stdout.splitlines()[1]) > 0

    js = invoke("query", "select order_date, sum(revenue) as revenue from gold.daily_sales group by 1", "--format", "json")
    assert js.exit_code == 0, js.output
    rows = [json.loads(line) for line in js.stdout.splitlines()]
    assert rows and {"order_date", "revenue"} <= rows[0].keys()

    quarantined = invoke("quarantine", "list", "--format", "json")
    assert quarantined.exit_code == 0, quarantined.output
    rows = [json.loads(line) for line in quarantined.stdout.splitlines()]
    assert any(r["reason"].startswith("malformed") for r in rows)
    assert all(r["raw"] is not None and r["file"] for r in rows)

    scans = invoke("query", "select count(*) as n from quality.scan_results where not gate_passed", "--format", "csv")
    assert scans.exit_code == 0 and int(scans.stdout.splitlines()[1]) > 0

    bad_sql = invoke("query", "select * from silver.nope")
    assert bad_sql.exit_code == 1 and "query failed" in bad_sql.stderr


def test_validate_and_contract(tmp_path) -> None:
    ok = invoke("validate")
    assert ok.exit_code == 0 and "silver.orders" in ok.stdout and "valid" in ok.stdout
    contract = invoke("contract", "silver.order_items", "--stage", "strict")
    assert contract.exit_code == 0, contract.output
    assert "duplicate(order_id,line_no)" in contract.stdout and "lake/main/order_items" in contract.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines:\n  p:\n    sources: {s: {}}\n    datasets:\n      d: {source: s, columns: {a: string}, key: b}\n")
    out = invoke("validate", "--config", str(bad))
    assert out.exit_code == 2
    assert f"{bad}: pipelines.p.datasets.d.key: 'b' is not a column of d" in out.stderr


def test_timestamps_need_a_zone(warehouse: str) -> None:
    out = lakehouse("run", "--at", "2026-01-01T00:15:00")  # a real process: exit 2 for a bad argument
    assert out.returncode == 2
    assert "zone" in out.stderr


def test_demo_runs_with_nothing_started_by_hand(demo: Background) -> None:
    out = demo.wait(timeout=600)  # started as the session began (tests/conftest.py)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "window 2026-01-01 00:00–00:15" in out.stdout
    assert "window 2026-01-01 00:15–00:30" in out.stdout
    assert "gold.daily_sales" in out.stdout
    assert "gold.category_sales: per day, category and customer segment" in out.stdout  # the closing table
    # the shop API's shipments, each window's published before it ran: every one read once, each shipment merged
    # once at its latest version (window 2 updates the parcels window 1 shipped), none rejected
    from datetime import UTC, datetime, timedelta

    from lakehouse.dev.shop_shipments import shipments

    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.stdout.splitlines()
            if line.startswith("│ silver.shipments ")]
    seen: set[str] = set()
    for k, row in enumerate(rows):
        published = shipments(datetime(2026, 1, 1, tzinfo=UTC) + k * timedelta(minutes=15))
        ids = {r["shipment_id"] for r in published}
        read, merged, duplicates, _, rejected, inserted, updated = map(int, row[1:8])
        assert (read, merged, duplicates, rejected) == (len(published), len(ids), len(published) - len(ids), 0), row
        assert (inserted, updated) == (len(ids - seen), len(ids & seen)), row
        seen |= ids
    assert len(rows) == 2 and updated > 0, rows
    assert DEMO_API_TOKEN not in out.stdout + out.stderr


def test_the_engine_imports_no_prefect() -> None:
    code = (
        "import sys, pkgutil, importlib, lakehouse\n"
        "for m in pkgutil.walk_packages(lakehouse.__path__, 'lakehouse.'): importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
