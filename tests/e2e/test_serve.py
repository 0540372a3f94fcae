"""`lakehouse serve`: the whole local stack from one command, a completed run, a clean stop,
and the data back after a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lakehouse.moto_server import free_port

pytestmark = pytest.mark.slow
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def _wait_for_line(proc: subprocess.Popen[str], needle: str, lines: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while not any(needle in line for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            rest = proc.stdout.read() or ""
            raise AssertionError(f"no {needle!r} in the output:\n{''.join(lines)}{rest}")
        line = proc.stdout.readline()
        if line:
            lines.append(line)
        else:
            time.sleep(0.2)


def _completed_runs(api: str) -> list[dict]:
    body = json.dumps({"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 20}).encode()
    request = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + rest
    return "".join(lines) + rest


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _serve(state: Path, ui: int, s3: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LAKEHOUSE_", "AWS_"))}
    env["PREFECT_WORKER_QUERY_SECONDS"] = "2"
    return subprocess.Popen([LAKEHOUSE, "serve", "--ui-port", str(ui), "--s3-port", str(s3), "--state-dir", str(state)],
                            env=env, cwd=state.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_serve_runs_the_stack_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    state, ui, s3 = tmp_path / "state", free_port(), free_port()
    proc, lines = _serve(state, ui, s3), []
    try:
        _wait_for_line(proc, f"Prefect UI: http://127.0.0.1:{ui}", lines, timeout=240)
        deadline = time.monotonic() + 240
        while not (runs := [r for r in _completed_runs(f"http://127.0.0.1:{ui}/api") if r["name"].startswith("shop ")]):
            assert time.monotonic() < deadline, "the first micro-batch did not complete"
            time.sleep(3)
        out = _stop(proc, lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped worker" in out and "stopped prefect server" in out and "stopped moto S3" in out
    saved = next(line for line in out.splitlines() if line.startswith("saved "))
    count = int(saved.split()[1])
    assert count > 20 and (state / "s3" / "warehouse" / "silver" / "orders" / "_delta_log").is_dir()
    assert not _listening(ui) and not _listening(s3), "a part of the stack is still running"

    again, lines = _serve(state, ui, s3), []
    try:
        _wait_for_line(again, "Prefect UI:", lines, timeout=240)
        assert any(f"restored {count} objects" in line for line in lines), lines
        # Prefect's history is kept as well: the completed run is still there
        assert runs[0]["id"] in {r["id"] for r in _completed_runs(f"http://127.0.0.1:{ui}/api")}
        _stop(again, lines)
    finally:
        if again.poll() is None:
            again.kill()
