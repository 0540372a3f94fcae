"""`lakehouse serve` as the tests drive it: one stack (moto S3, a Prefect server and UI, the
deployments of prefect.yaml, a process worker, the simulator) shared by the e2e tests that
need a real server, so the server start, the work pool and `prefect deploy --all` are paid
once per session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY, free_port

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
BUCKET = "lakehouse"  # deployments.stack.BUCKET


def wait_for_line(proc: subprocess.Popen[str], needle: str, lines: list[str], timeout: float) -> None:
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


def completed_runs(api: str) -> list[dict]:
    body = json.dumps({"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 20}).encode()
    request = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serve(state: Path, ui: int, s3: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LAKEHOUSE_", "AWS_"))}
    env["PREFECT_WORKER_QUERY_SECONDS"] = "2"
    return subprocess.Popen([LAKEHOUSE, "serve", "--ui-port", str(ui), "--s3-port", str(s3), "--state-dir", str(state)],
                            env=env, cwd=state.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen[str], lines: list[str]) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + rest
    return "".join(lines) + rest


@dataclass
class Served:
    """A `lakehouse serve` process with its ports and state dir; started on first use."""

    root: Path
    ui: int = field(default_factory=free_port)
    s3: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    first_runs: list[dict] = field(default_factory=list)
    """The completed ``shop …`` runs seen once the stack was up: its first micro-batch."""

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ui}/api"

    def env(self) -> dict[str, str]:
        """What points boto3, delta-rs and the lakehouse at the stack's S3 warehouse."""
        return {"LAKEHOUSE_WAREHOUSE": f"s3://{BUCKET}/warehouse", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.s3}",
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def begin(self) -> None:
        """Start the stack unless it runs, without waiting for it (a head start: conftest.py)."""
        if self.running():
            return
        if self.root.exists():  # a stack this session stopped: start over from nothing
            self.root = self.root.with_name(self.root.name + "-again")
        self.root.mkdir(parents=True)
        self.proc, self.lines, self.first_runs = serve(self.state, self.ui, self.s3), [], []

    def ensure_running(self) -> Served:
        """Start the stack unless it runs, and wait for its UI and its first completed micro-batch."""
        if self.running() and self.first_runs:
            return self
        self.begin()
        assert self.proc is not None
        try:
            wait_for_line(self.proc, f"Prefect UI: http://127.0.0.1:{self.ui}", self.lines, timeout=240)
            deadline = time.monotonic() + 240
            while not (runs := [r for r in completed_runs(self.api) if r["name"].startswith("shop ")]):
                assert time.monotonic() < deadline, "the first micro-batch did not complete"
                time.sleep(3)
        except BaseException:
            self.kill()
            raise
        self.first_runs = runs
        return self

    def stop(self) -> str:
        """Ctrl-C the stack; returns everything it printed."""
        assert self.proc is not None
        try:
            return stop(self.proc, self.lines)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
