"""`lakehouse serve`: the whole local stack from one command, a completed run, a clean stop,
and the data back after a restart."""

from __future__ import annotations

import pytest

from tests.e2e.serving import Served, completed_runs, listening, serve, stop, wait_for_line

pytestmark = pytest.mark.slow


def test_serve_runs_the_stack_stops_cleanly_and_keeps_its_data(served: Served) -> None:
    # the session's stack (test_deployment.py may have used it first): up, its first micro-batch completed
    served.ensure_running()
    state, ui, s3, runs = served.state, served.ui, served.s3, served.first_runs
    out = served.stop()
    assert "stopped worker" in out and "stopped prefect server" in out and "stopped moto S3" in out
    saved = next(line for line in out.splitlines() if line.startswith("saved "))
    count = int(saved.split()[1])
    assert count > 20 and (state / "s3" / "warehouse" / "silver" / "orders" / "_delta_log").is_dir()
    assert not listening(ui) and not listening(s3), "a part of the stack is still running"

    again, lines = serve(state, ui, s3), []
    try:
        wait_for_line(again, "Prefect UI:", lines, timeout=240)
        assert any(f"restored {count} objects" in line for line in lines), lines
        # Prefect's history is kept as well: the completed run is still there
        assert runs[0]["id"] in {r["id"] for r in completed_runs(f"http://127.0.0.1:{ui}/api")}
        stop(again, lines)
    finally:
        if again.poll() is None:
            again.kill()
